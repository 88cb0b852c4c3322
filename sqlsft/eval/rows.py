"""Which rows eval scores: one split of a data set prepared by `sqlsft prepare` (its cache), and the line that
says which preparation it is and how many rows it has.

Where the rows come from, first match wins:
  --test-file F       every row of F, prepared as the test split (train: --dataset, else F itself);
  a run, no --dataset the run's own preparation (its test split was held out from training);
  otherwise           the newest preparation of --dataset (default builtin) made from the same source files
                      with the same test file and template, else a new one with prepare's defaults.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from sqlsft.common.errors import SqlsftError
from sqlsft.eval.options import EvalOptions

if TYPE_CHECKING:
    from sqlsft.data.cache import Prepared

DEFAULT_EVAL_DATASET = "builtin"  # eval's data set when no run, --dataset or --test-file names one
PROMPT_COLUMNS = ("prompt", "completion")


@dataclass
class EvalRows:
    rows: list[dict[str, Any]]
    dataset: str  # as the report names it
    prepared: "Prepared"
    split: str
    split_size: int  # rows in the split (before --limit)
    description: str  # which preparation and how many rows, one line


def run_preparation(run) -> "Prepared | None":
    """The preparation a run trained on (recorded by `sqlsft train`), while it is still in the cache."""
    from sqlsft.data.cache import Prepared
    from sqlsft.runs.run_info import read_run_info

    data_path = read_run_info(Path(run.path)).data_path if run is not None else None
    return Prepared.open(data_path) if data_path else None


def _same_source(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return a == b
    path_a, path_b = Path(a).expanduser(), Path(b).expanduser()
    if path_a.exists() or path_b.exists():
        return path_a.resolve() == path_b.resolve()
    return a == b


def _as_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def find_preparation(dataset: str, test_file: str | None) -> "Prepared | None":
    """The newest cached preparation of `dataset` that eval may use: the same source (local files by content),
    the same test file (or none) and the default template; its size and seed may differ (eval says so)."""
    from sqlsft.data.cache import list_prepared
    from sqlsft.data.prepare import PrepareOptions
    from sqlsft.data.sources import source_identity

    wanted = PrepareOptions(dataset=dataset, test_file=test_file, model=None)
    identity = _as_json(source_identity(wanted))
    for prepared in list_prepared():
        used = prepared.manifest.get("options", {})
        if (
            _same_source(used.get("dataset"), dataset)
            and _same_source(used.get("test_file"), test_file)
            and used.get("template") == wanted.template
            and not used.get("data_files")
            and _as_json(prepared.manifest.get("key", {}).get("source")) == identity
        ):
            return prepared
    return None


def find_or_prepare(dataset: str, test_file: str | None, console: Console) -> "tuple[Prepared, str]":
    """A preparation of `dataset` (see find_preparation), made now with prepare's defaults if none fits."""
    from sqlsft.data.prepare import PrepareOptions, prepare

    found = find_preparation(dataset, test_file)
    if found is not None:
        return found, "the newest matching preparation"
    made = prepare(PrepareOptions(dataset=dataset, test_file=test_file, model=None), console=console)
    return made, "from prepare's cache" if made.cache_hit else "prepared now"


def split_options(manifest: dict[str, Any]) -> str:
    """The options of a preparation that decide its splits, as a reader checks them."""
    from sqlsft.data.options import SPLIT_SEED

    used = manifest.get("options", {})
    parts = []
    if used.get("test_file"):
        parts.append(f"test split from {used['test_file']}")
    if used.get("num_rows"):
        parts.append(f"num_rows {used['num_rows']}")
    if used.get("seed") not in (None, SPLIT_SEED):
        parts.append(f"seed {used['seed']}")
    if used.get("column_map"):
        parts.append("map " + ",".join(f"{k}={v}" for k, v in used["column_map"].items()))
    return ", ".join(parts) or "default split"


def _check_test_file(test_file: str) -> None:
    """A folder or a missing --test-file named as such (prepare checks the file's format and contents)."""
    path = Path(test_file).expanduser()
    if path.is_dir():
        raise SqlsftError(f"--test-file {test_file} is a folder, not a data file.", "Give one data file.")
    if not path.is_file():
        raise SqlsftError(f"--test-file {test_file} does not exist.", "Check the path.")


def choose_preparation(options: EvalOptions, console: Console, run=None) -> "tuple[Prepared, str, str]":
    """(preparation, data set name, how it was chosen) for these options."""
    if options.test_file:
        _check_test_file(options.test_file)
        dataset = options.dataset or options.test_file
        prepared, found = find_or_prepare(dataset, options.test_file, console)
        return prepared, dataset, f"every row of {options.test_file} as the test split, {found}"
    own = run_preparation(run) if options.dataset is None else None
    if own is not None:
        dataset = str(own.manifest.get("options", {}).get("dataset") or own.path)
        return own, dataset, f"{run.name}'s own data (its test split was held out from training)"
    dataset = options.dataset or DEFAULT_EVAL_DATASET
    prepared, found = find_or_prepare(dataset, None, console)
    return prepared, dataset, found


def load_rows(options: EvalOptions, console: Console, run=None) -> EvalRows:
    """The first `limit` rows of the split, each with its prompt messages in the training format."""
    prepared, dataset, how = choose_preparation(options, console, run)
    splits = prepared.load()
    if options.split not in splits:
        raise SqlsftError(
            f"Data set '{dataset}' has no split '{options.split}'.",
            f"Use --split with one of: {', '.join(splits)}.",
        )
    data = splits[options.split]
    for column in options.by:
        if column not in data.column_names:
            raise SqlsftError(
                f"--by {column}: no such column in '{dataset}'.",
                f"Columns: {', '.join(c for c in data.column_names if c not in PROMPT_COLUMNS)}.",
            )
    size = len(data)
    if options.limit is not None:
        data = data.select(range(min(options.limit, size)))
    if len(data) == 0:
        raise SqlsftError(f"Split '{options.split}' of '{dataset}' is empty.")
    scored = f", the first {len(data)} scored (--limit)" if len(data) < size else ", all scored"
    description = (
        f"Data: {dataset}, {how}: {prepared.folder} ({split_options(prepared.manifest)}); "
        f"split '{options.split}' has {size} rows{scored}"
    )
    return EvalRows(data.to_list(), dataset, prepared, options.split, size, description)
