"""sqlsft's command line. Each command module only parses arguments and calls one pipeline stage."""

from sqlsft.cli.app import app, run_app

# Importing the command modules registers their commands on `app`.
from sqlsft.cli import env_command, prepare_command  # noqa: E402, F401  isort: skip


def main() -> None:
    run_app()


__all__ = ["app", "main"]
