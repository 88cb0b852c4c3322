"""The `prepare` stage: load, map columns, split, format, validate by execution, count tokens, cache.

Data flows one way: raw rows -> mapped rows -> split -> formatted prompt-completion rows with an
execution flag -> a DatasetDict on disk with a manifest beside it. Train, eval, chat and bench load
that result (`Prepared`); nothing downstream re-does the per-row work.
"""

import os
import time
from dataclasses import asdict
from typing import Protocol

from rich.console import Console

from sqlsft.common.errors import SqlsftError
from sqlsft.data import cache
from sqlsft.data.cache import Manifest, Prepared
from sqlsft.data.options import RUNTIME_FIELDS, PrepareOptions
from sqlsft.data.prompts import load_templates
from sqlsft.data.rows import process_split
from sqlsft.data.sources import apply_column_map, load_source
from sqlsft.data.splits import split_rows
from sqlsft.data.token_stats import load_stats_tokenizer, token_statistics


class PrepareProgress(Protocol):
    """What prepare tells while it works (the CLI draws it; see sqlsft.cli.views.data)."""

    def step(self, description: str, total: int | None = None) -> None:
        """A new step, with the number of rows it goes through when it counts them."""

    def advance(self, rows: int) -> None:
        """Rows of the current step are done."""


class _StepLines:
    """The progress of a caller that draws none: one line per step."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def step(self, description: str, total: int | None = None) -> None:
        self.console.print(f"  {description}" + (f" ({total:,} rows)" if total else ""), highlight=False)

    def advance(self, rows: int) -> None:
        pass


def _default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def prepare(
    options: PrepareOptions, console: Console | None = None, progress: PrepareProgress | None = None
) -> Prepared:
    """Prepare (or find in the cache) the data set described by `options`."""
    console = console or Console(stderr=True)
    progress = progress or _StepLines(console)
    started = time.perf_counter()
    templates = load_templates(options.template)
    key, key_data = cache.fingerprint(options, templates.sources)
    folder = cache.preparation_folder(options, key)
    found = None if options.force else Prepared.open(folder)
    if found is not None:
        console.print(f"[green]Cache hit[/] ({key}): {folder}")
        return found
    cache.check_writable(options.cache_dir)
    console.print(
        f"Cache miss ({key}): preparing {options.dataset}" + (" (--force)" if options.force else "")
    )

    import datasets

    datasets.disable_progress_bars()  # prepare reports its progress itself; datasets' bars would interleave
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)  # its load errors become our one line
    num_proc = options.num_proc or _default_workers()

    progress.step(f"loading {options.dataset}")
    raw = load_source(options)
    splits = split_rows(apply_column_map(raw, options.column_map, options.dataset), seed=options.seed)
    processed: dict[str, list[dict]] = {}
    report: dict[str, dict] = {}
    for name, data in splits.items():
        progress.step(f"{name}: formatting", total=len(data))
        processed[name], report[name] = process_split(data.to_list(), templates, num_proc, progress.advance)
    if not processed["train"]:
        raise SqlsftError(
            f"No usable rows left in '{options.dataset}' after skipping {report['train']['skipped']} "
            "with missing or empty fields (or SQL too large to format).",
            "Check the column mapping (--map) and the data.",
        )

    tokens = None
    tokenizer = load_stats_tokenizer(options.model, console)
    if tokenizer is not None:
        everything = [row for rows in processed.values() for row in rows]
        progress.step("counting tokens", total=len(everything))
        tokens, lengths = token_statistics(
            tokenizer, everything, options.max_length, num_proc, progress.advance
        )
        for row, length in zip(everything, lengths, strict=True):
            row["num_tokens"] = length

    progress.step("saving")
    dataset = datasets.DatasetDict(
        {name: datasets.Dataset.from_list(rows) for name, rows in processed.items() if rows}
    )
    manifest: Manifest = {
        "fingerprint": key,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "options": {k: v for k, v in asdict(options).items() if k not in RUNTIME_FIELDS},
        "key": key_data,
        "template": {"name": templates.name, "folder": str(templates.folder)},
        "rows": {name: len(rows) for name, rows in processed.items()},
        "validation": report,
        "tokens": tokens,
        "seconds": round(time.perf_counter() - started, 2),
    }
    return cache.save(folder, dataset, manifest)
