"""What `sqlsft prepare` shows: its steps while it works, then a table of the prepared splits."""

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from sqlsft.cli.views.output import print_full
from sqlsft.common.formatting import percent
from sqlsft.data.cache import Prepared


class _ProgressBars:
    """prepare's steps as Rich progress bars, one per step (a PrepareProgress)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: TaskID | None = None

    def finish(self) -> None:
        """Mark the current step done (a step without a row count shows as one unit)."""
        if self.task is not None:
            task = next(t for t in self.progress.tasks if t.id == self.task)
            done = task.completed if task.total is not None else 1
            self.progress.update(self.task, total=done, completed=done)

    def step(self, description: str, total: int | None = None) -> None:
        self.finish()
        self.task = self.progress.add_task(description, total=total)

    def advance(self, rows: int) -> None:
        if self.task is not None:
            self.progress.advance(self.task, rows)


@contextmanager
def prepare_progress(console: Console) -> Iterator[_ProgressBars | None]:
    """Progress bars on a terminal; None elsewhere (prepare then writes one line per step)."""
    if not console.is_terminal:
        yield None
        return
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        bars = _ProgressBars(progress)
        yield bars
        bars.finish()


def summary_table(prepared: Prepared, seconds: float) -> Table:
    manifest = prepared.manifest
    table = Table(
        title=f"Prepared {manifest['options']['dataset']}" + (" (cache hit)" if prepared.cache_hit else "")
    )
    for column in ("split", "rows", "skipped", "executes", "executable"):
        table.add_column(column, justify="right" if column != "split" else "left")
    for split, info in manifest["validation"].items():
        table.add_row(
            split,
            f"{info['rows']:,}",
            f"{info['skipped']:,}",
            f"{info['executes']:,}",
            percent(info["executable_share"]),
        )
    tokens = manifest.get("tokens")
    if tokens:
        table.caption = (
            f"tokens (prompt+completion, {tokens['tokenizer']}): p50 {tokens['p50']}, p95 {tokens['p95']}, "
            f"max {tokens['max']}; {tokens['over_max_length']:,} rows over --max-length {tokens['max_length']}"
        )
    else:
        table.caption = "token statistics skipped (no tokenizer)"
    table.caption += f"\ncache: {prepared.folder}\ntime: {seconds:.1f} s"
    return table


def skipped_lines(prepared: Prepared) -> list[str]:
    """One line per split that lost rows: how many, why, and the first ids."""
    lines = []
    for split, info in prepared.manifest["validation"].items():
        if not info["skipped"]:
            continue
        reasons = []
        if info["skipped_missing"]:
            reasons.append(f"missing or empty {', '.join(info['skipped_missing'])}")
        if info.get("skipped_unformattable"):
            reasons.append(f"{info['skipped_unformattable']:,} with SQL too large for sqlparse to format")
        more = ", ..." if info["skipped"] > len(info["skipped_ids"]) else ""
        ids = ", ".join(str(i) for i in info["skipped_ids"])
        lines.append(f"{split}: skipped {info['skipped']:,} rows ({'; '.join(reasons)}) (ids {ids}{more})")
    return lines


def print_prepared(prepared: Prepared, seconds: float, console: Console) -> None:
    print_full(console, summary_table(prepared, seconds))
    for line in skipped_lines(prepared):
        console.print(line, style="yellow", highlight=False, markup=False)
