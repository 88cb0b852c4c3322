"""The `prepare` stage: load, map columns, split, format, validate by execution, count tokens, cache.

Data flows one way: raw rows -> mapped rows -> split -> formatted prompt-completion rows with an
execution flag -> a DatasetDict on disk with a manifest beside it. Train, eval, chat and bench load
that result; nothing downstream re-does the per-row work.
"""

import hashlib
import json
import multiprocessing
import os
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sqlsft import __version__
from sqlsft.common.errors import SqlsftError
from sqlsft.common.paths import cache_dir
from sqlsft.data.prompts import REQUIRED_COLUMNS, load_templates, prompt_completion
from sqlsft.models.chat_template import ensure_chat_template

DEFAULT_DATASET = "gretelai/synthetic_text_to_sql"
DEFAULT_MODEL = "google/gemma-3-270m-it"
DEFAULT_MAX_LENGTH = 1024
SPLIT_SEED = 42
# Bump when the prepared rows change shape or content for the same inputs.
DATA_FORMAT_VERSION = 1
LOCAL_FORMATS = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
SKIPPED_IDS_SHOWN = 10
VALIDATION_TIMEOUT_S = 1.0


@dataclass
class PrepareOptions:
    """Everything that decides the prepared rows (all of it goes into the cache key)."""

    dataset: str = DEFAULT_DATASET  # "builtin", a hub id, a local dataset folder, or data file(s)
    data_files: list[str] = field(default_factory=list)  # extra train files (the first is `dataset`)
    test_file: str | None = None
    revision: str | None = None
    subset: str | None = None
    column_map: dict[str, str] = field(default_factory=dict)  # source column -> sqlsft column
    template: str = "text-to-sql"
    model: str | None = DEFAULT_MODEL  # tokenizer for the token statistics; None skips them
    max_length: int = DEFAULT_MAX_LENGTH
    num_rows: int | None = None  # builtin size (default: the generator's), or a cap on other sources
    seed: int = SPLIT_SEED
    cache_dir: str | None = None
    force: bool = False
    num_proc: int | None = None


@dataclass
class Prepared:
    path: Path  # the DatasetDict folder (datasets.load_from_disk)
    manifest: dict[str, Any]
    cache_hit: bool

    @property
    def folder(self) -> Path:
        return self.path.parent

    def load(self):
        from datasets import load_from_disk

        return load_from_disk(str(self.path))


# ---------------------------------------------------------------- sources


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


def _source_kind(options: PrepareOptions) -> str:
    if options.dataset == "builtin":
        return "builtin"
    path = Path(options.dataset).expanduser()
    if path.is_dir():
        return "folder"  # a dataset repository laid out as the hub serves it: same loader as the hub
    if path.suffix.lower() in LOCAL_FORMATS or options.data_files:
        return "files"
    return "hub"


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _local_files(options: PrepareOptions) -> dict[str, list[Path]]:
    files = {"train": [Path(f).expanduser() for f in [options.dataset, *options.data_files]]}
    if options.test_file:
        files["test"] = [Path(options.test_file).expanduser()]
    for path in (p for group in files.values() for p in group):
        if not path.is_file():
            raise SqlsftError(
                f"Data file {path} does not exist.", "Check the path, or use --dataset builtin."
            )
        if path.suffix.lower() not in LOCAL_FORMATS:
            raise SqlsftError(
                f"Data file {path} has an unsupported format.",
                f"Use one of: {', '.join(sorted(LOCAL_FORMATS))}.",
            )
    formats = {LOCAL_FORMATS[p.suffix.lower()] for group in files.values() for p in group}
    if len(formats) > 1:
        raise SqlsftError("Data files mix formats.", "Give files of one format (jsonl/json, csv or parquet).")
    return files


