"""The project's own error type: a user mistake or an environment problem, shown as one line."""


class SqlsftError(Exception):
    """Raised for anything the user can fix. The CLI prints `message` (and `hint`) and exits non-zero."""

    def __init__(self, message: str, hint: str | None = None, exit_code: int = 1):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.exit_code = exit_code

    def __str__(self) -> str:
        return f"{self.message} {self.hint}" if self.hint else self.message
