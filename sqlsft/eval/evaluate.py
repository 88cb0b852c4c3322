"""The `eval` stage: ask a served model every question of a prepared split, score the answers, report.

Flow: MODEL resolved once (model.py) -> the report folder checked writable -> prepared rows (rows.py) ->
a report folder, new or an unfinished one of the same model and rows to resume (report_folder.py) ->
concurrent greedy chat completions (answering.py) against a server (--url, or one started here) -> each
answer scored and appended to predictions.jsonl at once (score_rows.py) -> report.json (report.py).
Rendering is the CLI's (sqlsft/cli/views/eval.py).
"""

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console

from sqlsft.common.errors import SqlsftError
from sqlsft.common.openai_target import NO_KEY, OpenAITarget, check_url, pick_served_model
from sqlsft.eval.answering import ServedModel, openai_answerer
from sqlsft.eval.model import EvalModel, answering_server, resolve_eval_model
from sqlsft.eval.options import EvalOptions, check_options
from sqlsft.eval.report import breakdown_columns, build_report
from sqlsft.eval.report_folder import (
    PREDICTIONS_FILE,
    REPORT_FILE,
    EvalPlan,
    ReportFolder,
    check_writable,
    finished_report,
    folder_name,
    reports_root,
)
from sqlsft.eval.rows import EvalRows, load_rows
from sqlsft.eval.score_rows import ProgressView, Tally, run_rows
from sqlsft.eval.scored_row import ScoredRow

LATEST = "latest"


@dataclass
class EvalResult:
    report: dict[str, Any]
    predictions: list[ScoredRow]
    folder: Path | None


@dataclass
class EvalSession:
    """One model on some rows: its report folder, the rows scored there before, and the rows still to ask."""

    model: EvalModel
    data: EvalRows
    by: list[str]
    folder: ReportFolder
    earlier: dict[int, ScoredRow]
    remaining: dict[int, dict]


def eval_plan(model: EvalModel, identity: str, data: EvalRows, options: EvalOptions) -> EvalPlan:
    """What a report folder for `model` on `data` holds the answers of (its key decides resume)."""
    return EvalPlan(
        model=model.label,
        run=getattr(model.run, "name", None),
        model_identity=identity,
        dataset=data.dataset,
        prepared=str(data.prepared.folder),
        split=data.split,
        limit=options.limit,
        rows=len(data.rows),
        max_tokens=options.max_tokens,
        by=breakdown_columns(data.rows, options.by),
        engine=options.engine if model.folder is not None else None,
    )


def finished_report_for(
    model: EvalModel, identity: str, data: EvalRows, options: EvalOptions
) -> tuple[dict[str, Any], Path] | None:
    """(report, folder) of the newest finished eval of the same model, rows and settings, if there is one."""
    return finished_report(reports_root(model.run), eval_plan(model, identity, data, options))


def reusable_result(
    model: EvalModel, identity: str, data: EvalRows, options: EvalOptions
) -> EvalResult | None:
    """The newest finished eval of the same model folder, rows and settings, if nothing in the folder changed
    after it (a run's folder never changes; a folder trained again in place does): what --compare reuses."""
    found = finished_report_for(model, identity, data, options)
    if found is None:
        return None
    report, path = found
    if model.folder is not None and _newest_change(model.folder) > (path / REPORT_FILE).stat().st_mtime:
        return None
    plan = eval_plan(model, identity, data, options)
    scored = ReportFolder(path, plan, None).scored_rows()
    if sorted(scored) != list(range(len(data.rows))):
        return None
    return EvalResult(report=report, predictions=[scored[i] for i in sorted(scored)], folder=path)


def _newest_change(folder: Path) -> float:
    paths = [folder, *folder.iterdir()] if folder.is_dir() else [folder]
    return max((p.stat().st_mtime for p in paths if p.exists()), default=0.0)


