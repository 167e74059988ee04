"""How the CLI fails: one exception type carrying the message, what to do about it, and the exit status."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1  # the server refused, is unreachable, or the input is bad
EXIT_USAGE = 2  # a usage mistake, or a command that needs a login first
EXIT_INTERRUPTED = 130


def see_help(command: str) -> str:
    """The one wording of a hint that points to a command's help: `fittrack goals add` -> see its --help."""
    return f"see `{command} --help`"


class CliError(Exception):
    """A failure explained to the user; `hints` say what to do about it."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED, hint: str | list[str] = "") -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.hints = [hint] if isinstance(hint, str) and hint else list(hint or [])


class UsageError(CliError):
    def __init__(self, message: str, hint: str | list[str] = "") -> None:
        super().__init__(message, EXIT_USAGE, hint)


class NotLoggedIn(CliError):
    def __init__(self, message: str = "you are not logged in") -> None:
        super().__init__(message, EXIT_USAGE, "run `fittrack login USERNAME` first")
