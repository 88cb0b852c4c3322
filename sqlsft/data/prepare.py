"""The `prepare` stage: load, map columns, split, format, validate by execution, count tokens, cache.

Data flows one way: raw rows -> mapped rows -> split -> formatted prompt-completion rows with an
execution flag -> a DatasetDict on disk with a manifest beside it. Train, eval, chat and bench load
that result (`Prepared`); nothing downstream re-does the per-row work.
"""

import os
import time
from collections.abc import Callable
from dataclasses import asdict

from rich.console import Console

from sqlsft.common.errors import SqlsftError
from sqlsft.data import cache
from sqlsft.data.cache import Manifest, Prepared
from sqlsft.data.options import RUNTIME_FIELDS, PrepareOptions
from sqlsft.data.prompts import load_templates
from sqlsft.data.rows import process_split
from sqlsft.data.sources import apply_column_map, load_source
from sqlsft.data.splits import split_rows
from sqlsft.data.token_stats import add_token_counts, load_stats_tokenizer

StepReporter = Callable[[str], None]  # told what prepare does next, e.g. "train: formatting 10,800 rows"


def _default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def prepare(
    options: PrepareOptions, console: Console | None = None, on_step: StepReporter | None = None
) -> Prepared:
    """Prepare (or find in the cache) the data set described by `options`."""
    console = console or Console(stderr=True)
    step = on_step or (lambda text: console.print(f"  {text}", highlight=False))
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

    datasets.disable_progress_bars()  # prepare reports its steps itself; datasets' bars would interleave
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)  # its load errors become our one line
    num_proc = options.num_proc or _default_workers()

    step(f"loading {options.dataset}")
    splits = split_rows(
        apply_column_map(load_source(options), options.column_map, options.dataset), options.seed
    )
    processed, report = {}, {}
    for name, data in splits.items():
        step(f"{name}: formatting and running {len(data):,} gold queries")
        processed[name], report[name] = process_split(data, templates, num_proc)
    if not len(processed["train"]):
        raise SqlsftError(
            f"No usable rows left in '{options.dataset}' after skipping {report['train']['skipped']} "
            "with missing or empty fields, or SQL too large to format.",
            "Check the column mapping (--map) and the data.",
        )

    tokens = None
    tokenizer = load_stats_tokenizer(options.model, console)
    if tokenizer is not None:
        step("counting tokens")
        processed, tokens = add_token_counts(processed, tokenizer, options.max_length, num_proc)

    step("saving")
    dataset = datasets.DatasetDict({name: data for name, data in processed.items() if len(data)})
    manifest: Manifest = {
        "fingerprint": key,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "options": {k: v for k, v in asdict(options).items() if k not in RUNTIME_FIELDS},
        "key": key_data,
        "template": {"name": templates.name, "folder": str(templates.folder)},
        "rows": {name: len(data) for name, data in processed.items()},
        "validation": report,
        "tokens": tokens,
        "seconds": round(time.perf_counter() - started, 2),
    }
    return cache.save(folder, dataset, manifest)