def source_identity(options: PrepareOptions) -> dict[str, Any]:
    """What identifies the source in the cache key (local files by content)."""
    kind = _source_kind(options)
    identity: dict[str, Any] = {"kind": kind, "revision": options.revision, "subset": options.subset}
    if kind == "files":
        identity["files"] = {
            split: [{"name": p.name, "sha256": _file_digest(p)} for p in paths]
            for split, paths in _local_files(options).items()
        }
    elif kind == "folder":
        folder = Path(options.dataset).expanduser().resolve()
        identity["folder"] = str(folder)
        identity["files"] = sorted(
            (str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*")
            if p.is_file() and ".cache" not in p.parts
        )
    else:
        identity["name"] = options.dataset
    return identity


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


def _load_local_files(options: PrepareOptions):
    from datasets import load_dataset

    files = _local_files(options)
    builder = LOCAL_FORMATS[files["train"][0].suffix.lower()]
    loaded = {}
    for split, paths in files.items():
        try:
            loaded[split] = load_dataset(builder, data_files=[str(p) for p in paths], split="train")
        except Exception as exc:
            bad = next((p for p in paths if _file_is_bad(builder, p)), paths[0])
            raise SqlsftError(
                f"Could not read {bad}: {_explain_bad_file(bad, exc)}.",
                f"Fix the file, or check that it is valid {builder.upper()}.",
            ) from exc
    return loaded


def _file_is_bad(builder: str, path: Path) -> bool:
    from datasets import load_dataset

    try:
        load_dataset(builder, data_files=[str(path)], split="train")
        return False
    except Exception:
        return True


def _hub_reachable() -> bool:
    from sqlsft.common.environment import hub_status

    return hub_status(timeout=3.0).startswith("reachable")


def _load_hub_or_folder(options: PrepareOptions, kind: str):
    """Load through `datasets.load_dataset`, the hub's own code path (a local folder goes the same way)."""
    import datasets
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    name = str(Path(options.dataset).expanduser()) if kind == "folder" else options.dataset
    offline_before = os.environ.get("HF_HUB_OFFLINE")
    went_offline = False
    if kind == "hub" and not offline_before and not _hub_reachable():
        # Fail fast instead of minutes of retries; a copy in the local datasets cache still loads.
        os.environ["HF_HUB_OFFLINE"] = "1"
        datasets.config.HF_HUB_OFFLINE = True
        went_offline = True
    try:
        loaded = datasets.load_dataset(name, options.subset, revision=options.revision)
    except GatedRepoError as exc:
        raise SqlsftError(
            f"Data set '{name}' is gated or private.",
            "Accept its terms on the hub and log in with `hf auth login` (or set HF_TOKEN).",
        ) from exc
    except Exception as exc:
        text = f"{type(exc).__name__}: {exc}"
        if (
            went_offline
            or "Couldn't reach" in text
            or "offline" in text.lower()
            or isinstance(exc, ConnectionError)
        ):
            raise SqlsftError(
                f"The Hugging Face hub is unreachable and '{name}' is not in the local cache.",
                "Use --dataset builtin, or local files (--dataset data.jsonl).",
            ) from exc
        if isinstance(exc, RepositoryNotFoundError) or "doesn't exist" in text or "not found" in text.lower():
            raise SqlsftError(
                f"Data set '{name}' was not found (or is private and needs a token: `hf auth login`).",
                "Check the name, or use --dataset builtin or a local file.",
            ) from exc
        raise SqlsftError(f"Could not load data set '{name}': {text.splitlines()[0][:300]}") from exc
    finally:
        if went_offline:
            os.environ.pop("HF_HUB_OFFLINE", None)
            datasets.config.HF_HUB_OFFLINE = False
    if isinstance(loaded, datasets.Dataset):
        loaded = datasets.DatasetDict({"train": loaded})
    return dict(loaded)


def load_source(options: PrepareOptions) -> dict[str, Any]:
    """The raw splits as `datasets.Dataset`s, before mapping, keyed by split name."""
    from datasets import Dataset

    kind = _source_kind(options)
    if kind == "builtin":
        from sqlsft.data.builtin.generator import DEFAULT_NUM_ROWS, generate_builtin_rows

        rows = generate_builtin_rows(options.num_rows or DEFAULT_NUM_ROWS, seed=options.seed)
        return {"train": Dataset.from_list(rows)}
    splits = _load_local_files(options) if kind == "files" else _load_hub_or_folder(options, kind)
    if "train" not in splits:
        raise SqlsftError(
            f"Data set '{options.dataset}' has no train split (found: {', '.join(splits)}).",
            "Name the training data 'train'.",
        )
    if options.num_rows:
        splits = {k: v.select(range(min(options.num_rows, len(v)))) for k, v in splits.items()}
    return splits


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


def split_rows(splits: dict[str, Any], seed: int = SPLIT_SEED) -> dict[str, Any]:
    """Keep a provided test split and carve validation (the size of test) out of train, as the workshop
    does; with no test split, hold out 10% of train and halve it into validation and test."""
    train = splits["train"]
    if "test" in splits:
        test = splits["test"]
        if "validation" in splits:
            return {"train": train, "validation": splits["validation"], "test": test}
        size = min(len(test), len(train) - 1)
        if size < 1:
            raise SqlsftError("The train split is too small to carve a validation split from.")
        parts = train.train_test_split(test_size=size, seed=seed)
        return {"train": parts["train"], "validation": parts["test"], "test": test}
    if len(train) < 20:
        raise SqlsftError(f"Only {len(train)} rows: too few to split into train/validation/test (need 20).")
    held = train.train_test_split(test_size=0.1, seed=seed)
    halves = held["test"].train_test_split(test_size=0.5, seed=seed)
    return {"train": held["train"], "validation": halves["train"], "test": halves["test"]}


# ---------------------------------------------------------------- per-row work (runs in worker processes)

_worker_templates = None


def _init_worker(template: str) -> None:
    global _worker_templates
    _worker_templates = load_templates(template)


def _missing_fields(row: dict[str, Any]) -> list[str]:
    return [c for c in REQUIRED_COLUMNS if not isinstance(row.get(c), str) or not row[c].strip()]


def _process_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any] | tuple[Any, list[str]]]:
    """Format one chunk of rows and execute each gold query; a skipped row comes back as (id, missing)."""
    from sqlsft.sql.sandbox import run_query

    out: list[dict[str, Any] | tuple[Any, list[str]]] = []
    for row in rows:
        missing = _missing_fields(row)
        if missing:
            out.append((row.get("id"), missing))
            continue
        record = dict(row)
        record.update(prompt_completion(_worker_templates, row))
        result = run_query(row["sql_context"], row["sql"], timeout_s=VALIDATION_TIMEOUT_S)
        record["sql_executes"] = result.ok
        record["sql_error"] = "" if result.ok else (result.error or result.status)
        out.append(record)
    return out


