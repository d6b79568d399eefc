"""The one error type that the CLI boundary turns into a single line on stderr."""


class VeleroIrsaError(Exception):
    """A failure we understand: the message names the problem, the hint names the fix."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}: {self.hint}" if self.hint else self.message


class ConfigError(VeleroIrsaError):
    """Options, environment or config file that break the schema or contradict each other."""


class ManifestError(VeleroIrsaError):
    """A manifest stream that cannot be post-rendered safely."""


class AwsError(VeleroIrsaError):
    """An AWS call failed in a way the user can act on."""
