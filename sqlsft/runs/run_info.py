"""A run's run.json: what the run was made from (model weights, prepared data). Written once by `sqlsft train`
before the launch; read by the training worker, eval (a run's own test split) and bench.

This module is the only one that reads or writes the file."""

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from sqlsft.common.errors import SqlsftError
from sqlsft.common.files import write_json
from sqlsft.runs.fields import read_record

RUN_INFO_FILE = "run.json"


@dataclass
class RunInfo:
    model: str | None = None  # what the user asked for (a hub id, a folder, `embedded`)
    model_path: str | None = None  # what from_pretrained loads
    data_path: str | None = None  # the prepared DatasetDict folder
    data_manifest: str | None = None
    data_cache_hit: bool | None = None
    data_token_counts: bool | None = None  # rows carry num_tokens made with this model's tokenizer
    problems: list[str] = field(default_factory=list, compare=False)


def run_info_file(run_dir: Path) -> Path:
    return Path(run_dir) / RUN_INFO_FILE


def write_run_info(run_dir: Path, info: RunInfo) -> Path:
    data = dataclasses.asdict(info)
    data.pop("problems")
    return write_json(run_info_file(run_dir), data)


def read_run_info(run_dir: Path) -> RunInfo:
    """run.json as written; missing or damaged fields read as None (see `problems`)."""
    info, problems = read_record(RunInfo, run_info_file(run_dir))
    info.problems = problems
    return info


def require_run_info(run_dir: Path) -> RunInfo:
    """run.json with the model and data paths a training launch needs, or a one-line error."""
    info = read_run_info(run_dir)
    if not info.model_path or not info.data_path:
        detail = "; ".join(info.problems) or "no model_path or data_path"
        raise SqlsftError(
            f"{run_info_file(run_dir)} is incomplete ({detail}).",
            "Start a new run: this one was not written by `sqlsft train`, or was damaged.",
        )
    return info