def open_session(
    model: EvalModel, identity: str, data: EvalRows, options: EvalOptions, console: Console, stamp: str | None
) -> EvalSession:
    """The report folder for `model` on `data`: an unfinished one of the same plan (resume), else a new one."""
    plan = eval_plan(model, identity, data, options)
    by = plan.by
    root = reports_root(model.run)
    folder = ReportFolder.unfinished(root, plan) if options.resume else None
    earlier: dict[int, ScoredRow] = {}
    if folder is not None:
        found = folder.scored_rows()
        earlier = {
            index: record
            for index, record in found.items()
            if index < len(data.rows) and not record.request_failed and record.gold == data.rows[index]["sql"]
        }
        console.print(
            f"Resuming {folder.path}: {len(earlier)} of {len(data.rows)} rows already scored there"
            + (
                f" ({len(found) - len(earlier)} failed requests asked again)"
                if len(found) > len(earlier)
                else ""
            )
            + f"; asking the other {len(data.rows) - len(earlier)} (--no-resume starts afresh).",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    else:
        folder = ReportFolder.create(root, folder_name(model.label, data.split, model.run, stamp), plan)
    remaining = {i: row for i, row in enumerate(data.rows) if i not in earlier}
    return EvalSession(model, data, by, folder, earlier, remaining)


def run_session(
    session: EvalSession,
    served: ServedModel | None,
    options: EvalOptions,
    console: Console,
    progress: ProgressView | None = None,
) -> EvalResult:
    """Ask `served` the remaining rows (each scored row saved at once), then write and return the report."""
    folder, rows = session.folder, session.data.rows
    records: list[ScoredRow] = []
    wall_s = 0.0
    if session.remaining and served is not None:
        console.print(
            f"Evaluating {served.label} ({served.target.model} at {served.target.display_url}) on "
            f"{len(session.remaining)} rows, {options.concurrency} requests at a time, greedy, "
            f"max {options.max_tokens} tokens",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        tally = Tally(served.label, total=len(rows))
        for record in session.earlier.values():
            tally.add(record)
        answer = openai_answerer(served.target, options.max_tokens, options.request_timeout_s)
        try:
            records, wall_s = run_rows(
                session.remaining,
                answer,
                concurrency=options.concurrency,
                by=session.by,
                on_scored=folder.append,
                progress=progress,
                tally=tally,
            )
        except KeyboardInterrupt:
            raise SqlsftError(
                f"Interrupted; every row scored so far is saved in {folder.path / PREDICTIONS_FILE}.",
                "Run the same command again to resume.",
                exit_code=130,
            ) from None
        except OSError as exc:
            raise SqlsftError(
                f"Cannot write to {folder.path} ({exc.strerror or exc}); rows scored until then are saved there."
            ) from None
    every = sorted([*session.earlier.values(), *records], key=lambda r: r.index)
    plan = folder.plan
    meta = {
        "sqlsft_version": plan.sqlsft_version,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "model": session.model.label,
        "run": plan.run,
        "served_model_name": served.target.model if served else None,
        "url": served.target.display_url if served else None,
        "server": served.server if served else "none needed (every row was scored before)",
        "dataset": plan.dataset,
        "prepared": plan.prepared,
        "split": plan.split,
        "split_rows": session.data.split_size,
        "limit": plan.limit,
        "rows_resumed": len(session.earlier),
        "generation": {
            "temperature": 0.0,
            "max_tokens": options.max_tokens,
            "concurrency": options.concurrency,
        },
        "folder": str(folder.path),
    }
    report = build_report(every, wall_s=wall_s, by=session.by, meta=meta, asked=len(records))
    folder.finish(report, every)
    failed = [r for r in records if r.request_failed]
    if records and len(failed) == len(records) and served is not None:
        raise SqlsftError(
            f"Every request to {served.target.display_url} failed (first: {failed[0].score.error}); "
            f"report saved in {folder.path}.",
            "Check the server (`sqlsft server status`, its log) and --model-name.",
        )
    return EvalResult(report=report, predictions=every, folder=folder.path)


def evaluate_model(
    model: EvalModel,
    data: EvalRows,
    options: EvalOptions,
    console: Console,
    *,
    served: ServedModel | None = None,
    identity: str | None = None,
    stamp: str | None = None,
    model_name: str | None = None,
    api_key: str | None = None,
    progress: ProgressView | None = None,
    reuse_finished: bool = False,
) -> EvalResult:
    """One model on `data`: the server at `served`, else one started for the model's folder when rows remain.
    `reuse_finished`: a finished eval of the same folder, rows and settings is the answer (no server)."""
    if reuse_finished and served is None:
        reused = reusable_result(model, identity or str(model.folder), data, options)
        if reused is not None:
            console.print(
                f"{model.label}: reusing the finished eval in {reused.folder} (same model folder, rows and "
                "settings; --no-resume evaluates again)",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
            return reused
    session = open_session(model, identity or str(model.folder), data, options, console, stamp)
    try:
        if served is not None or not session.remaining:
            return run_session(session, served, options, console, progress)
        with answering_server(model, options, console, model_name=model_name, api_key=api_key) as started:
            return run_session(session, started, options, console, progress)
    finally:
        session.folder.release()


def evaluate(
    model: str | None,
    options: EvalOptions,
    console: Console,
    *,
    url: str | None = None,
    model_name: str | None = None,
    api_key: str | None = None,
    progress: ProgressView | None = None,
) -> EvalResult:
    """`sqlsft eval`: evaluate one model (a run, folder, hub id, or whatever serves at `url`).

    Checked before any data is prepared or any request made: the options, the model (or the server at
    `url`), and that the report can be saved."""
    check_options(options)
    served = None
    if url:
        target = OpenAITarget(check_url(url), api_key=api_key or NO_KEY)
        target = replace(target, model=pick_served_model(target, model_name))
        resolved = (
            resolve_eval_model(model, console, with_folder=False)
            if model
            else EvalModel(target.model, None, None)
        )
        served = ServedModel(target, resolved.label, "given (--url)")
        identity = f"{target.display_url} {target.model}"
    else:
        resolved = resolve_eval_model(model or LATEST, console)
        identity = str(resolved.folder)
    check_writable(reports_root(resolved.run))
    data = load_rows(options, console, run=resolved.run)
    console.print(data.description, markup=False, highlight=False, soft_wrap=True)
    return evaluate_model(
        resolved,
        data,
        options,
        console,
        served=served,
        identity=identity,
        model_name=model_name,
        api_key=api_key,
        progress=progress,
    )
