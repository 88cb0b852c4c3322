"""A run's status.json: its state and figures, written by the launching `sqlsft train`, read by every stage.

This module is the only one that reads or writes the file."""

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlsft.common.files import read_json, write_json
from sqlsft.runs.fields import read_record

STATUS_FILE = "status.json"


class RunState(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    UNKNOWN = "unknown"  # no status.json, or one that cannot be read


@dataclass
class RunStatus:
    """What status.json holds. Fields of the wrong type read as None and are named in `problems`."""

    status: RunState = RunState.UNKNOWN
    preset: str | None = None
    model: str | None = None
    model_path: str | None = None
    dataset: str | None = None
    gpus: int | None = None  # 0: the CPU
    processes: int | None = None
    device: str | None = None
    distribution: str | None = None
    command: str | None = None
    pid: int | None = None  # the launching sqlsft: a `running` run whose pid is gone was killed
    launcher_pid: int | None = None
    started_at: str | None = None
    started_epoch: float | None = None
    finished_at: str | None = None
    duration_s: float | None = None
    exit_code: int | None = None
    steps: int | None = None
    max_steps: int | None = None
    first_loss: float | None = None
    final_loss: float | None = None
    first_loss_mean3: float | None = None
    final_loss_mean3: float | None = None
    tokens_per_s: float | None = None
    train_seconds: float | None = None
    peak_memory_gib: float | None = None
    resumes: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list, compare=False)  # not written: found when read

    def as_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("problems")
        return data


FIELDS = frozenset(f.name for f in dataclasses.fields(RunStatus)) - {"problems"}


def status_file(run_dir: Path) -> Path:
    return Path(run_dir) / STATUS_FILE


def has_status(run_dir: Path) -> bool:
    """Whether run_dir is a run folder (sqlsft train wrote its status.json)."""
    return status_file(run_dir).is_file()


def read_status(run_dir: Path) -> RunStatus:
    status, problems = read_record(RunStatus, status_file(run_dir))
    status.problems = problems
    return status


def update_status(run_dir: Path, **fields: Any) -> RunStatus:
    """Merge fields into status.json and write it back atomically (keys this version does not know are kept)."""
    unknown = set(fields) - FIELDS
    if unknown:
        raise TypeError(f"status.json has no field {', '.join(sorted(unknown))}")
    path = status_file(run_dir)
    data = read_json(path)
    data.update(fields)
    write_json(path, data)
    return read_status(run_dir)