def _chunks(rows: list[dict[str, Any]], size: int) -> Iterable[list[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _process_split(rows: list[dict], template: str, num_proc: int, progress: Progress, label: str):
    task = progress.add_task(label, total=len(rows))
    chunk = max(50, min(2000, len(rows) // (num_proc * 8) or 50))
    results: list = []
    if num_proc <= 1 or len(rows) < 500:
        _init_worker(template)
        for part in _chunks(rows, chunk):
            results.extend(_process_rows(part))
            progress.advance(task, len(part))
        return results
    context = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn")
    with context.Pool(num_proc, initializer=_init_worker, initargs=(template,)) as pool:
        for part in pool.imap(_process_rows, _chunks(rows, chunk)):
            results.extend(part)
            progress.advance(task, len(part))
    return results


# ---------------------------------------------------------------- token statistics

_worker_tokenizer = None


def _init_token_worker(tokenizer_path: str) -> None:
    global _worker_tokenizer
    from transformers import AutoTokenizer

    _worker_tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)


def _count_tokens(conversations: list[list[dict]]) -> list[int]:
    return [
        len(_worker_tokenizer.apply_chat_template(c, tokenize=True, return_dict=False)) for c in conversations
    ]


def load_stats_tokenizer(model: str | None, console: Console):
    """A local folder with the model's tokenizer and chat template, or None (with the reason said)."""
    if not model:
        return None
    try:
        from transformers import AutoTokenizer

        if model == "embedded":
            from sqlsft.models.resolve import embedded_model_dir

            folder = embedded_model_dir(console=console)
            tokenizer = AutoTokenizer.from_pretrained(folder)
        else:
            tokenizer = AutoTokenizer.from_pretrained(model)
        ensure_chat_template(tokenizer)
        return tokenizer
    except Exception as exc:
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        console.print(
            f"[yellow]Token statistics skipped: could not load the tokenizer of {model} ({reason}).[/]"
        )
        return None


def token_statistics(tokenizer, rows: list[dict], max_length: int, num_proc: int, progress: Progress):
    import tempfile

    conversations = [r["prompt"] + r["completion"] for r in rows]
    task = progress.add_task("counting tokens", total=len(conversations))
    lengths: list[int] = []
    with tempfile.TemporaryDirectory() as folder:
        tokenizer.save_pretrained(folder)
        if num_proc <= 1 or len(conversations) < 2000:
            _init_token_worker(folder)
            for part in _chunks(conversations, 500):
                lengths.extend(_count_tokens(part))
                progress.advance(task, len(part))
        else:
            context = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn")
            with context.Pool(num_proc, initializer=_init_token_worker, initargs=(folder,)) as pool:
                for part in pool.imap(_count_tokens, _chunks(conversations, 1000)):
                    lengths.extend(part)
                    progress.advance(task, len(part))
    ordered = sorted(lengths)

    def pct(q: float) -> int:
        return ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))] if ordered else 0

    stats = {
        "tokenizer": getattr(tokenizer, "name_or_path", ""),
        "p50": pct(0.5),
        "p95": pct(0.95),
        "max": ordered[-1] if ordered else 0,
        "max_length": max_length,
        "over_max_length": sum(1 for n in lengths if n > max_length),
    }
    return stats, lengths


