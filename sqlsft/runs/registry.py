"""The run registry: each training run is a folder under runs_dir(), the hand-off to serve, eval and chat.

    runs/<YYYYmmdd-HHMMSS>-<preset>/
        config.yaml  accelerate.yaml  launch.sh  train.log  run.json  metrics.jsonl  status.json
        checkpoints/checkpoint-N/   model/   eval/<split>-<time>/report.json

A folder is a run when it has a status.json (sqlsft.runs.status). Wherever a run is accepted, RUN is its name,
its folder or `latest` (the newest completed run), optionally followed by the model folder to take from it:
`RUN:best` (the checkpoint with the best execution accuracy logged during training) or `RUN:checkpoint-N`.
Both are parsed here and nowhere else: `resolve_run` returns a Run whose `final_model_dir()` is that folder.
"""

import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from sqlsft.common.errors import SqlsftError
from sqlsft.common.formatting import slug
from sqlsft.common.paths import runs_dir
from sqlsft.common.processes import pid_alive
from sqlsft.runs import checkpoints as checkpoint_files
from sqlsft.runs.metrics import (
    Evaluation,
    MetricsEvent,
    best_evaluation,
    evaluations,
    first_event,
    read_metrics,
)
from sqlsft.runs.status import RunState, RunStatus, has_status, read_status, update_status

__all__ = [
    "BEST", "LATEST", "Run", "RunFolder", "RunState", "RunStatus", "list_runs", "load_run", "new_run_dir",
    "read_metrics", "resolve_run", "split_selection", "update_status",
]  # fmt: skip

LATEST = "latest"
BEST = "best"
_CHECKPOINT_SELECTION = re.compile(rf"{checkpoint_files.PREFIX}(\d+)")
ADAPTER_CONFIG_FILE = "adapter_config.json"  # peft's: a LoRA run's checkpoints hold only the adapter


def split_selection(spec: str) -> tuple[str, str | None]:
    """`RUN:best` -> (RUN, "best"), `RUN:checkpoint-N` -> (RUN, "checkpoint-N"), else (spec, None).

    Only these two suffixes split: hub ids (never a colon), `.gguf` files and other paths pass unchanged."""
    head, colon, tail = spec.rpartition(":")
    if colon and head and (tail == BEST or _CHECKPOINT_SELECTION.fullmatch(tail)):
        return head, tail
    return spec, None


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
    selected: str | None = None  # `best` or `checkpoint-N` (from RUN:best): what final_model_dir() returns

    @property
    def label(self) -> str:
        """The model's name for the user: `RUN`, or `RUN:best`, never to be taken for the final model."""
        return f"{self.name}:{self.selected}" if self.selected else self.name

    def select(self, selected: str | None) -> "Run":
        return replace(self, selected=selected)

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

    def best_evaluation(self) -> Evaluation | None:
        """The evaluation during training with the best execution accuracy (metrics.jsonl), if any."""
        return best_evaluation(read_metrics(self.path))

    def final_step(self) -> int | None:
        """The step model/ was saved at."""
        saved = first_event(read_metrics(self.path), MetricsEvent.SAVED, last=True)
        step = saved.step if saved is not None else None
        return step if step is not None else self.steps

    def final_model_dir(self) -> Path:
        """The folder this run's model is loaded from: model/, or the selected checkpoint (RUN:best,
        RUN:checkpoint-N); a clear error (naming what exists instead) when there is none."""
        if self.selected == BEST:
            return self._best_model_dir()
        if self.selected:
            return self._step_model_dir(int(self.selected.removeprefix(checkpoint_files.PREFIX)), None)
        if self.model_dir.is_dir():
            return self.model_dir
        if saved := self.checkpoints():
            hint = f"Serve a checkpoint instead: sqlsft serve {self.name}:{saved[-1].name}"
        else:
            found = sorted(self.path.glob("**/checkpoint-*"), key=lambda p: p.stat().st_mtime)
            hint = f"Serve a checkpoint instead: sqlsft serve {found[-1]}" if found else None
        raise SqlsftError(f"Run {self.name} has no final model folder (status: {self.status}).", hint)

    def _best_model_dir(self) -> Path:
        rows = read_metrics(self.path)
        best = best_evaluation(rows)
        if best is None:
            after = " after step 0 (the untrained model)" if evaluations(rows) else ""
            raise SqlsftError(
                f"Run {self.name} has no execution-accuracy evaluations{after}; train with --eval-rows N.",
                f"Use {self.name} for its final model.",
            )
        return self._step_model_dir(best.step, best)

    def _step_model_dir(self, step: int, best: Evaluation | None) -> Path:
        """checkpoint-<step>/, else model/ when that is the final step's model (the checkpoint was deleted by
        save_total_limit, or never written: the evaluation at the end of a run saved without checkpoints)."""
        checkpoint = self.checkpoints_dir / f"{checkpoint_files.PREFIX}{step}"
        adapter_only = (
            not (checkpoint / "config.json").is_file() and (checkpoint / ADAPTER_CONFIG_FILE).is_file()
        )
        if checkpoint.is_dir() and not adapter_only:
            return checkpoint
        if step == self.final_step() and self.model_dir.is_dir():
            return self.model_dir
        if adapter_only:
            raise SqlsftError(
                f"Run {self.name}'s {checkpoint.name} holds only its LoRA adapter, not a model to load.",
                f"Use {self.name} for its final model (--load-best makes model/ the best checkpoint's).",
            )
        left = [p.name.removeprefix(checkpoint_files.PREFIX) for p in self.checkpoints()]
        usable = ([self.name] if self.model_dir.is_dir() else []) + (
            [f"{self.name}:{checkpoint_files.PREFIX}{left[-1]}"] if left else []
        )
        problem = (
            f"'s best step {step} has no checkpoint left"
            if best is not None
            else f" has no checkpoint-{step}"
        )
        raise SqlsftError(
            f"Run {self.name}{problem}; its checkpoints: {', '.join(left) or 'none'}.",
            f"Use {' or '.join(usable)}." if usable else None,
        )


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
    """A run by name, by folder path, or `latest` (the newest completed run), with `:best` or
    `:checkpoint-N` selecting the model folder its final_model_dir() returns."""
    spec, selected = split_selection(str(name or LATEST).strip())
    return _named_run(spec, root).select(selected)


def _named_run(name: str, root: Path | None) -> Run:
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
