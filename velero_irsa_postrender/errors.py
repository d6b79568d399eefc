"""The one error type that the CLI boundary turns into a single line on stderr."""

import re

# Line breaks (as str.splitlines counts them) and other control characters, which names taken
# from a manifest may carry: shown escaped, so an error stays one line and cannot forge another.
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")


class VeleroIrsaError(Exception):
    """A failure we understand: the message names the problem, the hint names the fix."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        text = f"{self.message}: {self.hint}" if self.hint else self.message
        return _CONTROL.sub(lambda match: match.group().encode("unicode_escape").decode(), text)


class ConfigError(VeleroIrsaError):
    """Options, environment or config file that break the schema or contradict each other."""


class ManifestError(VeleroIrsaError):
    """A manifest stream that cannot be post-rendered safely."""


class AwsError(VeleroIrsaError):
    """An AWS call failed in a way the user can act on."""
