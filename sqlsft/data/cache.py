"""The cache of prepared data sets: `<cache>/datasets/<name>-<fingerprint>/` holds `dataset/` (a DatasetDict
saved by `datasets`) and `manifest.json` (how it was made). This module is the only one that names them.

`Prepared` is the one handle on a preparation that every stage uses (train, eval, chat, bench): find it,
load it, read its manifest.
"""

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

from sqlsft import __version__
from sqlsft.common.errors import SqlsftError
from sqlsft.common.files import read_json, write_json
from sqlsft.common.formatting import slug
from sqlsft.common.paths import cache_dir
from sqlsft.data.options import DEFAULT_TEMPLATE, PrepareOptions
from sqlsft.data.sources import SourceKind, source_identity, source_kind

# Bump when the prepared rows change shape or content for the same inputs.
# 2: the embedded tokenizer matches llama.cpp on runs of spaces; 3: gretel-shaped builtin rows
DATA_FORMAT_VERSION = 3
DATASET_FOLDER = "dataset"
MANIFEST_FILE = "manifest.json"
EXAMPLE_COLUMNS = ("sql_prompt", "sql_context", "sql")


class Manifest(TypedDict, total=False):
    """manifest.json: how a preparation was made (read by eval, train and bench as plain JSON)."""

    fingerprint: str
    created_at: str
    options: dict[str, Any]  # PrepareOptions, less its runtime fields
    key: dict[str, Any]  # everything the fingerprint hashes
    template: dict[str, str]  # name, folder
    rows: dict[str, int]  # split -> rows kept
    validation: dict[str, dict[str, Any]]  # split -> rows_in, rows, skipped..., executes, executable_share
    tokens: dict[str, Any] | None  # tokenizer, p50, p95, max, max_length, over_max_length
    seconds: float


@dataclass
class Prepared:
    """One preparation: its `datasets` folder, its manifest, and whether this command found it cached."""

    path: Path  # the DatasetDict folder (datasets.load_from_disk)
    manifest: Manifest
    cache_hit: bool = True

    @property
    def folder(self) -> Path:
        return self.path.parent

    @property
    def manifest_path(self) -> Path:
        return self.folder / MANIFEST_FILE

    @classmethod
    def open(cls, path: str | Path) -> "Prepared | None":
        """The preparation at `path` (its folder or its dataset folder, as run.json records it), or None
        when nothing complete is there."""
        path = Path(path).expanduser()
        folder = path.parent if path.name == DATASET_FOLDER else path
        manifest = read_json(folder / MANIFEST_FILE)
        if not manifest or not (folder / DATASET_FOLDER).is_dir():
            return None
        return cls(folder / DATASET_FOLDER, manifest)

    def load(self):
        """The DatasetDict (train, validation, test)."""
        from datasets import load_from_disk

        try:
            return load_from_disk(str(self.path))
        except (OSError, ValueError) as exc:
            raise SqlsftError(
                f"The prepared data set in {self.folder} cannot be read ({type(exc).__name__}).",
                "Prepare it again with `sqlsft prepare ... --force`.",
            ) from exc

    def split(self, name: str):
        """One split as a `datasets.Dataset`; a clear error naming the splits there are."""
        splits = self.load()
        if name not in splits:
            raise SqlsftError(
                f"The prepared data set in {self.folder} has no split '{name}'.",
                f"Its splits: {', '.join(splits)}.",
            )
        return splits[name]


# ---------------------------------------------------------------- where, and under which key


def prepared_root(options_cache_dir: str | None = None) -> Path:
    return cache_dir(options_cache_dir) / "datasets"


