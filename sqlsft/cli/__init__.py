"""sqlsft's command line. Each command module only parses arguments and calls one pipeline stage."""

from sqlsft.cli import (  # noqa: F401  importing a command module registers its commands on `app`
    bench_command,
    chat_command,
    engines_command,
    env_command,
    eval_command,
    export_command,
    prepare_command,
    runs_command,
    serve_command,
    train_command,
)
from sqlsft.cli.app import app, run_app


def main() -> None:
    run_app()


__all__ = ["app", "main"]
