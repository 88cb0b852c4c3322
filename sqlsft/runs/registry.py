"""The run registry: each training run is a folder under runs_dir(), the hand-off to serve, eval and chat.

    runs/<YYYYmmdd-HHMMSS>-<preset>/
        config.yaml  accelerate.yaml  launch.sh  train.log  metrics.jsonl  status.json
        checkpoints/checkpoint-N/   model/   eval/<split>-<time>/report.json

`status.json` says running, completed, failed or interrupted (plus preset, model, GPUs, steps, loss,
times). "latest" means the newest completed run wherever a run is accepted.
"""

import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlsft.common.errors import SqlsftError
from sqlsft.common.paths import runs_dir

STATUSES = ("running", "completed", "failed", "interrupted")
LATEST = "latest"
STATUS_FILE = "status.json"
METRICS_FILE = "metrics.jsonl"
# What a checkpoint folder needs to be resumed from (weights are checked separately: several file layouts).
CHECKPOINT_FILES = ("trainer_state.json", "optimizer.pt", "scheduler.pt")


def write_json(path: Path, data: Any) -> Path:
    """Write JSON atomically (a reader never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def read_json(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def now_iso() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def _pid_alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
        return True
    except (ProcessLookupError, ValueError, TypeError):
        return False
    except PermissionError:
        return True


@dataclass
class Run:
    name: str
    path: Path
    status: str
    preset: str | None = None
    model: str | None = None
    gpus: str | None = None
    steps: int | None = None
    max_steps: int | None = None
    final_loss: float | None = None
    started_at: str | None = None
    finished_at: str | None = None
    duration_s: float | None = None
    info: dict = field(default_factory=dict)  # the whole status.json

    @property
    def model_dir(self) -> Path:
        return self.path / "model"

    @property
    def config_file(self) -> Path:
        return self.path / "config.yaml"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def metrics_file(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def log_file(self) -> Path:
        return self.path / "train.log"

    def latest_accuracy(self) -> float | None:
        """execution_accuracy of the newest eval report under eval/*/report.json, if any."""
        reports = sorted(self.path.glob("eval/*/report.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        for report in reports:
            value = read_json(report).get("execution_accuracy")
            if isinstance(value, int | float):
                return float(value)
        return None


def load_run(path: Path) -> Run:
    path = Path(path)
    info = read_json(path / STATUS_FILE)
    status = str(info.get("status") or "unknown")
    if status == "running" and info.get("pid") and not _pid_alive(info["pid"]):
        status = "interrupted"  # the launching sqlsft died without recording an end (killed, machine reboot)
    return Run(
        name=path.name,
        path=path,
        status=status,
        preset=info.get("preset"),
        model=info.get("model"),
        gpus=None if info.get("gpus") is None else str(info.get("gpus")),
        steps=info.get("steps"),
        max_steps=info.get("max_steps"),
        final_loss=info.get("final_loss"),
        started_at=info.get("started_at"),
        finished_at=info.get("finished_at"),
        duration_s=info.get("duration_s"),
        info=info,
    )


def list_runs(root: Path | None = None) -> list[Run]:
    """Every run folder (one with a status.json), newest first (names start with their start time)."""
    root = Path(root) if root else runs_dir()
    if not root.is_dir():
        return []
    runs = [load_run(p) for p in root.iterdir() if p.is_dir() and (p / STATUS_FILE).is_file()]

    def started(run: Run) -> float:
        value = run.info.get("started_epoch")
        return float(value) if isinstance(value, int | float) else run.path.stat().st_mtime

    runs.sort(key=lambda run: (started(run), run.name), reverse=True)
    return runs


def resolve_run(name: str = LATEST, root: Path | None = None) -> Run:
    """A run by name, by folder path, or `latest` (the newest completed run)."""
    name = str(name or LATEST).strip()
    if name == LATEST:
        for run in list_runs(root):
            if run.status == "completed":
                return run
        raise SqlsftError("No completed run; train one with `sqlsft train --preset demo`.")
    candidate = Path(name).expanduser()
    if candidate.is_dir() and (candidate / STATUS_FILE).is_file():
        return load_run(candidate)
    folder = (Path(root) if root else runs_dir()) / name
    if folder.is_dir() and (folder / STATUS_FILE).is_file():
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
    stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{_slug(preset)}"
    for suffix in ["", *(f"-{i}" for i in range(2, 1000))]:
        folder = root / (stem + suffix)
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
    raise SqlsftError(f"Could not create a new run folder under {root}.")


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text).strip("-") or "run"


def update_status(run_dir: Path, **fields: Any) -> dict:
    """Merge fields into status.json and write it back atomically."""
    path = Path(run_dir) / STATUS_FILE
    info = read_json(path)
    info.update(fields)
    write_json(path, info)
    return info


def read_metrics(run_dir: Path) -> list[dict]:
    """The metric lines of metrics.jsonl (a half-written last line is skipped)."""
    rows = []
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return rows
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


# ---------------------------------------------------------------- checkpoints


def checkpoints(run: Run) -> list[Path]:
    folders = [p for p in run.checkpoints_dir.glob("checkpoint-*") if p.is_dir() and p.name[11:].isdigit()]
    return sorted(folders, key=lambda p: int(p.name[11:]))


def missing_checkpoint_files(checkpoint: Path) -> list[str]:
    missing = [name for name in CHECKPOINT_FILES if not (checkpoint / name).is_file()]
    has_weights = (
        any(checkpoint.glob("*.safetensors"))
        or any(checkpoint.glob("*.bin"))
        or any(checkpoint.glob("pytorch_model*"))
    )
    if not has_weights and not (checkpoint / "pytorch_model_fsdp_0").exists():
        missing.append("model weights")
    return missing


def checkpoint_state(checkpoint: Path) -> dict:
    return read_json(checkpoint / "trainer_state.json")
