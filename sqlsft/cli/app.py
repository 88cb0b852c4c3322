"""The Typer application every command module registers on, and the project-wide error handling."""

import os
import sys

import typer
from rich.console import Console

from sqlsft import __version__
from sqlsft.common.errors import SqlsftError

console = Console()
err_console = Console(stderr=True)

app = typer.Typer(
    name="sqlsft",
    help="Fine-tune a small language model that turns questions into SQL: prepare, train, serve, chat, eval, bench.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version_callback(value: bool) -> None:
    if value:
        console.print(f"sqlsft {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=_version_callback, is_eager=True, help="Show the version."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks for errors."),
) -> None:
    if debug:
        os.environ["SQLSFT_DEBUG"] = "1"


def run_app(argv: list[str] | None = None) -> None:
    """Run the CLI; turn the project's own errors into one line and a non-zero exit."""
    try:
        app(args=argv)
    except SqlsftError as exc:
        if os.environ.get("SQLSFT_DEBUG"):
            raise
        message = f"[bold red]error:[/] {exc.message}" + (f" {exc.hint}" if exc.hint else "")
        err_console.print(message, highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
