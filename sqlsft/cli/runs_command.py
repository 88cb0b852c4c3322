"""`sqlsft runs`: the run registry as a table."""

import typer
from rich.table import Table

from sqlsft.cli.app import app, console

STATUS_STYLE = {"completed": "green", "running": "cyan", "failed": "red", "interrupted": "yellow"}


def _duration(seconds) -> str:
    if not isinstance(seconds, int | float):
        return "-"
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


@app.command("runs")
def runs_command(
    limit: int = typer.Option(20, "--limit", "-n", help="Show at most this many runs (newest first)."),
) -> None:
    """List training runs: preset, model, GPUs, steps, final loss, duration, status, latest eval accuracy."""
    from sqlsft.common.paths import runs_dir
    from sqlsft.runs.registry import list_runs

    found = list_runs()
    if not found:
        console.print(f"No runs in {runs_dir()}. Train one with `sqlsft train --preset demo`.")
        return
    table = Table(title=f"runs in {runs_dir()}")
    for column in (
        "name",
        "preset",
        "model",
        "GPUs",
        "steps",
        "final loss",
        "duration",
        "status",
        "accuracy",
    ):
        table.add_column(
            column, justify="right" if column in ("GPUs", "steps", "final loss", "accuracy") else "left"
        )
    for run in found[:limit]:
        steps = (
            "-"
            if run.steps is None
            else (f"{run.steps}/{run.max_steps}" if run.max_steps else str(run.steps))
        )
        loss = "-" if run.final_loss is None else f"{run.final_loss:.4f}"
        accuracy = run.latest_accuracy()
        style = STATUS_STYLE.get(run.status, "")
        table.add_row(
            run.name,
            run.preset or "-",
            run.model or "-",
            "cpu" if run.gpus in (None, "0") else run.gpus,
            steps,
            loss,
            _duration(run.duration_s),
            f"[{style}]{run.status}[/]" if style else run.status,
            "-" if accuracy is None else f"{accuracy:.1%}",
        )
    console.print(table)
