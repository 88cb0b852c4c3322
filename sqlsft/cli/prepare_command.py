import time
from pathlib import Path

import typer

from sqlsft.cli.app import app, console


@app.command("prepare")
def prepare_command(
    dataset: str = typer.Option(
        "gretelai/synthetic_text_to_sql",
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
    template: str = typer.Option("text-to-sql", "--template", help="A shipped template name or a folder."),
    model: str = typer.Option(
        "google/gemma-3-270m-it",
        "--model",
        help="Tokenizer for token statistics ('embedded', an id or a folder).",
    ),
    no_token_stats: bool = typer.Option(False, "--no-token-stats", help="Skip the token statistics."),
    max_length: int = typer.Option(1024, "--max-length", help="Count rows longer than this many tokens."),
    num_rows: int | None = typer.Option(None, "--num-rows", help="Builtin size, or a cap on the rows read."),
    seed: int = typer.Option(42, "--seed", help="Seed for the builtin generator and the splits."),
    cache: Path | None = typer.Option(None, "--cache-dir", help="Cache folder (default $SQLSFT_CACHE_DIR)."),
    force: bool = typer.Option(False, "--force", help="Rebuild even when cached."),
    num_proc: int | None = typer.Option(None, "--num-proc", help="Worker processes (default: every core)."),
) -> None:
    """Load, format, validate (by executing every gold query in SQLite) and cache a text-to-SQL data set."""
    from sqlsft.data.prepare import PrepareOptions, parse_column_map, prepare, summary_table

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
    prepared = prepare(options, console=console)
    console.print(summary_table(prepared, time.perf_counter() - started))
    for split, info in prepared.manifest["validation"].items():
        if info["skipped"]:
            shown = ", ".join(str(i) for i in info["skipped_ids"])
            console.print(
                f"[yellow]{split}: skipped {info['skipped']} rows with missing or empty "
                f"{', '.join(info['skipped_missing'])} (ids {shown}{', ...' if info['skipped'] > len(info['skipped_ids']) else ''})[/]"
            )
