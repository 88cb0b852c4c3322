"""An eval's report folder, the one module that names its files:

    eval.json          what is being evaluated (EvalPlan), written before the first request
    predictions.jsonl  one ScoredRow per line, appended as each row is scored (a crash keeps them)
    report.json        the report, written last: a folder without it is unfinished, and a rerun of the same
                       model on the same rows resumes it
    compare.json       (in compare-<time>/) what `eval --compare` found

Folders: runs/<run>/eval/<split>-<time>/ for a run, else runs/eval/<model>-<time>/.
"""

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from sqlsft import __version__
from sqlsft.common.errors import SqlsftError
from sqlsft.common.files import append_jsonl, read_json, read_jsonl, unwritable_reason, write_json
from sqlsft.common.formatting import slug
from sqlsft.common.paths import runs_dir
from sqlsft.eval.scored_row import ScoredRow

PLAN_FILE = "eval.json"
PREDICTIONS_FILE = "predictions.jsonl"
REPORT_FILE = "report.json"
COMPARE_FILE = "compare.json"
LOCK_FILE = ".lock"
TIME_FORMAT = "%Y%m%d-%H%M%S"


@dataclass
class EvalPlan:
    """eval.json: what a report folder holds the answers of. Equal keys: the same model, rows and settings."""

    model: str
    run: str | None
    model_identity: str  # the model folder, or the URL and served name
    dataset: str
    prepared: str
    split: str
    limit: int | None
    rows: int
    max_tokens: int
    by: list[str]
    # the engine asked for the server eval starts (answers differ between engines); None: a given --url
    engine: str | None = None
    sqlsft_version: str = __version__
    created_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%dT%H:%M:%S"))

    @property
    def key(self) -> str:
        same = (
            self.model_identity,
            self.prepared,
            self.split,
            self.limit,
            self.rows,
            self.max_tokens,
            self.by,
            *([self.engine] if self.engine else []),  # a --url plan keeps the key it had before engines
        )
        return hashlib.sha256(json.dumps(same, default=str).encode()).hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "key": self.key}


def latest_execution_accuracy(run_path: Path) -> float | None:
    """execution_accuracy of the newest finished eval report of a run's final model (what `sqlsft runs`
    shows), if any: the reports of its checkpoints (`RUN:best`, labelled so) are not the run's figure."""
    name = Path(run_path).name
    reports = sorted(Path(run_path).glob(f"eval/*/{REPORT_FILE}"), key=_mtime, reverse=True)
    for report in reports:
        found = read_json(report)
        if found.get("model", name) != name:
            continue
        value = found.get("execution_accuracy")
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def finished_report(root: Path, plan: EvalPlan) -> tuple[dict[str, Any], Path] | None:
    """(report, folder) of the newest finished report under `root` with the same plan key, if any."""
    if not root.is_dir():
        return None
    for path in sorted((p for p in root.iterdir() if p.is_dir()), key=_mtime, reverse=True):
        if read_json(path / PLAN_FILE).get("key") != plan.key:
            continue
        report = read_json(path / REPORT_FILE)
        if report:
            return report, path
    return None


def reports_root(run=None) -> Path:
    """Where an eval's report folder goes: into the run's folder, else runs/eval/."""
    return Path(run.path) / "eval" if run is not None else runs_dir() / "eval"


def check_writable(folder: Path) -> None:
    """One clear line, before any data is prepared or any request made, when the report cannot be saved."""
    reason = unwritable_reason(folder)
    if reason:
        raise SqlsftError(
            f"Cannot save the eval report in {folder} ({reason}).",
            "Make that folder writable, or set SQLSFT_RUNS_DIR to a writable folder (for a model that is not a run).",
        )


def folder_name(label: str, split: str, run=None, stamp: str | None = None) -> str:
    stamp = stamp or time.strftime(TIME_FORMAT)
    if run is not None:
        return f"{split}-{stamp}"
    path = Path(label).expanduser()
    name = path.name if path.exists() else label.replace("/", "-")
    return f"{slug(name, fallback='model')[:60]}-{stamp}"


class ReportFolder:
    """A report folder being filled: held under a lock, so two evals never write into the same one."""

    def __init__(self, path: Path, plan: EvalPlan, lock) -> None:
        self.path, self.plan, self._lock = path, plan, lock

    @classmethod
    def create(cls, root: Path, name: str, plan: EvalPlan) -> "ReportFolder":
        path, n = root / name, 1
        while True:  # the same model twice in one --compare, or two evals in the same second
            try:
                path.mkdir(parents=True)
                break
            except FileExistsError:
                n += 1
                path = root / f"{name}-{n}"
            except OSError as exc:
                raise SqlsftError(f"Cannot create the eval report folder {path} ({exc.strerror}).") from None
        folder = cls(path, plan, _try_lock(path))
        write_json(path / PLAN_FILE, plan.to_json())
        return folder

    @classmethod
    def unfinished(cls, root: Path, plan: EvalPlan) -> "ReportFolder | None":
        """The newest folder under `root` with the same plan key and no report yet (not held by another eval)."""
        if not root.is_dir():
            return None
        for path in sorted((p for p in root.iterdir() if p.is_dir()), key=_mtime, reverse=True):
            if (path / REPORT_FILE).exists() or read_json(path / PLAN_FILE).get("key") != plan.key:
                continue
            lock = _try_lock(path)
            if lock is not None:
                return cls(path, plan, lock)
        return None

    def scored_rows(self) -> dict[int, ScoredRow]:
        """The rows already scored here (the last line of a row wins; damaged lines are skipped)."""
        found: dict[int, ScoredRow] = {}
        for line in read_jsonl(self.path / PREDICTIONS_FILE):
            try:
                record = ScoredRow.from_json(line, self.plan.by)
            except (KeyError, TypeError):
                continue
            found[record.index] = record
        return found

    def append(self, record: ScoredRow) -> None:
        append_jsonl(self.path / PREDICTIONS_FILE, record.to_json())

    def finish(self, report: dict[str, Any], records: list[ScoredRow]) -> None:
        """predictions.jsonl rewritten in row order (one line per row), then report.json: the folder is done."""
        staging = self.path / f".{PREDICTIONS_FILE}.{os.getpid()}.tmp"
        with open(staging, "w", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record.to_json(), default=str) + "\n")
        staging.replace(self.path / PREDICTIONS_FILE)
        write_json(self.path / REPORT_FILE, report)
        self.release()

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _try_lock(folder: Path):
    """The folder's lock if no other process holds it, else None."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(folder / LOCK_FILE))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return None
    return lock


def write_comparison(comparison: dict[str, Any], stamp: str) -> Path:
    """compare.json in runs/eval/compare-<time>/ (its folder recorded in it)."""
    folder = runs_dir() / "eval" / f"compare-{stamp}"
    comparison["folder"] = str(folder)
    write_json(folder / COMPARE_FILE, comparison)
    return folder