# ---------------------------------------------------------------- cache


def fingerprint(options: PrepareOptions, template_sources: dict[str, str]) -> tuple[str, dict[str, Any]]:
    key = {
        "source": source_identity(options),
        "dataset": options.dataset if _source_kind(options) in ("hub", "builtin") else None,
        "column_map": dict(sorted(options.column_map.items())),
        "templates": template_sources,
        "split": {"seed": options.seed, "num_rows": options.num_rows, "test_file": bool(options.test_file)},
        "tokenizer": options.model,
        "max_length": options.max_length,
        "code": {"sqlsft": __version__, "data_format": DATA_FORMAT_VERSION},
    }
    blob = json.dumps(key, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16], key


def prepared_root(options_cache_dir: str | None = None) -> Path:
    return cache_dir(options_cache_dir) / "datasets"


def _slug(options: PrepareOptions) -> str:
    name = Path(options.dataset).stem if _source_kind(options) in ("files",) else options.dataset
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name)[:60]


def prepare(options: PrepareOptions, console: Console | None = None) -> Prepared:
    """Prepare (or find in the cache) the data set described by `options`."""
    console = console or Console(stderr=True)
    started = time.perf_counter()
    templates = load_templates(options.template)
    key, key_data = fingerprint(options, templates.sources)
    folder = prepared_root(options.cache_dir) / f"{_slug(options)}-{key}"
    manifest_path = folder / "manifest.json"
    if manifest_path.is_file() and (folder / "dataset").is_dir() and not options.force:
        manifest = json.loads(manifest_path.read_text())
        console.print(f"[green]Cache hit[/] ({key}): {folder}")
        return Prepared(path=folder / "dataset", manifest=manifest, cache_hit=True)
    console.print(
        f"Cache miss ({key}): preparing {options.dataset}" + (" (--force)" if options.force else "")
    )

    import datasets

    datasets.disable_progress_bars()  # Rich shows progress; datasets' own bars would interleave
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)  # its load errors become our one line
    num_proc = options.num_proc or max(
        1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    )
    with _progress(console) as progress:
        task = progress.add_task(f"loading {options.dataset}", total=None)
        raw = load_source(options)
        progress.update(task, total=1, completed=1)
        mapped = apply_column_map(raw, options.column_map, options.dataset)
        splits = split_rows(mapped, seed=options.seed)

        processed: dict[str, list[dict]] = {}
        report: dict[str, Any] = {}
        for split, data in splits.items():
            results = _process_split(
                data.to_list(), str(templates.folder), num_proc, progress, f"{split}: formatting"
            )
            rows = [r for r in results if isinstance(r, dict)]
            skipped = [r for r in results if not isinstance(r, dict)]
            executes = sum(1 for r in rows if r["sql_executes"])
            report[split] = {
                "rows_in": len(results),
                "rows": len(rows),
                "skipped": len(skipped),
                "skipped_ids": [s[0] for s in skipped[:SKIPPED_IDS_SHOWN]],
                "skipped_missing": sorted({c for s in skipped for c in s[1]}),
                "executes": executes,
                "executable_share": round(executes / len(rows), 4) if rows else 0.0,
            }
            processed[split] = rows
        if not processed["train"]:
            raise SqlsftError(
                f"No usable rows left in '{options.dataset}' after skipping {report['train']['skipped']} "
                "with missing or empty fields.",
                "Check the column mapping (--map) and the data.",
            )

        tokens = None
        tokenizer = load_stats_tokenizer(options.model, console)
        if tokenizer is not None:
            everything = [r for rows in processed.values() for r in rows]
            tokens, lengths = token_statistics(tokenizer, everything, options.max_length, num_proc, progress)
            offset = 0
            for rows in processed.values():
                for row, length in zip(rows, lengths[offset : offset + len(rows)], strict=True):
                    row["num_tokens"] = length
                offset += len(rows)

        task = progress.add_task("saving", total=None)
        from datasets import Dataset, DatasetDict

        dataset = DatasetDict({split: Dataset.from_list(rows) for split, rows in processed.items() if rows})
        folder.mkdir(parents=True, exist_ok=True)
        staging = folder / "dataset.partial"
        dataset.save_to_disk(str(staging))
        final = folder / "dataset"
        if final.exists():
            import shutil

            shutil.rmtree(final)
        staging.rename(final)
        progress.update(task, total=1, completed=1)

    manifest = {
        "fingerprint": key,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "options": {k: v for k, v in asdict(options).items() if k not in ("force", "cache_dir", "num_proc")},
        "key": key_data,
        "template": {"name": templates.name, "folder": str(templates.folder)},
        "rows": {split: len(rows) for split, rows in processed.items()},
        "validation": report,
        "tokens": tokens,
        "seconds": round(time.perf_counter() - started, 2),
    }
    manifest_path.write_text(json.dumps(manifest, indent=2, default=str))
    return Prepared(path=folder / "dataset", manifest=manifest, cache_hit=False)


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
        disable=not console.is_terminal,
    )