def fingerprint(options: PrepareOptions, template_sources: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """(the 16-hex-digit cache key, what it hashes): everything that decides the prepared rows."""
    kind = source_kind(options)
    key = {
        "source": source_identity(options),
        "dataset": options.dataset if kind in (SourceKind.HUB, SourceKind.BUILTIN) else None,
        "column_map": dict(sorted(options.column_map.items())),
        "templates": template_sources,
        "split": {"seed": options.seed, "num_rows": options.num_rows, "test_file": bool(options.test_file)},
        "tokenizer": options.model,
        "max_length": options.max_length,
        "code": {"sqlsft": __version__, "data_format": DATA_FORMAT_VERSION},
    }
    blob = json.dumps(key, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16], key


def preparation_folder(options: PrepareOptions, key: str) -> Path:
    name = Path(options.dataset).stem if source_kind(options) == SourceKind.FILES else options.dataset
    return prepared_root(options.cache_dir) / f"{slug(name, 'data')[:60]}-{key}"


def check_writable(options_cache_dir: str | None = None) -> Path:
    """The prepared-data root, made if needed; one clear line when it cannot be written (checked before
    the minutes of work that would be lost)."""
    root = prepared_root(options_cache_dir)
    blocker = next((p for p in (root, *root.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise SqlsftError(
            f"The cache folder {root.parent} cannot be used: {blocker} is a file, not a folder.",
            "Set SQLSFT_CACHE_DIR (or --cache-dir) to a folder.",
        )
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=root):
            pass
    except OSError as exc:
        raise SqlsftError(
            f"The cache folder {root.parent} is not writable ({exc.strerror or type(exc).__name__}).",
            "Set SQLSFT_CACHE_DIR (or --cache-dir) to a folder you can write.",
        ) from None
    return root


def save(folder: Path, dataset, manifest: Manifest) -> Prepared:
    """Write the DatasetDict, then the manifest (a folder without a manifest is never taken as cached)."""
    staging = folder / f"{DATASET_FOLDER}.partial"
    final = folder / DATASET_FOLDER
    try:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
        dataset.save_to_disk(str(staging))
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
        write_json(folder / MANIFEST_FILE, manifest)
    except OSError as exc:
        raise SqlsftError(
            f"Could not save the prepared data set in {folder} ({exc.strerror or type(exc).__name__}).",
            "Free some disk space or set SQLSFT_CACHE_DIR (or --cache-dir) to a writable folder.",
        ) from None
    return Prepared(final, manifest, cache_hit=False)


# ---------------------------------------------------------------- finding preparations


def list_prepared(options_cache_dir: str | None = None) -> list[Prepared]:
    """Every complete preparation in the cache, newest first."""
    root = prepared_root(options_cache_dir)
    if not root.is_dir():
        return []
    found = []
    for manifest_path in root.glob(f"*/{MANIFEST_FILE}"):
        prepared = Prepared.open(manifest_path.parent)
        if prepared is not None:
            found.append((manifest_path.stat().st_mtime, prepared))
    return [p for _, p in sorted(found, key=lambda item: item[0], reverse=True)]


def find_prepared(
    dataset: str, template: str = DEFAULT_TEMPLATE, options_cache_dir: str | None = None
) -> Prepared | None:
    """The newest preparation of `dataset` (as given to prepare) with `template`, whatever its size or seed."""
    for prepared in list_prepared(options_cache_dir):
        used = prepared.manifest.get("options", {})
        if used.get("dataset") == dataset and used.get("template") == template:
            return prepared
    return None


def load_prepared_split(split: str = "test", options_cache_dir: str | None = None):
    """The newest preparation's split (a `datasets.Dataset`) that has one, or None when none does."""
    for prepared in list_prepared(options_cache_dir):
        dataset = prepared.load()
        if split in dataset:
            return dataset[split]
    return None


def latest_prepared_examples(n: int = 4, split: str = "test") -> list[dict] | None:
    """A few rows (sql_prompt, sql_context, sql) of the newest prepared test split, for UI examples."""
    data = load_prepared_split(split)
    if data is None or len(data) == 0:
        return None
    picked = data.select(range(min(n, len(data))))
    return [{c: row[c] for c in EXAMPLE_COLUMNS} for row in picked]
