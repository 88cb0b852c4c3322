"""sqlsft's command line. Each command module only parses arguments and calls one pipeline stage."""

from sqlsft.cli.app import app, run_app

# Importing the command modules registers their commands on `app` (bench_command first: others extend it).
from sqlsft.cli import bench_command  # noqa: F401  isort: skip
from sqlsft.cli import (  # noqa: F401  isort: skip
    env_command,
    prepare_command,
    train_command,
    runs_command,
    serve_command,
    chat_command,
    eval_command,
    bench_train_command,
)


def main() -> None:
    run_app()


__all__ = ["app", "main"]
