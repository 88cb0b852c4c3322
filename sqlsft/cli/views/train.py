"""What `sqlsft train` shows: the dry-run plan, the progress of a run (a Rich bar on a terminal, plain lines
otherwise, so a log file is not flooded) and the summary at the end."""

import time

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeRemainingColumn,
)

from sqlsft.common.formatting import clock
from sqlsft.common.processes import shell_line
from sqlsft.runs.metrics import EVAL_ROWS, EXECUTION_ACCURACY, VALID_SQL, MetricsEvent, MetricsRow
from sqlsft.runs.status import RunState
from sqlsft.train.supervise import DryRunPlan, TrainResult
from sqlsft.train.view import TrainView

PLAIN_LINE_EVERY_S = 10.0


def _percent(value: float | None) -> str:
    return "?" if value is None else f"{100 * value:.1f}%"


def eval_figures(row: MetricsRow) -> str:
    """The short form next to the loss: execution accuracy and valid SQL of the last evaluation."""
    return f"EX {_percent(row.number(EXECUTION_ACCURACY))} (valid SQL {_percent(row.number(VALID_SQL))})"


def _plain(console: Console, text: str) -> None:
    console.print(text, markup=False, highlight=False, soft_wrap=True)


class ConsoleTrainView(TrainView):
    """The run's metrics lines, as they come: a Rich bar on a terminal, a plain line every 10 s otherwise."""

    def __init__(self, console: Console):
        super().__init__(console)
        self.rows: list[MetricsRow] = []  # the steps logged by this launch, for the plain lines' ETA
        self.total: int | None = None
        self.step = 0
        self.last_plain = 0.0
        self.bar: Progress | None = None
        self.task = None
        self.last_eval = ""  # the last evaluation's figures, shown next to the loss

    def note(self, text: str, warning: bool = False) -> None:
        console = self.bar.console if self.bar else self.console
        console.print(
            text, style="yellow" if warning else None, markup=False, highlight=False, soft_wrap=True
        )

    def launching(self, headline: str, command: list[str]) -> None:
        _plain(self.console, headline)
        _plain(self.console, f"$ {shell_line(command)}")

    def progress_started(self, start_step: int) -> None:
        self.step = start_step
        if not self.console.is_terminal:
            _plain(self.console, "starting: loading the model and the data (see train.log)")
            return
        self.bar = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[loss]}"),
            TextColumn("{task.fields[eval]}"),
            TextColumn("{task.fields[speed]}"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[memory]}"),
            console=self.console,
            transient=False,
        )
        self.bar.start()
        self.task = self.bar.add_task(
            "starting (loading model and data)", total=None, loss="", eval="", speed="", memory=""
        )

    def progress(self, rows: list[MetricsRow]) -> None:
        for row in rows:
            if row.is_step:
                self.rows.append(row)
                self.total = row.max_steps or self.total
                self.step = row.step if row.step is not None else self.step
                self._update(row)
            else:
                self._event(row)

    def progress_stopped(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

    def _event(self, row: MetricsRow) -> None:
        event = row.event
        if event == MetricsEvent.START:
            self.total = row.max_steps
            self.step = row.step if row.step is not None else self.step
            self._update(None)
        elif event == MetricsEvent.DATA and row.integer("dropped_overlong"):
            self.note(
                f"{row.integer('dropped_overlong')} rows longer than max_length={row.text('max_length')} left out"
            )
        elif event == MetricsEvent.CHECKPOINT:
            self.note(f"checkpoint saved at step {row.step}")
        elif event == MetricsEvent.NOTE:
            self.note(str(row.text("text")))
        elif event == MetricsEvent.EVAL and row.number(EXECUTION_ACCURACY) is not None:
            self.last_eval = eval_figures(row)
            seconds = row.number("eval_seconds")
            took = f" in {clock(seconds)}" if seconds is not None else ""
            self.note(
                f"step {row.step}: execution accuracy {_percent(row.number(EXECUTION_ACCURACY))}, valid SQL "
                f"{_percent(row.number(VALID_SQL))} on {row.integer(EVAL_ROWS)} validation rows{took}"
            )
            if self.bar is not None:
                self.bar.update(self.task, eval=self.last_eval)
        elif event == MetricsEvent.INTERRUPTED:
            self.note(f"stopping at step {row.step} of {row.max_steps}; saving a checkpoint")

    def _update(self, row: MetricsRow | None) -> None:
        loss = f"loss {row.loss:.4f}" if row and row.loss is not None else ""
        speed = f"{row.number('tokens_per_s'):,.0f} tok/s" if row and row.number("tokens_per_s") else ""
        memory = ""
        if row and row.number("peak_memory_gib") is not None:
            kind = "GPU" if row.get("memory") == "gpu" else "RSS"
            memory = f"{kind} {row.number('peak_memory_gib'):.1f} GiB"
        if self.bar is not None:
            self.bar.update(self.task, description="training", total=self.total, completed=self.step,
                                 loss=loss, eval=self.last_eval, speed=speed, memory=memory)  # fmt: skip
            return
        now = time.monotonic()
        if row is None or (now - self.last_plain < PLAIN_LINE_EVERY_S and self.step != self.total):
            return
        self.last_plain = now
        total = self.total or 0
        share = f" ({100 * self.step / total:.0f}%)" if total else ""
        parts = [f"step {self.step}/{total or '?'}{share}", loss, self.last_eval, speed, memory]
        _plain(self.console, " ".join(p for p in parts if p) + self._eta(row, total))

    def _eta(self, row: MetricsRow, total: int) -> str:
        first = self.rows[0]
        if not total or not self.step or first.time is None or row.time is None:
            return ""
        done = self.step - ((first.step or 0) - 1)
        elapsed = row.time - first.time
        if done > 1 and elapsed > 0:
            return f" eta {clock((total - self.step) * elapsed / (done - 1))}"
        return ""


def print_dry_run(plan: DryRunPlan, console: Console) -> None:
    console.rule("resolved training config (config.yaml)")
    console.print(plan.config_yaml, markup=False, highlight=False, end="", soft_wrap=True)
    console.rule("accelerate config (accelerate.yaml)")
    console.print(plan.accelerate_yaml, markup=False, highlight=False, end="", soft_wrap=True)
    console.rule("launch command")
    _plain(console, shell_line(plan.command))
    for note in plan.notes:
        _plain(console, f"note: {note}")
    _plain(
        console,
        "Dry run: nothing was prepared or started, and the GPUs need not be present "
        f"(this machine: {plan.hardware}).",
    )


def eval_summary(summary) -> str:
    """One line: the best evaluated step (the Trainer's best checkpoint), with the untrained and last figures."""
    best, start, last = summary.best_eval, summary.start_eval, summary.last_eval
    rows = f" on {best.rows} validation rows" if best.rows else ""
    line = f"Execution accuracy{rows}: best {_percent(best.execution_accuracy)} at step {best.step}"
    if best.valid_sql is not None:
        line += f" (valid SQL {_percent(best.valid_sql)})"
    if last is not None and last.step != best.step:
        line += f"; last {_percent(last.execution_accuracy)} at step {last.step}"
    if start is not None:
        line += f"; untrained {_percent(start.execution_accuracy)}"
    return line


def print_summary(result: TrainResult, console: Console) -> None:
    run, summary = result.run, result.summary
    console.print()
    took = clock(summary.duration_s)
    if result.status == RunState.INTERRUPTED:
        console.print("[yellow]Interrupted[/] ", end="")
        _plain(console, f"{run.name} at step {summary.steps or 0} after {took}.")
        _plain(console, f"Resume it with: sqlsft train --resume {run.name}")
        if summary.best_eval is not None:
            _plain(console, eval_summary(summary))
        return
    loss = ""
    if summary.first_loss is not None:
        loss = f"loss {summary.first_loss:.4f} -> {summary.final_loss:.4f}"
        if summary.first_loss_mean3 is not None:
            loss += f" (first/last 3 steps: {summary.first_loss_mean3:.4f} -> {summary.final_loss_mean3:.4f})"
    speed = f"{summary.tokens_per_s:,.0f} tokens/s" if summary.tokens_per_s else ""
    parts = [f"{summary.steps} steps in {took}", loss, speed]
    console.print("[green]Completed[/] ", end="")
    _plain(console, f"{run.name}: " + ", ".join(p for p in parts if p))
    if summary.best_eval is not None:
        _plain(console, eval_summary(summary))
    if run.model_dir.is_dir() or not run.adapter_dir.is_dir():
        held = f" ({summary.model_checkpoint}'s weights: --load-best)" if summary.model_checkpoint else ""
        _plain(console, f"Model: {run.model_dir}{held}")
        _plain(console, "Next: sqlsft serve latest")
    else:  # --no-merge: only the adapter, which vLLM serves on its base
        _plain(console, f"Adapter: {run.adapter_dir} (not merged)")
        _plain(console, "Next: sqlsft serve latest --engine vllm")
