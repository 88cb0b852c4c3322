"""`sqlsft eval --compare A B`: both models on the same rows (a server each, in turn), and what changed."""

import time
from dataclasses import dataclass
from typing import Any

from rich.console import Console

from sqlsft.common.paths import runs_dir
from sqlsft.eval.evaluate import EvalResult, evaluate_model
from sqlsft.eval.model import resolve_eval_model
from sqlsft.eval.options import EvalOptions, check_options
from sqlsft.eval.report_folder import TIME_FORMAT, check_writable, reports_root, write_comparison
from sqlsft.eval.rows import load_rows, run_preparation
from sqlsft.eval.score_rows import ProgressView
from sqlsft.sql.scoring import SCORING_RULES

METRICS = ("execution_accuracy", "execution_accuracy_lenient", "exact_match", "valid_sql")


@dataclass
class Comparison:
    results: list[EvalResult]  # A's, then B's
    summary: dict[str, Any]  # compare.json


def compare_results(a: EvalResult, b: EvalResult) -> dict[str, Any]:
    """Differences between two evaluations of the same rows: each metric, and the rows that changed."""
    metrics = {}
    for metric in METRICS:
        va, vb = a.report.get(metric), b.report.get(metric)
        metrics[metric] = {
            "a": va,
            "b": vb,
            "difference": None if va is None or vb is None else round(vb - va, 4),
        }
    fixed, broken = [], []
    for ra, rb in zip(a.predictions, b.predictions, strict=True):
        if not ra.score.gold_executes or ra.score.execution_match == rb.score.execution_match:
            continue
        entry = {
            "index": ra.index,
            "id": ra.id,
            "sql_prompt": ra.sql_prompt,
            "gold": ra.gold,
            "a": {"outcome": ra.outcome, "predicted": ra.score.predicted_sql},
            "b": {"outcome": rb.outcome, "predicted": rb.score.predicted_sql},
        }
        (fixed if rb.score.execution_match else broken).append(entry)
    return {
        "a": {"model": a.report["model"], "folder": str(a.folder)},
        "b": {"model": b.report["model"], "folder": str(b.folder)},
        "rows": len(a.predictions),
        "metrics": metrics,
        "fixed_by_b": fixed,
        "broken_by_b": broken,
        "scoring_rules": SCORING_RULES,
    }


def compare(
    model_a: str,
    model_b: str,
    options: EvalOptions,
    console: Console,
    *,
    model_name: str | None = None,
    api_key: str | None = None,
    progress: ProgressView | None = None,
) -> Comparison:
    """Evaluate A then B on the same rows. With no --dataset the rows come from the first run's own data. A model
    with a finished eval of the same rows and settings is not asked again (unless --no-resume)."""
    check_options(options)
    models = [resolve_eval_model(model_a, console), resolve_eval_model(model_b, console)]
    for root in {reports_root(m.run) for m in models} | {runs_dir() / "eval"}:
        check_writable(root)
    own = next((m.run for m in models if m.run is not None and run_preparation(m.run) is not None), None)
    data = load_rows(options, console, run=own)
    console.print(data.description, markup=False, highlight=False, soft_wrap=True)
    stamp = time.strftime(TIME_FORMAT)
    results = [
        evaluate_model(
            model,
            data,
            options,
            console,
            stamp=stamp,
            model_name=model_name,
            api_key=api_key,
            progress=progress,
            reuse_finished=options.resume,  # an untrained baseline is measured once
        )
        for model in models
    ]
    summary = compare_results(*results)
    write_comparison(summary, stamp)
    return Comparison(results, summary)
