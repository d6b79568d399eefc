"""Logging to stderr only, every line prefixed with the plugin name; stdout is for results."""

import logging
import os
import re
import sys
from typing import ClassVar

PREFIX = "velero-irsa"
logger = logging.getLogger("velero_irsa_postrender")

# Secrets that must never reach a log line, even in debug output from botocore: the value after
# any of these names is replaced, whatever quoting or separator surrounds it.
_SECRET = re.compile(
    r"(?i)(aws_secret_access_key|secret_?access_?key|aws_session_token|session_?token|"
    r"x-amz-security-token|authorization|credential|signature)(['\"]?\s*[:=]\s*['\"]?)([^'\",\s}]+)"
)


def debug_requested(verbose: bool = False) -> bool:
    return verbose or os.environ.get("HELM_DEBUG", "").lower() in ("1", "true", "yes", "on")


def redact(text: str) -> str:
    return _SECRET.sub(lambda m: f"{m.group(1)}{m.group(2)}***", text)


class _Redacting(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), ()
        return True


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at emit time, so test runners can capture it."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def configure(debug: bool) -> None:
    """Route our logs and the AWS libraries' warnings to stderr with the plugin prefix."""
    handler = _StderrHandler()
    handler.setFormatter(_Formatter())
    handler.addFilter(_Redacting())
    for name in ("velero_irsa_postrender", "botocore", "boto3", "urllib3"):
        target = logging.getLogger(name)
        target.handlers[:] = [handler]
        target.propagate = False
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
