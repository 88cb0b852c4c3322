"""Where raw rows come from (the builtin generator, local data files, a local dataset folder, the hub), what
identifies a source in the cache key, and the column mapping from a source's names to sqlsft's."""

import hashlib
import json
import os
from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlsft.common.errors import SqlsftError
from sqlsft.common.hub import RepoKind, hub_error, looks_like_repo_id
from sqlsft.data.options import PrepareOptions
from sqlsft.data.prompts import REQUIRED_COLUMNS

BUILTIN = "builtin"
LOCAL_FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
SUPPORTED = ", ".join(sorted(LOCAL_FORMATS))
TEXT_FORMATS = (".jsonl", ".json", ".csv")  # read as UTF-8 text
# Names ending so are files the user meant, never hub ids, even when they do not exist.
FILE_SUFFIXES = (".txt", ".tsv", ".xlsx", ".xls", ".sql", ".db", ".sqlite", ".gz", ".zip", ".arrow", ".xml")


class SourceKind(StrEnum):
    BUILTIN = "builtin"
    FOLDER = "folder"  # a dataset repository laid out as the hub serves it: the hub's loader reads it
    FILES = "files"
    HUB = "hub"


def source_kind(options: PrepareOptions) -> SourceKind:
    if options.dataset == BUILTIN:
        return SourceKind.BUILTIN
    path = Path(options.dataset).expanduser()
    if path.is_dir():
        return SourceKind.FOLDER
    suffix = path.suffix.lower()
    if (
        path.exists()
        or options.data_files
        or suffix in LOCAL_FORMATS
        or suffix in FILE_SUFFIXES
        or not looks_like_repo_id(options.dataset)
    ):
        return SourceKind.FILES
    return SourceKind.HUB


# ---------------------------------------------------------------- local files


def local_files(options: PrepareOptions) -> dict[str, list[tuple[Path, str]]]:
    """The files of each split, each with the option that named it (for messages), checked to exist and to
    be of one supported format."""
    files = {
        "train": [
            (Path(options.dataset).expanduser(), "--dataset"),
            *((Path(f).expanduser(), "--data-file") for f in options.data_files),
        ]
    }
    if options.test_file:
        files["test"] = [(Path(options.test_file).expanduser(), "--test-file")]
    for path, option in (entry for group in files.values() for entry in group):
        _check_data_file(path, option)
    formats = {LOCAL_FORMATS[p.suffix.lower()] for group in files.values() for p, _ in group}
    if len(formats) > 1:
        raise SqlsftError("Data files mix formats.", "Give files of one format (jsonl/json, csv or parquet).")
    return files


def checked_test_file(options: PrepareOptions) -> Path:
    """--test-file beside a builtin, hub or folder source: checked like a local data file."""
    path = Path(options.test_file).expanduser()
    _check_data_file(path, "--test-file")
    return path


def _check_data_file(path: Path, option: str) -> None:
    if path.is_dir():
        raise SqlsftError(f"{option} {path} is a folder, not a data file.", f"Give one file ({SUPPORTED}).")
    if not path.is_file():
        raise SqlsftError(f"{option} {path} does not exist.", "Check the path, or use --dataset builtin.")
    if path.suffix.lower() not in LOCAL_FORMATS:
        raise SqlsftError(
            f"{option} {path}: '{path.suffix or 'no extension'}' is not a supported data file format.",
            f"Supported: {SUPPORTED} (JSON Lines, JSON, CSV, Parquet).",
        )


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_readable(path: Path, option: str) -> None:
    """An empty or non-UTF-8 text file gets its own line (datasets would say StopIteration, or load the
    bytes and fail later in Arrow)."""
    if path.stat().st_size == 0:
        raise SqlsftError(f"{option} {path} is empty.", "Give a file with at least one row.")
    if path.suffix.lower() not in TEXT_FORMATS:
        return
    blank = True
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as err:
                raise SqlsftError(
                    f"{option} {path} is not UTF-8 text: line {number} has the byte "
                    f"0x{line[err.start]:02x} at column {err.start + 1}.",
                    "Save the file as UTF-8 (for example `iconv -f latin1 -t utf-8 IN > OUT`).",
                ) from None
            blank = blank and not text.strip()
    if blank:
        raise SqlsftError(
            f"{option} {path} is empty (only blank lines).", "Give a file with at least one row."
        )


