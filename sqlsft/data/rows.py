"""The per-row work of `prepare`: render each row into prompt-completion messages and run its gold query in
the SQLite sandbox. Rows that cannot be used are skipped and counted, never fatal."""

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlsft.data.parallel import map_chunks
from sqlsft.data.prompts import (
    REQUIRED_COLUMNS,
    PromptTemplates,
    SqlFormatError,
    compile_templates,
    prompt_completion,
)

SKIPPED_IDS_SHOWN = 10
VALIDATION_TIMEOUT_S = 1.0
PARALLEL_MIN_ROWS = 500  # below this, worker processes cost more than they save
UNFORMATTABLE = "unformattable"

_worker_templates: PromptTemplates | None = None


def _init_worker(folder: str, sources: dict[str, str]) -> None:
    global _worker_templates
    _worker_templates = compile_templates(Path(folder), sources)


def _missing_fields(row: dict[str, Any]) -> list[str]:
    return [c for c in REQUIRED_COLUMNS if not isinstance(row.get(c), str) or not row[c].strip()]


def _process_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any] | tuple[Any, list[str] | str]]:
    """Format a chunk of rows and execute each gold query. A skipped row comes back as (id, missing columns)
    or (id, UNFORMATTABLE)."""
    from sqlsft.sql.sandbox import run_query

    out: list[dict[str, Any] | tuple[Any, list[str] | str]] = []
    for row in rows:
        missing = _missing_fields(row)
        if missing:
            out.append((row.get("id"), missing))
            continue
        record = dict(row)
        try:
            record.update(prompt_completion(_worker_templates, row))
        except SqlFormatError:
            out.append((row.get("id"), UNFORMATTABLE))
            continue
        result = run_query(row["sql_context"], row["sql"], timeout_s=VALIDATION_TIMEOUT_S)
        record["sql_executes"] = result.ok
        record["sql_error"] = "" if result.ok else (result.error or result.status)
        out.append(record)
    return out


def process_split(
    rows: list[dict[str, Any]],
    templates: PromptTemplates,
    num_proc: int,
    advance: Callable[[int], None] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(the usable rows with prompt, completion, sql_executes and sql_error added; the split's report)."""
    results = map_chunks(
        _process_rows,
        rows,
        num_proc=num_proc if len(rows) >= PARALLEL_MIN_ROWS else 1,
        chunk_size=max(50, min(2000, len(rows) // (num_proc * 8) or 50)),
        initializer=_init_worker,
        initargs=(str(templates.folder), templates.sources),
        advance=advance,
    )
    kept = [r for r in results if isinstance(r, dict)]
    skipped = [r for r in results if not isinstance(r, dict)]
    executes = sum(1 for r in kept if r["sql_executes"])
    report = {
        "rows_in": len(results),
        "rows": len(kept),
        "skipped": len(skipped),
        "skipped_ids": [row_id for row_id, _ in skipped[:SKIPPED_IDS_SHOWN]],
        "skipped_missing": sorted({c for _, why in skipped if why != UNFORMATTABLE for c in why}),
        "skipped_unformattable": sum(1 for _, why in skipped if why == UNFORMATTABLE),
        "executes": executes,
        "executable_share": round(executes / len(kept), 4) if kept else 0.0,
    }
    return kept, report
