"""`sqlsft env`: versions, hardware, serving engines, wandb and hub status, for a bug report."""

import json

import typer
from rich.markup import escape
from rich.table import Table

from sqlsft.cli.app import app, console


@app.command("env")
def env_command(
    plain: bool = typer.Option(False, "--plain", help="Print '- key: value' lines instead of a table."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as one JSON object."),
) -> None:
    """Versions, hardware, serving engines, wandb and hub status: paste it into a bug report."""
    from sqlsft.common.environment import collect
    from sqlsft.serve.engines import engine_statuses

    info = collect(engines=engine_statuses())
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    if plain or not console.is_terminal:  # piped: whole values, one per line, that grep and cut can read
        for key, value in info.items():
            typer.echo(f"- {key}: {value}")
        return
    table = Table(title="sqlsft environment", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in info.items():
        table.add_row(key, escape(value))
    console.print(table)
