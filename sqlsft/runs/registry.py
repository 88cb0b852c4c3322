"""The run registry: each training run is a folder under runs_dir(), the hand-off to serve, eval and chat.

    runs/<YYYYmmdd-HHMMSS>-<preset>/
        config.yaml  accelerate.yaml  launch.sh  train.log  run.json  metrics.jsonl  status.json
        checkpoints/checkpoint-N/   model/   eval/<split>-<time>/report.json

A folder is a run when it has a status.json (sqlsft.runs.status). "latest" means the newest completed run
wherever a run is accepted; it is resolved here and nowhere else.
"""

import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlsft.common.errors import SqlsftError
from sqlsft.common.formatting import slug
from sqlsft.common.paths import runs_dir
from sqlsft.common.processes import pid_alive
from sqlsft.runs import checkpoints as checkpoint_files
from sqlsft.runs.metrics import read_metrics
from sqlsft.runs.status import RunState, RunStatus, has_status, read_status, update_status

__all__ = [
    "LATEST", "Run", "RunFolder", "RunState", "RunStatus", "list_runs", "load_run", "new_run_dir",
    "read_metrics", "resolve_run", "update_status",
]  # fmt: skip

LATEST = "latest"


@dataclass
class RunFolder:
    """Where each file of a run lives. The files passed between processes (status.json, run.json,
    metrics.jsonl) are named and read only by their own modules: sqlsft.runs.status, .run_info, .metrics."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config_file(self) -> Path:
        return self.path / "config.yaml"

    @property
    def accelerate_file(self) -> Path:
        return self.path / "accelerate.yaml"

    @property
    def launch_script(self) -> Path:
        return self.path / "launch.sh"

    @property
    def resume_script(self) -> Path:
        return self.path / "resume.sh"

    @property
    def log_file(self) -> Path:
        return self.path / "train.log"

    @property
    def model_dir(self) -> Path:
        return self.path / "model"

    @property
    def adapter_dir(self) -> Path:
        """A LoRA run's adapter (peft's files), next to the merged model/ (alone with --no-merge)."""
        return self.path / "adapter"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    def checkpoints(self) -> list[Path]:
        return checkpoint_files.checkpoints(self.checkpoints_dir)


@dataclass
class Run(RunFolder):
    """A run folder with its status.json read. `status` is the effective state: a `running` run whose
    launching process is gone (killed, machine rebooted) reads as interrupted."""

    record: RunStatus = field(default_factory=RunStatus)
    status: RunState = RunState.UNKNOWN

    @property
    def preset(self) -> str | None:
        return self.record.preset

    @property
    def model(self) -> str | None:
        return self.record.model

    @property
    def gpus(self) -> int | None:
        return self.record.gpus

    @property
    def steps(self) -> int | None:
        return self.record.steps

    @property
    def max_steps(self) -> int | None:
        return self.record.max_steps

    @property
    def final_loss(self) -> float | None:
        return self.record.final_loss

    @property
    def duration_s(self) -> float | None:
        return self.record.duration_s

    def final_model_dir(self) -> Path:
        """model/, or a clear error (naming a checkpoint to use instead) when the run has none."""
        if self.model_dir.is_dir():
            return self.model_dir
        found = sorted(self.path.glob("**/checkpoint-*"), key=lambda p: p.stat().st_mtime)
        hint = f"Serve a checkpoint instead: sqlsft serve {found[-1]}" if found else None
        raise SqlsftError(f"Run {self.name} has no final model folder (status: {self.status}).", hint)


def is_run_folder(path: Path) -> bool:
    return Path(path).is_dir() and has_status(path)


def load_run(path: Path) -> Run:
    path = Path(path)
    record = read_status(path)
    status = record.status
    if status == RunState.RUNNING and record.pid is not None and not pid_alive(record.pid):
        status = RunState.INTERRUPTED  # the launching sqlsft died without recording an end
    return Run(path, record, status)


def list_runs(root: Path | None = None) -> list[Run]:
    """Every run folder (one with a status.json), newest first (names start with their start time)."""
    root = Path(root) if root else runs_dir()
    if not root.is_dir():
        return []
    runs = [load_run(p) for p in root.iterdir() if is_run_folder(p)]

    def started(run: Run) -> float:
        epoch = run.record.started_epoch
        return epoch if epoch is not None else run.path.stat().st_mtime

    runs.sort(key=lambda run: (started(run), run.name), reverse=True)
    return runs


def resolve_run(name: str = LATEST, root: Path | None = None) -> Run:
    """A run by name, by folder path, or `latest` (the newest completed run)."""
    name = str(name or LATEST).strip()
    if name == LATEST:
        for run in list_runs(root):
            if run.status == RunState.COMPLETED:
                return run
        raise SqlsftError("No completed run; train one with `sqlsft train --preset demo`.")
    candidate = Path(name).expanduser()
    if is_run_folder(candidate):
        return load_run(candidate)
    folder = (Path(root) if root else runs_dir()) / name
    if is_run_folder(folder):
        return load_run(folder)
    known = [r.name for r in list_runs(root)[:5]]
    hint = (
        f"Known runs: {', '.join(known)} (see `sqlsft runs`)." if known else "Train one with `sqlsft train`."
    )
    raise SqlsftError(f"No run named '{name}' in {folder.parent}.", hint)


def new_run_dir(preset: str, root: Path | None = None, name: str | None = None) -> Path:
    """Create runs/<YYYYmmdd-HHMMSS>-<preset>/ (or runs/<name>/), never reusing an existing folder."""
    root = Path(root) if root else runs_dir()
    root.mkdir(parents=True, exist_ok=True)
    if name:
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{slug(preset)}"
    for suffix in ["", *(f"-{i}" for i in range(2, 1000))]:
        folder = root / (stem + suffix)
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
    raise SqlsftError(f"Could not create a new run folder under {root}.")
