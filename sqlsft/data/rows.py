"""The per-row work of `prepare`: render each row into prompt-completion messages and run its gold query in
the SQLite sandbox. Rows that cannot be used are skipped and counted, never fatal."""

from pathlib import Path
from typing import Any

from sqlsft.data.prompts import (
    REQUIRED_COLUMNS,
    PromptTemplates,
    SqlFormatError,
    compile_templates,
    prompt_completion,
)

SKIPPED_IDS_SHOWN = 10
VALIDATION_TIMEOUT_S = 1.0
# Below this many rows, worker processes cost more than they save.
PARALLEL_MIN_ROWS = 500
SKIP_COLUMN = "skip_reason"  # why a row is skipped ("" when kept); dropped before saving
UNFORMATTABLE = "unformattable"
MISSING = "missing:"


def _message_features():
    from datasets import List, Value

    return List({"role": Value("string"), "content": Value("string")})


def _missing_fields(row: dict[str, Any]) -> list[str]:
    return [c for c in REQUIRED_COLUMNS if not isinstance(row.get(c), str) or not row[c].strip()]


def _process_batch(batch: dict[str, list], folder: str, sources: dict[str, str]) -> dict[str, list]:
    """Messages, execution flag and error for each row of a batch, or the reason it is skipped."""
    from sqlsft.sql.sandbox import run_query

    templates = compile_templates(Path(folder), sources)
    out: dict[str, list] = {
        "prompt": [],
        "completion": [],
        "sql_executes": [],
        "sql_error": [],
        SKIP_COLUMN: [],
    }
    names = list(batch)
    for values in zip(*batch.values(), strict=True):
        row = dict(zip(names, values, strict=True))
        missing = _missing_fields(row)
        messages = None
        if missing:
            reason = MISSING + ",".join(missing)
        else:
            try:
                messages = prompt_completion(templates, row)
                reason = ""
            except SqlFormatError:
                reason = UNFORMATTABLE
        if messages is None:
            out["prompt"].append(None)
            out["completion"].append(None)
            out["sql_executes"].append(False)
            out["sql_error"].append("")
            out[SKIP_COLUMN].append(reason)
            continue
        result = run_query(row["sql_context"], row["sql"], timeout_s=VALIDATION_TIMEOUT_S)
        out["prompt"].append(messages["prompt"])
        out["completion"].append(messages["completion"])
        out["sql_executes"].append(result.ok)
        out["sql_error"].append("" if result.ok else (result.error or result.status))
        out[SKIP_COLUMN].append(reason)
    return out


def process_split(data, templates: PromptTemplates, num_proc: int) -> tuple[Any, dict[str, Any]]:
    """(the usable rows with prompt, completion, sql_executes and sql_error added; the split's report)."""
    from datasets import Features, Value

    features = Features(
        {
            **data.features,
            "prompt": _message_features(),
            "completion": _message_features(),
            "sql_executes": Value("bool"),
            "sql_error": Value("string"),
            SKIP_COLUMN: Value("string"),
        }
    )
    processed = data.map(
        _process_batch,
        batched=True,
        fn_kwargs={"folder": str(templates.folder), "sources": templates.sources},
        features=features,
        num_proc=num_proc if num_proc > 1 and len(data) >= PARALLEL_MIN_ROWS else None,
        load_from_cache_file=False,
        keep_in_memory=True,
        new_fingerprint=None,
    )
    reasons = processed[SKIP_COLUMN]
    kept = [i for i, reason in enumerate(reasons) if not reason]
    skipped = [i for i, reason in enumerate(reasons) if reason]
    ids = processed.select(skipped[:SKIPPED_IDS_SHOWN])["id"] if skipped else []
    usable = processed.select(kept).remove_columns(SKIP_COLUMN)
    executes = sum(usable["sql_executes"])
    report = {
        "rows_in": len(data),
        "rows": len(kept),
        "skipped": len(skipped),
        "skipped_ids": list(ids),
        "skipped_missing": sorted(
            {
                c
                for i in skipped
                if reasons[i].startswith(MISSING)
                for c in reasons[i][len(MISSING) :].split(",")
            }
        ),
        "skipped_unformattable": sum(1 for i in skipped if reasons[i] == UNFORMATTABLE),
        "executes": executes,
        "executable_share": round(executes / len(kept), 4) if kept else 0.0,
    }
    return usable, report