# ---------------------------------------------------------------- for other stages


def list_prepared(options_cache_dir: str | None = None) -> list[Prepared]:
    """Every cached prepared data set, newest first."""
    root = prepared_root(options_cache_dir)
    found = []
    for manifest_path in root.glob("*/manifest.json"):
        if (manifest_path.parent / "dataset").is_dir():
            manifest = json.loads(manifest_path.read_text())
            found.append(
                (manifest_path.stat().st_mtime, Prepared(manifest_path.parent / "dataset", manifest, True))
            )
    return [p for _, p in sorted(found, key=lambda item: item[0], reverse=True)]


def load_prepared_split(split: str = "test", options_cache_dir: str | None = None):
    """The newest prepared data set's split (a `datasets.Dataset`), or None when nothing is cached."""
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
    return [{c: row[c] for c in ("sql_prompt", "sql_context", "sql")} for row in picked]


def summary_table(prepared: Prepared, seconds: float) -> Table:
    manifest = prepared.manifest
    table = Table(
        title=f"Prepared {manifest['options']['dataset']}" + (" (cache hit)" if prepared.cache_hit else "")
    )
    for column in ("split", "rows", "skipped", "executes", "executable"):
        table.add_column(column, justify="right" if column != "split" else "left")
    for split, info in manifest["validation"].items():
        table.add_row(
            split,
            f"{info['rows']:,}",
            f"{info['skipped']:,}",
            f"{info['executes']:,}",
            f"{100 * info['executable_share']:.1f}%",
        )
    tokens = manifest.get("tokens")
    if tokens:
        table.caption = (
            f"tokens (prompt+completion, {tokens['tokenizer']}): p50 {tokens['p50']}, p95 {tokens['p95']}, "
            f"max {tokens['max']}; {tokens['over_max_length']:,} rows over --max-length {tokens['max_length']}"
        )
    else:
        table.caption = "token statistics skipped (no tokenizer)"
    table.caption += f"\ncache: {prepared.folder}\ntime: {seconds:.1f} s"
    return table
