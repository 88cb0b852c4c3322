import typer
from rich.table import Table

from sqlsft.cli.app import app, console


@app.command("env")
def env_command(
    plain: bool = typer.Option(False, "--plain", help="Print '- key: value' lines instead of a table."),
) -> None:
    """Versions, hardware, serving engines, wandb and hub status: paste it into a bug report."""
    from sqlsft.common.environment import collect

    info = collect()
    if plain:
        for key, value in info.items():
            print(f"- {key}: {value}")
        return
    table = Table(title="sqlsft environment", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", overflow="fold")
    for key, value in info.items():
        table.add_row(key, value)
    console.print(table)