def _explain_bad_file(path: Path, exc: BaseException) -> str:
    """Find the first malformed line of a JSON Lines file, so the message can name it."""
    if path.suffix.lower() == ".jsonl":
        with open(path, encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    try:
                        json.loads(line)
                    except json.JSONDecodeError as err:
                        return f"line {number}: {err.msg}"
    cause = exc
    while cause.__cause__ is not None or cause.__context__ is not None:
        cause = cause.__cause__ or cause.__context__
    return str(cause).splitlines()[0][:200] if str(cause) else type(cause).__name__


def _file_is_bad(builder: str, path: Path) -> bool:
    from datasets import load_dataset

    try:
        load_dataset(builder, data_files=[str(path)], split="train")
        return False
    except Exception:
        return True


def _load_local_files(options: PrepareOptions) -> dict[str, Any]:
    files = local_files(options)
    builder = LOCAL_FORMATS[files["train"][0][0].suffix.lower()]
    return {split: _read_files(builder, entries) for split, entries in files.items()}


def _read_files(builder: str, entries: list[tuple[Path, str]]) -> Any:
    """One split from its files (each with the option that named it), as a `datasets.Dataset`."""
    from datasets import load_dataset

    for path, option in entries:
        _check_readable(path, option)
    paths = [p for p, _ in entries]
    try:
        loaded = load_dataset(builder, data_files=[str(p) for p in paths], split="train")
    except Exception as exc:
        bad = next((p for p in paths if _file_is_bad(builder, p)), paths[0])
        raise SqlsftError(
            f"Could not read {bad}: {_explain_bad_file(bad, exc)}.",
            f"Fix the file, or check that it is valid {builder.upper()}.",
        ) from exc
    if len(loaded) == 0:
        raise SqlsftError(f"{entries[0][1]} {paths[0]} has no rows.", "Give a file with at least one row.")
    return loaded


# ---------------------------------------------------------------- the hub and dataset folders


def _hub_reachable() -> bool:
    from sqlsft.common.environment import hub_status

    return hub_status(timeout=3.0).startswith("reachable")


def _load_hub_or_folder(options: PrepareOptions, kind: SourceKind) -> dict[str, Any]:
    """Load through `datasets.load_dataset`, the hub's own code path (a local folder goes the same way)."""
    import datasets

    name = str(Path(options.dataset).expanduser()) if kind == SourceKind.FOLDER else options.dataset
    went_offline = False
    if kind == SourceKind.HUB and not os.environ.get("HF_HUB_OFFLINE") and not _hub_reachable():
        # Fail fast instead of minutes of retries; a copy in the local datasets cache still loads.
        os.environ["HF_HUB_OFFLINE"] = "1"
        datasets.config.HF_HUB_OFFLINE = True
        went_offline = True
    try:
        loaded = datasets.load_dataset(name, options.subset, revision=options.revision)
    except Exception as exc:
        if kind == SourceKind.FOLDER:
            first = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
            raise SqlsftError(
                f"Could not load the dataset folder {name}: {first}",
                f"It needs data files ({SUPPORTED}) laid out as the hub serves them.",
            ) from exc
        raise hub_error(exc, name, RepoKind.DATASET, known_offline=went_offline) from exc
    finally:
        if went_offline:
            os.environ.pop("HF_HUB_OFFLINE", None)
            datasets.config.HF_HUB_OFFLINE = False
    if isinstance(loaded, datasets.Dataset):
        loaded = datasets.DatasetDict({"train": loaded})
    return dict(loaded)


# ---------------------------------------------------------------- all sources


def source_identity(options: PrepareOptions) -> dict[str, Any]:
    """What identifies the source in the cache key (local files by content)."""
    kind = source_kind(options)
    identity: dict[str, Any] = {"kind": kind, "revision": options.revision, "subset": options.subset}
    if kind == SourceKind.FILES:
        identity["files"] = {
            split: [{"name": p.name, "sha256": _file_digest(p)} for p, _ in entries]
            for split, entries in local_files(options).items()
        }
    elif kind == SourceKind.FOLDER:
        folder = Path(options.dataset).expanduser().resolve()
        identity["folder"] = str(folder)
        identity["files"] = sorted(
            (str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*")
            if p.is_file() and ".cache" not in p.parts
        )
    else:
        identity["name"] = options.dataset
    if options.test_file and kind != SourceKind.FILES:  # FILES lists it above
        path = checked_test_file(options)
        identity["test_file"] = {"name": path.name, "sha256": _file_digest(path)}
    return identity


def load_source(options: PrepareOptions) -> dict[str, Any]:
    """The raw splits as `datasets.Dataset`s, before mapping, keyed by split name."""
    from datasets import Dataset

    kind = source_kind(options)
    if kind == SourceKind.BUILTIN:
        from sqlsft.data.builtin.generator import DEFAULT_NUM_ROWS, generate_builtin_rows

        rows = generate_builtin_rows(options.num_rows or DEFAULT_NUM_ROWS, seed=options.seed)
        splits = {"train": Dataset.from_list(rows)}
    else:
        splits = (
            _load_local_files(options) if kind == SourceKind.FILES else _load_hub_or_folder(options, kind)
        )
        if "train" not in splits:
            raise SqlsftError(
                f"Data set '{options.dataset}' has no train split (found: {', '.join(splits)}).",
                "Name the training data 'train'.",
            )
    if options.test_file and kind != SourceKind.FILES:  # the file replaces the source's own test split
        path = checked_test_file(options)
        splits["test"] = _read_files(LOCAL_FORMATS[path.suffix.lower()], [(path, "--test-file")])
    if options.num_rows and kind != SourceKind.BUILTIN:  # builtin generated exactly num_rows
        splits = {k: v.select(range(min(options.num_rows, len(v)))) for k, v in splits.items()}
    return splits


# ---------------------------------------------------------------- column mapping


def parse_column_map(items: Iterable[str]) -> dict[str, str]:
    """`question=sql_prompt,context=sql_context` (or repeated options) -> {source: target}."""
    mapping: dict[str, str] = {}
    for item in items:
        for pair in filter(None, (p.strip() for p in item.split(","))):
            source, sep, target = pair.partition("=")
            if not sep or not source.strip() or not target.strip():
                raise SqlsftError(
                    f"Bad column mapping '{pair}'.",
                    "Write it as SOURCE=TARGET, e.g. --map question=sql_prompt.",
                )
            mapping[source.strip()] = target.strip()
    return mapping


def apply_column_map(splits: dict[str, Any], column_map: dict[str, str], source: str) -> dict[str, Any]:
    mapped = {}
    for split, data in splits.items():
        renames = {s: t for s, t in column_map.items() if s in data.column_names and s != t}
        clashes = [t for t in renames.values() if t in data.column_names and t not in renames]
        if clashes:
            data = data.remove_columns(clashes)
        data = data.rename_columns(renames) if renames else data
        missing = [c for c in REQUIRED_COLUMNS if c not in data.column_names]
        if missing:
            raise SqlsftError(
                f"Data set '{source}' ({split}) lacks the columns {', '.join(missing)}; "
                f"it has: {', '.join(data.column_names)}.",
                "Map yours with --map, e.g. --map question=sql_prompt,context=sql_context,answer=sql.",
            )
        if "id" not in data.column_names:
            data = data.add_column("id", list(range(len(data))))
        mapped[split] = data
    return mapped
