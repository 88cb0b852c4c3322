"""How `sqlsft eval` looks: the progress of the scoring loop, the report's tables, the comparison's tables.

Answers and SQL are the model's own text: shown as text (never Rich markup), with unencodable characters
(a lone surrogate) escaped, cut to fit on a terminal and whole when piped."""

from typing import Any

from rich.console import Console, Group
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sqlsft.cli.views.output import full_values, titled
from sqlsft.common.formatting import percent, shorten
from sqlsft.eval.report_folder import COMPARE_FILE, PREDICTIONS_FILE, REPORT_FILE
from sqlsft.eval.score_rows import Tally

CHANGED_SHOWN = 10
PLAIN_UPDATES = 10  # progress lines when not on a terminal


def _text(value: Any, limit: int, full: bool) -> str:
    """A cell of model text: printable whatever it holds, shortened unless full values are wanted."""
    text = str(value or "").encode("utf-8", "backslashreplace").decode("utf-8")
    return escape(" ".join(text.split()) if full else shorten(text, limit))


def _accuracy(tally: Tally) -> str:
    return percent(tally.accuracy)


class EvalProgress:
    """A Rich bar on a terminal; otherwise a plain line every tenth of the rows."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._progress: Progress | None = None
        self._task = None
        self._every = 1

    def start(self, tally: Tally) -> None:
        if not self.console.is_terminal:
            self._every = max(1, tally.total // PLAIN_UPDATES)
            return
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("EX {task.fields[accuracy]}"),
            TextColumn("{task.fields[failed]}"),
            TimeElapsedColumn(),
            console=self.console,
        )
        self._progress.start()
        self._task = self._progress.add_task(
            escape(tally.label), total=tally.total, completed=tally.done, accuracy=_accuracy(tally), failed=""
        )

    def update(self, tally: Tally) -> None:
        if self._progress is not None:
            failed = f"[red]{tally.failed_requests} failed requests[/]" if tally.failed_requests else ""
            self._progress.update(self._task, completed=tally.done, accuracy=_accuracy(tally), failed=failed)
        elif tally.done % self._every == 0 or tally.done == tally.total:
            self.console.print(
                f"{tally.label}: {tally.done}/{tally.total} rows, execution accuracy {_accuracy(tally)}",
                markup=False,
                highlight=False,
            )

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def _totals_table(report: dict[str, Any]) -> Group:
    title = f"eval of {report.get('model', '?')} on {report.get('dataset', '?')}/{report.get('split', '?')}"
    totals = Table(show_header=True)
    totals.add_column("metric")
    totals.add_column("value", justify="right")
    totals.add_column("over", justify="right")
    n, executes = report["examples"], report["gold_executes"]
    totals.add_row(
        "execution accuracy", percent(report["execution_accuracy"]), f"{executes} rows (gold executes)"
    )
    totals.add_row(
        "  lenient (extra columns)", percent(report["execution_accuracy_lenient"]), f"{executes} rows"
    )
    totals.add_row("exact match (sqlglot)", percent(report["exact_match"]), f"{n} rows")
    totals.add_row(
        "valid SQL (executes)",
        percent(report["valid_sql"]),
        f"{report['schema_builds']} rows (schema builds)",
    )
    totals.add_row("parses (sqlglot)", percent(report["parses"]), f"{n} rows")
    return titled(title, totals)


def _totals_notes(report: dict[str, Any]) -> list[str]:
    """The outcomes and the speed, as lines under the totals (whole when piped)."""
    outcomes = ", ".join(f"{k} {v}" for k, v in report["outcomes"].items() if v)
    latency = report["latency"]
    notes = [
        f"outcomes: {outcomes}",
        f"{latency['wall_s']:.1f} s, {latency['requests_per_s'] or 0:.2f} requests/s, "
        f"latency p50 {latency['p50_s'] or 0:.2f} s, p95 {latency['p95_s'] or 0:.2f} s"
        + (f"; {latency['hit_max_tokens']} answers hit --max-tokens" if latency["hit_max_tokens"] else ""),
    ]
    if report.get("rows_resumed"):
        notes.append(f"{report['rows_resumed']} rows were scored by an earlier, interrupted run (resumed)")
    return [f"[dim]{escape(note)}[/]" for note in notes]


def _breakdown_table(column: str, groups: dict[str, Any]) -> Table:
    table = Table(title=escape(f"by {column}"))
    for name in (column, "rows", "EX", "EX lenient", "exact", "valid", "errors+timeouts"):
        table.add_column(escape(name), justify="left" if name == column else "right")
    for value, s in groups.items():
        o = s["outcomes"]
        table.add_row(
            escape(value),
            str(s["examples"]),
            percent(s["execution_accuracy"]),
            percent(s["execution_accuracy_lenient"]),
            percent(s["exact_match"]),
            percent(s["valid_sql"]),
            str(o["error"] + o["timeout"]),
        )
    return table


def report_renderables(report: dict[str, Any], console: Console) -> Group:
    """Rich tables for a report: totals, one breakdown per column, slowest and failed rows."""
    full = full_values(console)
    parts: list[Any] = [_totals_table(report), *_totals_notes(report)]
    parts += [_breakdown_table(column, groups) for column, groups in report["breakdown"].items()]
    if report["slowest"]:
        table = Table(title="slowest")
        for name in ("row", "id", "latency (s)", "outcome"):
            table.add_column(name, justify="right" if name != "outcome" else "left")
        for r in report["slowest"]:
            table.add_row(str(r["index"]), escape(str(r["id"])), f"{r['latency_s']:.2f}", r["outcome"])
        parts.append(table)
    if report["failed"]:
        table = Table(title=f"not correct (first {len(report['failed'])})")
        for name in ("row", "outcome", "predicted (or the answer)", "error"):
            table.add_column(name, overflow="fold")
        for r in report["failed"]:
            shown = _text(r["predicted"], 70, full) or (
                f"[dim]{_text(r['answer'], 70, full)}[/]" if r.get("answer") else "-"
            )
            table.add_row(str(r["index"]), r["outcome"], shown, _text(r["error"], 60, full) or "")
        parts.append(table)
    if report.get("folder"):
        parts.append(escape(f"saved {report['folder']}/{REPORT_FILE} and {PREDICTIONS_FILE}"))
    return Group(*parts)


def _delta(value: float | None) -> str:
    if value is None:
        return "-"
    colour = "green" if value > 0 else "red" if value < 0 else "default"
    return f"[{colour}]{100 * value:+.1f} pt[/]"


def compare_renderables(comparison: dict[str, Any], console: Console) -> Group:
    full = full_values(console)
    a, b = comparison["a"]["model"], comparison["b"]["model"]
    table = Table()
    for name in ("metric", "A", "B", "B - A"):
        table.add_column(name, justify="left" if name == "metric" else "right")
    for metric, values in comparison["metrics"].items():
        table.add_row(
            metric.replace("_", " "), percent(values["a"]), percent(values["b"]), _delta(values["difference"])
        )
    fixed, broken = comparison["fixed_by_b"], comparison["broken_by_b"]
    table.caption = f"{len(fixed)} rows correct only with B, {len(broken)} only with A"
    parts: list[Any] = [titled(f"compare on {comparison['rows']} rows: A = {a}, B = {b}", table)]
    for key, title in (("fixed_by_b", "correct only with B"), ("broken_by_b", "correct only with A")):
        rows = comparison[key] if full else comparison[key][:CHANGED_SHOWN]
        if not rows:
            continue
        changed = Table(title=f"{title} ({len(rows)} of {len(comparison[key])})")
        for name in ("row", "question", "A", "B"):
            changed.add_column(name, overflow="fold")
        for r in rows:
            changed.add_row(
                str(r["index"]),
                _text(r["sql_prompt"], 50, full),
                f"{r['a']['outcome']}: {_text(r['a']['predicted'], 50, full)}",
                f"{r['b']['outcome']}: {_text(r['b']['predicted'], 50, full)}",
            )
        parts.append(changed)
    if comparison.get("folder"):
        parts.append(escape(f"saved {comparison['folder']}/{COMPARE_FILE}"))
    return Group(*parts)
