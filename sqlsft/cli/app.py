"""The Typer application every command module registers on, and the project-wide error handling."""

import os

import click
import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from sqlsft import __version__
from sqlsft.common.errors import SqlsftError

console = Console()
err_console = Console(stderr=True)


def print_error(exc: SqlsftError) -> None:
    """The one line a user mistake gets (paths and values are printed as text, never as Rich markup)."""
    message = escape(exc.message) + (f" {escape(exc.hint)}" if exc.hint else "")
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)


class _SqlsftGroup(TyperGroup):
    """Turns the project's own errors into one line and a non-zero exit, however the app is invoked."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except SqlsftError as exc:
            if os.environ.get("SQLSFT_DEBUG"):
                raise
            print_error(exc)
            ctx.exit(exc.exit_code)


app = typer.Typer(
    cls=_SqlsftGroup,
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
    """Run the CLI (errors are handled by the app's group, see _SqlsftGroup)."""
    app(args=argv)
