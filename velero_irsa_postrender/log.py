"""Logging to stderr only, every line prefixed with the plugin name; stdout is for results."""

import logging
import os
import re
import sys
import time
from pathlib import Path
from typing import ClassVar

PREFIX = "velero-irsa"
logger = logging.getLogger("velero_irsa_postrender")

LOG_FILE_ENV = "VELERO_IRSA_LOG_FILE"
# Helm 4 runs this plugin as a post-renderer and throws its stderr away when it fails.
_STDERR_HIDDEN_IN_PLUGINS = ("velero-irsa-postrenderer",)

# Secrets that must never reach a log line, even in debug output from botocore: the value after
# any of these names is replaced, whatever quoting or separator surrounds it.
_SECRET = re.compile(
    r"(?i)(aws_secret_access_key|secret_?access_?key|aws_session_token|session_?token|"
    r"x-amz-security-token|authorization|credential|signature)(['\"]?\s*[:=]\s*b?['\"]?)([^'\",\s}]+)"
)
# Credentials resolved at run time (aws.Clients registers them): hidden wherever they appear, named or not.
_KNOWN_SECRETS: set[str] = set()


def add_secret(value: str | None) -> None:
    """Redact this exact value from every log line from now on (short values would hide too much)."""
    if value and len(value) >= 8:
        _KNOWN_SECRETS.add(value)


def debug_requested(verbose: bool = False) -> bool:
    return verbose or os.environ.get("HELM_DEBUG", "").lower() in ("1", "true", "yes", "on")


def redact(text: str) -> str:
    for secret in _KNOWN_SECRETS:
        text = text.replace(secret, "***")
    return _SECRET.sub(lambda m: f"{m.group(1)}{m.group(2)}***", text)


class _Redacting(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        # One record, one line: a name from a manifest cannot break a message or forge another one.
        record.msg, record.args = _CONTROL.sub(_escaped, redact(record.getMessage())), ()
        return True


_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")


def _escaped(match: re.Match[str]) -> str:
    return match.group().encode("unicode_escape").decode()


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at emit time, so test runners can capture it."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def error_log_path(configured: str | None = None) -> Path:
    """VELERO_IRSA_LOG_FILE, else the log-file setting, else $XDG_STATE_HOME/velero-irsa/error.log."""
    chosen = os.environ.get(LOG_FILE_ENV) or configured
    if chosen:
        return Path(chosen).expanduser()
    state = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(state) / "velero-irsa" / "error.log"


def stderr_hidden() -> bool:
    return os.environ.get("HELM_PLUGIN_NAME", "") in _STDERR_HIDDEN_IN_PLUGINS


class _ErrorCopy(logging.Handler):
    """Copies each warning and error line to the terminal and the error log when Helm hides our stderr.

    Warnings go too: Helm 4 drops stderr even on success, and a warning such as "--bucket replaces
    the BackupStorageLocations' buckets" matters most exactly then. The error log is also written
    whenever a path is configured, so scripts can collect it."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.configured: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        line = self.format(record)
        if stderr_hidden():
            _write_terminal(line)
        if stderr_hidden() or self.configured or os.environ.get(LOG_FILE_ENV):
            _append(error_log_path(self.configured), f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} {line}")


def _write_terminal(line: str) -> None:
    try:
        with open("/dev/tty", "w", encoding="utf-8") as terminal:
            terminal.write(line + "\n")
    except OSError:  # no controlling terminal (CI, a pipe): the error log still has the line
        pass


# TODO(rotation): the error log only grows (one line per failed run); rotate it past a size limit.
def _append(path: Path, line: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as log_file:
            log_file.write(line + "\n")
    except OSError as error:
        sys.stderr.write(f"{PREFIX}: warning: cannot write {path} ({error.strerror})\n")


_error_copy = _ErrorCopy()


def use_log_file(configured: str | None) -> None:
    """The log-file setting, known once settings are resolved (VELERO_IRSA_LOG_FILE still wins)."""
    _error_copy.configured = configured


def configure(debug: bool) -> None:
    """Route our logs and the AWS libraries' warnings to stderr with the plugin prefix."""
    handler = _StderrHandler()
    handler.setFormatter(_Formatter())
    handler.addFilter(_Redacting())
    _error_copy.setFormatter(_Formatter())
    _error_copy.filters[:] = [_Redacting()]
    _error_copy.configured = None
    for name in ("velero_irsa_postrender", "botocore", "boto3", "urllib3"):
        target = logging.getLogger(name)
        target.handlers[:] = [handler]
        target.propagate = False
    logger.addHandler(_error_copy)
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    # botocore's own debug output dumps whole requests; our debug log names each API call instead.
    for name in ("botocore", "boto3", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)


class _Formatter(logging.Formatter):
    _LEVELS: ClassVar[dict[int, str]] = {
        logging.ERROR: "error: ",
        logging.WARNING: "warning: ",
        logging.DEBUG: "debug: ",
    }

    def format(self, record: logging.LogRecord) -> str:
        line = f"{PREFIX}: {self._LEVELS.get(record.levelno, '')}{record.getMessage()}"
        if record.exc_info:
            line += "\n" + redact(self.formatException(record.exc_info))
        return line
