"""What `sqlsft runs` shows: the run registry as a table (whole values when piped) or as JSON."""

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from sqlsft.cli.views.output import full_values, print_full
from sqlsft.common.errors import SqlsftError
from sqlsft.common.formatting import duration, percent
from sqlsft.eval.report_folder import latest_execution_accuracy
from sqlsft.runs.metrics import Evaluation
from sqlsft.runs.registry import BEST, Run
from sqlsft.runs.status import RunState

STATUS_STYLE = {
    RunState.COMPLETED: "green",
    RunState.RUNNING: "cyan",
    RunState.FAILED: "red",
    RunState.INTERRUPTED: "yellow",
}
NUMERIC = ("GPUs", "steps", "final loss", "best EX @ step", "accuracy")


def best_record(run: Run) -> dict[str, Any] | None:
    """The best evaluation during training, and the folder `RUN:best` loads (None when it has none left)."""
    best = run.best_evaluation()
    if best is None:
        return None
    try:
        folder = str(run.select(BEST).final_model_dir())
    except SqlsftError:
        folder = None
    return {
        "step": best.step,
        "execution_accuracy": best.execution_accuracy,
        "valid_sql": best.valid_sql,
        "rows": best.rows,
        "model_dir": folder,
    }


def run_record(run: Run) -> dict[str, Any]:
    """One run for `sqlsft runs --json` (problems: what was wrong in its status.json)."""
    record = run.record
    return {
        "name": run.name,
        "path": str(run.path),
        "status": str(run.status),
        "preset": record.preset,
        "model": record.model,
        "gpus": record.gpus,
        "steps": record.steps,
        "max_steps": record.max_steps,
        "final_loss": record.final_loss,
        "duration_s": record.duration_s,
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "accuracy": latest_execution_accuracy(run.path),
        "best": best_record(run),
        "model_dir": str(run.model_dir) if run.model_dir.is_dir() else None,
        "problems": record.problems,
    }


def _steps(run: Run) -> str:
    if run.steps is None:
        return "-"
    return f"{run.steps}/{run.max_steps}" if run.max_steps else str(run.steps)


def _best(best: Evaluation | None) -> str:
    return "-" if best is None else f"{percent(best.execution_accuracy)} @ {best.step}"


def print_runs(runs: list[Run], folder: Path, console: Console) -> None:
    title = f"runs in {folder}"
    table = Table(title=None if full_values(console) else title)
    for column in (
        "name",
        "preset",
        "model",
        "GPUs",
        "steps",
        "final loss",
        "duration",
        "status",
        "best EX @ step",
        "accuracy",
    ):
        table.add_column(column, justify="right" if column in NUMERIC else "left")
    damaged = []
    for run in runs:
        accuracy = latest_execution_accuracy(run.path)
        table.add_row(
            Text(run.name),
            Text(run.preset or "-"),
            Text(run.model or "-"),
            "cpu" if not run.gpus else str(run.gpus),
            _steps(run),
            "-" if run.final_loss is None else f"{run.final_loss:.4f}",
            duration(run.duration_s),
            Text(str(run.status), style=STATUS_STYLE.get(run.status, "")),
            _best(run.best_evaluation()),
            "-" if accuracy is None else percent(accuracy),
        )
        if run.record.problems:
            damaged.append(f"{run.name}: status.json has {'; '.join(run.record.problems)}")
    if full_values(console):
        print_full(console, title, table, *damaged)
        return
    console.print(table)
    for line in damaged:
        console.print(line, style="yellow", markup=False, highlight=False, soft_wrap=True)
