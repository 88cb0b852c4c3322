"""`sqlsft prepare`: load, format, validate and cache a data set, then show what was prepared."""

import json
import time
from pathlib import Path

import typer

from sqlsft.cli.app import app, console, err_console
from sqlsft.data.options import (
    DEFAULT_DATASET,
    DEFAULT_MAX_LENGTH,
    DEFAULT_MODEL,
    DEFAULT_TEMPLATE,
    SPLIT_SEED,
)


@app.command("prepare")
def prepare_command(
    dataset: str = typer.Option(
        DEFAULT_DATASET,
        "--dataset",
        "-d",
        help="'builtin' (offline), a hub data set id, a local dataset folder, or a .jsonl/.json/.csv/.parquet file.",
    ),
    data_files: list[str] = typer.Option([], "--data-file", help="More training files (repeatable)."),
    test_file: str | None = typer.Option(None, "--test-file", help="A file with the test split."),
    revision: str | None = typer.Option(None, "--revision", help="Hub revision (branch, tag or commit)."),
    subset: str | None = typer.Option(None, "--subset", help="Hub subset (configuration) name."),
    column_map: list[str] = typer.Option(
        [],
        "--map",
        help="Column mapping SOURCE=TARGET, e.g. --map question=sql_prompt,context=sql_context,answer=sql.",
    ),
    template: str = typer.Option(
        DEFAULT_TEMPLATE,
        "--template",
        help="A shipped template name or a folder with system/user/assistant.jinja (a workshop prompts/ folder works).",
    ),
    model: str = typer.Option(
        DEFAULT_MODEL, "--model", help="Tokenizer for token statistics ('embedded', an id or a folder)."
    ),
    no_token_stats: bool = typer.Option(False, "--no-token-stats", help="Skip the token statistics."),
    max_length: int = typer.Option(
        DEFAULT_MAX_LENGTH, "--max-length", help="Count rows longer than this many tokens."
    ),
    num_rows: int | None = typer.Option(None, "--num-rows", help="Builtin size, or a cap on the rows read."),
    seed: int = typer.Option(SPLIT_SEED, "--seed", help="Seed for the builtin generator and the splits."),
    cache: Path | None = typer.Option(None, "--cache-dir", help="Cache folder (default $SQLSFT_CACHE_DIR)."),
    force: bool = typer.Option(False, "--force", help="Rebuild even when cached."),
    num_proc: int | None = typer.Option(None, "--num-proc", help="Worker processes (default: every core)."),
    as_json: bool = typer.Option(
        False, "--json", help="Print where the data set is and its manifest as JSON (messages go to stderr)."
    ),
) -> None:
    """Load, format, validate (by executing every gold query in SQLite) and cache a text-to-SQL data set."""
    from sqlsft.cli.views.data import prepare_progress, print_prepared
    from sqlsft.data.prepare import PrepareOptions, prepare
    from sqlsft.data.sources import parse_column_map

    started = time.perf_counter()
    options = PrepareOptions(
        dataset=dataset,
        data_files=data_files,
        test_file=test_file,
        revision=revision,
        subset=subset,
        column_map=parse_column_map(column_map),
        template=template,
        model=None if no_token_stats else model,
        max_length=max_length,
        num_rows=num_rows,
        seed=seed,
        cache_dir=str(cache) if cache else None,
        force=force,
        num_proc=num_proc,
    )
    messages = err_console if as_json else console
    with prepare_progress(messages) as progress:
        prepared = prepare(options, console=messages, progress=progress)
    if as_json:
        record = {"path": str(prepared.path), "cache_hit": prepared.cache_hit, "manifest": prepared.manifest}
        typer.echo(json.dumps(record, indent=2, default=str))
        return
    print_prepared(prepared, time.perf_counter() - started, console)
