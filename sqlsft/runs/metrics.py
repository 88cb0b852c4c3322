"""A run's metrics.jsonl: one JSON line per logged training step, and event lines (start, data, checkpoint,
...). Rank 0 of the training worker appends; the launching `sqlsft train` follows it for its progress view
and summary; bench reads its timings. This module is the only one that reads or writes the file."""

import json
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlsft.common.files import append_jsonl, read_jsonl

METRICS_FILE = "metrics.jsonl"


class MetricsEvent(StrEnum):
    START = "start"  # the trainer began (step, max_steps, world_size, backend, device)
    DATA = "data"  # rows kept and dropped for being longer than max_length
    CHECKPOINT = "checkpoint"  # a checkpoint folder was written (step, path)
    NOTE = "note"  # something the user should read (text)
    INTERRUPTED = "interrupted"  # a stop was requested: checkpoint and stop after this step
    SAVED = "saved"  # the final model folder is complete (path, step)
    SUMMARY = "summary"  # the trainer's own end-of-training figures
    EVAL = "eval"  # eval_* figures


@dataclass
class StepMetrics:
    """One logged optimizer step (its line has no `event` key)."""

    step: int
    max_steps: int | None = None
    epoch: float | None = None
    loss: float | None = None
    learning_rate: float | None = None
    grad_norm: float | None = None
    num_tokens: float | None = None  # TRL's count of real (non-padding) tokens so far, all ranks
    tokens_per_s: float | None = None
    mean_token_accuracy: float | None = None
    peak_memory_gib: float | None = None
    memory: str | None = None  # "gpu" (torch's max allocated) or "cpu-rss" (the process's peak RSS)
    time: float | None = None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclass(frozen=True, eq=False)  # eq from Mapping: a row equals the dict it was read from
class MetricsRow(Mapping[str, Any]):
    """One line as read back: a step (`is_step`) or an event. Typed accessors tolerate wrong types (None);
    the line itself is still there as a mapping."""

    values: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)

    @property
    def is_step(self) -> bool:
        return "event" not in self.values

    @property
    def event(self) -> MetricsEvent | None:
        try:
            return MetricsEvent(self.values.get("event"))
        except ValueError:
            return None

    def number(self, key: str) -> float | None:
        return _number(self.values.get(key))

    def integer(self, key: str) -> int | None:
        value = self.number(key)
        return int(value) if value is not None and value.is_integer() else None

    @property
    def step(self) -> int | None:
        return self.integer("step")

    @property
    def max_steps(self) -> int | None:
        return self.integer("max_steps")

    @property
    def loss(self) -> float | None:
        return self.number("loss")

    @property
    def time(self) -> float | None:
        return self.number("time")

    def text(self, key: str) -> str | None:
        value = self.values.get(key)
        return None if value is None else str(value)


def metrics_file(run_dir: Path) -> Path:
    return Path(run_dir) / METRICS_FILE


def _jsonable(value: Any) -> Any:
    """Tensors and numpy scalars (which the trainer's logs may hold) as plain numbers."""
    if value is None or isinstance(value, bool | int | float | str | list | dict):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def append_step(run_dir: Path, metrics: StepMetrics) -> None:
    append_jsonl(metrics_file(run_dir), {k: _jsonable(v) for k, v in asdict(metrics).items()})


def append_event(run_dir: Path, event: MetricsEvent, time: float, **values: Any) -> None:
    row = {"event": event.value, **{k: _jsonable(v) for k, v in values.items()}, "time": time}
    append_jsonl(metrics_file(run_dir), row)


def read_metrics(run_dir: Path) -> list[MetricsRow]:
    """Every complete line (a half-written or damaged line is skipped)."""
    return [MetricsRow(row) for row in read_jsonl(metrics_file(run_dir))]


def step_rows(rows: list[MetricsRow]) -> list[MetricsRow]:
    """The logged steps that carry a loss, in order."""
    return [row for row in rows if row.is_step and row.loss is not None and row.step is not None]


def first_event(rows: list[MetricsRow], event: MetricsEvent, last: bool = False) -> MetricsRow | None:
    found = [row for row in rows if row.event == event]
    return (found[-1] if last else found[0]) if found else None


class MetricsFollower:
    """The lines appended since it was made (or since the last call), as the file grows."""

    def __init__(self, run_dir: Path):
        self.path = metrics_file(run_dir)
        self.offset = self.path.stat().st_size if self.path.is_file() else 0

    def new_rows(self) -> list[MetricsRow]:
        try:
            with open(self.path, "rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read()
        except OSError:
            return []
        complete = chunk[: chunk.rfind(b"\n") + 1]  # a line still being written waits for the next call
        self.offset += len(complete)
        rows = []
        for line in complete.decode("utf-8", errors="replace").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict):
                rows.append(MetricsRow(row))
        return rows


# ---------------------------------------------------------------- execution accuracy during training (BEST reads)
# The training worker logs one EVAL line per evaluation (the Trainer's evaluate at each checkpoint save, at the
# end, and at step 0 with --eval-at-start). The registry picks a run's best checkpoint from these lines
# (`RUN:best`) and `sqlsft runs` shows it.

EXECUTION_ACCURACY = "eval_execution_accuracy"
VALID_SQL = "eval_valid_sql"
EVAL_ROWS = "eval_rows"


@dataclass(frozen=True)
class Evaluation:
    """Execution accuracy of the model at one step, on the run's first `rows` validation rows."""

    step: int
    execution_accuracy: float
    valid_sql: float | None = None
    rows: int | None = None


def evaluations(rows: list[MetricsRow]) -> list[Evaluation]:
    """One per evaluated step, in step order. A resumed run evaluates again the steps after its checkpoint:
    the last line of a step is the one its checkpoint (or model/) holds."""
    by_step: dict[int, Evaluation] = {}
    for row in rows:
        accuracy = row.number(EXECUTION_ACCURACY)
        if row.event != MetricsEvent.EVAL or row.step is None or accuracy is None:
            continue
        by_step[row.step] = Evaluation(row.step, accuracy, row.number(VALID_SQL), row.integer(EVAL_ROWS))
    return [by_step[step] for step in sorted(by_step)]


def best_evaluation(rows: list[MetricsRow]) -> Evaluation | None:
    """The best checkpoint's evaluation, as the Trainer picks best_model_checkpoint: the highest execution
    accuracy, on a tie the earliest step (only a strictly better score replaces the best). Step 0
    (--eval-at-start, the untrained model) is no checkpoint and never the best; the Trainer skips it too."""
    best = None
    for evaluation in evaluations(rows):
        if evaluation.step > 0 and (best is None or evaluation.execution_accuracy > best.execution_accuracy):
            best = evaluation
    return best
