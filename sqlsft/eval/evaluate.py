"""The `eval` stage: ask a served model every question of a prepared split, score the answers, report.

Flow: prepared rows (the training prompt format, from `prepare`'s cache) -> concurrent greedy chat
completions through the `openai` client against a server (`--url`, or one this stage starts with
`sqlsft.serve.running_server` and stops at the end) -> `sqlsft.sql.scoring` per example -> predictions
JSONL, report JSON and Rich tables in `runs/<run>/eval/<split>-<time>/`.
"""

import json
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from sqlsft import __version__
from sqlsft.common.errors import SqlsftError
from sqlsft.common.paths import runs_dir
from sqlsft.sql.scoring import (
    CORRECT,
    SCORING_RULES,
    ExampleScore,
    request_failed,
    run_gold,
    score_answer,
    summarize,
)

DEFAULT_BY = ("sql_complexity", "sql_task_type")
DEFAULT_DATASET = "builtin"
SLOWEST_SHOWN = 5
FAILED_SHOWN = 10
CHANGED_SHOWN = 10
REQUEST_TIMEOUT_S = 600.0
TIME_FORMAT = "%Y%m%d-%H%M%S"


@dataclass
class EvalOptions:
    dataset: str | None = None  # None: the run's own prepared data, else DEFAULT_DATASET
    split: str = "test"
    limit: int | None = None
    concurrency: int = 16
    max_tokens: int = 256
    by: list[str] = field(default_factory=list)  # breakdown columns (default: DEFAULT_BY)
    request_timeout_s: float = REQUEST_TIMEOUT_S
    # for a server that eval starts itself
    engine: str = "auto"
    port: int | None = None
    prepared: str | None = None  # the prepared data set's folder (filled in by load_rows)


@dataclass
class Answer:
    """What the model said for one row."""

    text: str
    latency_s: float
    finish_reason: str | None = None
    completion_tokens: int | None = None
    error: str | None = None  # the request failed


@dataclass
class Target:
    """Where the answers come from: an OpenAI-compatible server and the model name it serves."""

    url: str
    model_name: str
    api_key: str = "EMPTY"
    label: str = ""  # what the user asked for (run, folder, hub id, or the URL)
    started_by_eval: bool = False
    engine: str | None = None


@dataclass
class EvalResult:
    report: dict[str, Any]
    predictions: list[dict[str, Any]]
    folder: Path | None


# ---------------------------------------------------------------------------------------------------
# Rows


def find_or_prepare(dataset: str, console: Console):
    """The prepared data set for `dataset`, from `prepare`'s cache: the newest preparation of it with the
    default template (whatever its size, seed or tokenizer), else a new one with the defaults."""
    from sqlsft.data.prepare import PrepareOptions, list_prepared, prepare

    options = PrepareOptions(dataset=dataset, model=None)
    for prepared in list_prepared():
        used = prepared.manifest.get("options", {})
        if used.get("dataset") == dataset and used.get("template") == options.template:
            console.print(f"Data: {dataset} as prepared in {prepared.folder}")
            return prepared
    return prepare(options, console=console)


class _RunData:
    """A run's own prepared data set (what it trained on), so its test split is the one held out from it."""

    def __init__(self, path: Path, manifest: dict):
        self.path, self.folder, self.manifest = path, path.parent, manifest

    def load(self):
        from datasets import load_from_disk

        return load_from_disk(str(self.path))


def run_data(run) -> _RunData | None:
    if run is None:
        return None
    from sqlsft.runs.registry import read_json

    data_path = read_json(Path(run.path) / "run.json").get("data_path")
    if not data_path or not Path(data_path).is_dir():
        return None
    manifest = read_json(Path(data_path).parent / "manifest.json")
    return _RunData(Path(data_path), manifest)


def load_rows(options: EvalOptions, console: Console, run=None) -> list[dict[str, Any]]:
    """The first `limit` rows of the split, each with its prompt messages in the training format.

    With no --dataset, a run is evaluated on its own prepared data (its test split never met training);
    otherwise the newest preparation of the data set (default builtin) is used, or made.
    """
    own = run_data(run) if options.dataset is None else None
    if own is not None:
        options.dataset = str(own.manifest.get("options", {}).get("dataset") or own.path)
        console.print(f"Data: {run.name}'s own data ({options.dataset}) prepared in {own.folder}")
        prepared = own
    else:
        options.dataset = options.dataset or DEFAULT_DATASET
        prepared = find_or_prepare(options.dataset, console)
    splits = prepared.load()
    if options.split not in splits:
        raise SqlsftError(
            f"Data set '{options.dataset}' has no split '{options.split}'.",
            f"Use --split with one of: {', '.join(splits)}.",
        )
    data = splits[options.split]
    options.prepared = str(prepared.folder)
    for column in options.by:
        if column not in data.column_names:
            raise SqlsftError(
                f"--by {column}: no such column in '{options.dataset}'.",
                f"Columns: {', '.join(c for c in data.column_names if c not in ('prompt', 'completion'))}.",
            )
    if options.limit is not None:
        data = data.select(range(min(options.limit, len(data))))
    if len(data) == 0:
        raise SqlsftError(f"Split '{options.split}' of '{options.dataset}' is empty.")
    return data.to_list()


def breakdown_columns(rows: list[dict], by: list[str]) -> list[str]:
    if by:
        return list(by)
    return [c for c in DEFAULT_BY if rows and c in rows[0]]


# ---------------------------------------------------------------------------------------------------
# Asking the model


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__


def make_client(target: Target, timeout_s: float):
    from openai import OpenAI

    return OpenAI(base_url=target.url, api_key=target.api_key or "EMPTY", timeout=timeout_s, max_retries=0)


def served_model_name(url: str, api_key: str | None, wanted: str | None) -> str:
    """The model to ask at `url`: `wanted`, else the only one served (or 'local' among several)."""
    from openai import OpenAI

    client = OpenAI(base_url=url, api_key=api_key or "EMPTY", timeout=30.0, max_retries=0)
    try:
        names = [m.id for m in client.models.list()]
    except Exception as exc:
        raise SqlsftError(
            f"Cannot reach an OpenAI-compatible server at {url} ({_first_line(exc)}).",
            "Start one with `sqlsft serve`, fix --url, or drop --url to let eval start a server.",
        ) from exc
    if wanted:
        if names and wanted not in names:
            raise SqlsftError(
                f"The server at {url} does not serve '{wanted}'.", f"It serves: {', '.join(names)}."
            )
        return wanted
    if len(names) == 1:
        return names[0]
    if "local" in names:
        return "local"
    if not names:
        raise SqlsftError(f"The server at {url} lists no models.", "Pass --model-name.")
    raise SqlsftError(
        f"The server at {url} serves several models.", f"Pick one with --model-name: {', '.join(names)}."
    )


def openai_answerer(target: Target, max_tokens: int, timeout_s: float) -> Callable[[dict], Answer]:
    """Greedy chat completions (temperature 0) with the row's training-format prompt."""
    client = make_client(target, timeout_s)

    def answer(row: dict) -> Answer:
        started = time.perf_counter()
        try:
            response = client.chat.completions.create(
                model=target.model_name,
                messages=row["prompt"],
                temperature=0.0,
                max_tokens=max_tokens,
            )
        except Exception as exc:
            return Answer("", time.perf_counter() - started, error=_first_line(exc))
        latency = time.perf_counter() - started
        choice = response.choices[0] if response.choices else None
        usage = getattr(response, "usage", None)
        return Answer(
            text=(choice.message.content or "") if choice else "",
            latency_s=latency,
            finish_reason=choice.finish_reason if choice else None,
            completion_tokens=getattr(usage, "completion_tokens", None),
        )

    return answer


# ---------------------------------------------------------------------------------------------------
# Scoring many rows


def score_row(row: dict, answer: Answer, by: list[str], index: int) -> dict[str, Any]:
    """One line of predictions.jsonl: the row's identity, gold, answer and its scores."""
    gold = run_gold(row["sql_context"], row["sql"])
    if answer.error:
        score: ExampleScore = request_failed(row["sql"], gold, answer.error)
    else:
        score = score_answer(row["sql_context"], row["sql"], answer.text, gold=gold)
    record: dict[str, Any] = {
        "index": index,
        "id": row.get("id"),
        "sql_prompt": row["sql_prompt"],
        "gold": row["sql"],
        "answer": answer.text,
        "latency_s": round(answer.latency_s, 4),
        "finish_reason": answer.finish_reason,
        "completion_tokens": answer.completion_tokens,
    }
    record.update(score.to_dict())
    for column in by:
        record.setdefault(column, row.get(column))
    return record


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("EX {task.fields[accuracy]}"),
        TextColumn("{task.fields[failed]}"),
        TimeElapsedColumn(),
        console=console,
        disable=not console.is_terminal,
    )


def run_rows(
    rows: list[dict],
    answer: Callable[[dict], Answer],
    *,
    concurrency: int,
    by: list[str],
    console: Console,
    label: str = "eval",
) -> tuple[list[dict], float]:
    """Answer and score every row with at most `concurrency` requests in flight; records in row order."""
    records: list[dict] = []
    started = time.perf_counter()
    plain_every = max(1, len(rows) // 10)

    def work(index: int, row: dict) -> dict:
        return score_row(row, answer(row), by, index)

    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="eval")
    counted = correct = failed = 0
    try:
        with _progress(console) as progress:
            task = progress.add_task(label, total=len(rows), accuracy="-", failed="")
            futures = [pool.submit(work, i, row) for i, row in enumerate(rows)]
            for future in as_completed(futures):
                record = future.result()
                records.append(record)
                counted += record["gold_executes"]
                correct += bool(record["execution_match"])
                failed += record["outcome"] == "request_error"
                accuracy = f"{correct / counted:.1%}" if counted else "-"
                progress.update(
                    task,
                    advance=1,
                    accuracy=accuracy,
                    failed=f"[red]{failed} failed requests[/]" if failed else "",
                )
                done = len(records)
                if not console.is_terminal and (done % plain_every == 0 or done == len(rows)):
                    console.print(f"{label}: {done}/{len(rows)} rows, execution accuracy {accuracy}")
    except BaseException:
        # Ctrl-C: drop the queued rows and return at once; requests in flight end when the server stops.
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    records.sort(key=lambda r: r["index"])
    return records, time.perf_counter() - started


# ---------------------------------------------------------------------------------------------------
# Reports


def _scores_of(records: list[dict]) -> list[ExampleScore]:
    fields = ExampleScore.__dataclass_fields__
    return [ExampleScore(**{k: r[k] for k in fields}) for r in records]


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))], 4)


def build_report(
    records: list[dict], *, wall_s: float, by: list[str], meta: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The report JSON: totals, breakdowns, latency, slowest and failed examples, and the rules."""
    totals = summarize(_scores_of(records))
    breakdown: dict[str, dict[str, Any]] = {}
    for column in by:
        groups: dict[str, list[dict]] = {}
        for record in records:
            groups.setdefault(str(record.get(column)), []).append(record)
        breakdown[column] = {value: summarize(_scores_of(group)) for value, group in sorted(groups.items())}
    latencies = [r["latency_s"] for r in records if r["outcome"] != "request_error"]
    tokens = [r["completion_tokens"] for r in records if r.get("completion_tokens")]
    slowest = sorted(records, key=lambda r: r["latency_s"], reverse=True)[:SLOWEST_SHOWN]
    failed = [r for r in records if r["outcome"] != CORRECT][:FAILED_SHOWN]
    return {
        **(meta or {}),
        **totals,
        "breakdown": breakdown,
        "latency": {
            "wall_s": round(wall_s, 3),
            "requests_per_s": round(len(records) / wall_s, 3) if wall_s else None,
            "p50_s": _percentile(latencies, 0.5),
            "p95_s": _percentile(latencies, 0.95),
            "max_s": max(latencies) if latencies else None,
            "output_tokens": sum(tokens),
            "output_tokens_per_s": round(sum(tokens) / wall_s, 1) if wall_s and tokens else None,
            "hit_max_tokens": sum(1 for r in records if r.get("finish_reason") == "length"),
        },
        "slowest": [_brief(r) for r in slowest],
        "failed": [_brief(r, with_sql=True) for r in failed],
        "scoring_rules": SCORING_RULES,
    }


def _brief(record: dict, with_sql: bool = False) -> dict:
    out = {
        "index": record["index"],
        "id": record["id"],
        "outcome": record["outcome"],
        "latency_s": record["latency_s"],
    }
    if with_sql:
        out.update(
            gold=record["gold"],
            predicted=record["predicted_sql"],
            answer=record["answer"],
            error=record.get("error"),
        )
    return out


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _short(text: str | None, limit: int = 70) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def report_renderables(report: dict[str, Any]) -> Group:
    """Rich tables for a report: totals, one breakdown per column, outcomes, slowest and failed."""
    title = f"eval of {report.get('model', '?')} on {report.get('dataset', '?')}/{report.get('split', '?')}"
    totals = Table(title=title, show_header=True)
    totals.add_column("metric")
    totals.add_column("value", justify="right")
    totals.add_column("over", justify="right")
    n, executes = report["examples"], report["gold_executes"]
    totals.add_row(
        "execution accuracy", _pct(report["execution_accuracy"]), f"{executes} rows (gold executes)"
    )
    totals.add_row(
        "  lenient (extra columns)", _pct(report["execution_accuracy_lenient"]), f"{executes} rows"
    )
    totals.add_row("exact match (sqlglot)", _pct(report["exact_match"]), f"{n} rows")
    totals.add_row(
        "valid SQL (executes)", _pct(report["valid_sql"]), f"{report['schema_builds']} rows (schema builds)"
    )
    totals.add_row("parses (sqlglot)", _pct(report["parses"]), f"{n} rows")
    outcomes = ", ".join(f"{k} {v}" for k, v in report["outcomes"].items() if v)
    latency = report["latency"]
    totals.caption = (
        f"outcomes: {outcomes}\n"
        f"{latency['wall_s']:.1f} s, {latency['requests_per_s'] or 0:.2f} requests/s, "
        f"latency p50 {latency['p50_s'] or 0:.2f} s, p95 {latency['p95_s'] or 0:.2f} s"
        + (f"; {latency['hit_max_tokens']} answers hit --max-tokens" if latency["hit_max_tokens"] else "")
    )
    parts: list[Any] = [totals]
    for column, groups in report["breakdown"].items():
        table = Table(title=f"by {column}")
        for name in (column, "rows", "EX", "EX lenient", "exact", "valid", "errors+timeouts"):
            table.add_column(name, justify="left" if name == column else "right")
        for value, s in groups.items():
            o = s["outcomes"]
            table.add_row(
                value,
                str(s["examples"]),
                _pct(s["execution_accuracy"]),
                _pct(s["execution_accuracy_lenient"]),
                _pct(s["exact_match"]),
                _pct(s["valid_sql"]),
                str(o["error"] + o["timeout"]),
            )
        parts.append(table)
    if report["slowest"]:
        table = Table(title="slowest")
        for name in ("row", "id", "latency (s)", "outcome"):
            table.add_column(name, justify="right" if name != "outcome" else "left")
        for r in report["slowest"]:
            table.add_row(str(r["index"]), str(r["id"]), f"{r['latency_s']:.2f}", r["outcome"])
        parts.append(table)
    if report["failed"]:
        table = Table(title=f"not correct (first {len(report['failed'])})")
        for name in ("row", "outcome", "predicted (or the answer)", "error"):
            table.add_column(name, overflow="fold")
        for r in report["failed"]:
            shown = _short(r["predicted"]) or (
                f"[dim]{escape(_short(r['answer']))}[/]" if r.get("answer") else "-"
            )
            table.add_row(str(r["index"]), r["outcome"], shown, _short(r["error"], 60))
        parts.append(table)
    if report.get("folder"):
        parts.append(f"saved {report['folder']}/report.json and predictions.jsonl")
    return Group(*parts)


def write_outputs(folder: Path, report: dict, records: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "predictions.jsonl", "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
    (folder / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str))


# ---------------------------------------------------------------------------------------------------
# Where reports go, and which server answers


def slug(text: str) -> str:
    path = Path(text).expanduser()
    name = path.name if path.exists() else text.replace("/", "--")
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-")[:60] or "model"


def resolve_model_run(model: str | None):
    """The training run MODEL names (`latest`, a run name or its folder), or None for folders and hub ids."""
    if not model:
        return None
    from sqlsft.runs.registry import resolve_run

    try:
        return resolve_run(model)
    except SqlsftError:
        if model == "latest":
            raise
        return None


def server_model(model: str, run, console: Console) -> str:
    """What the server loads: a run's model folder, the embedded model's converted folder, or MODEL itself."""
    if run is not None:
        return str(run.model_dir)
    if model == "embedded":
        from sqlsft.models.resolve import embedded_model_dir

        return str(embedded_model_dir(console))
    return model


def report_folder(run, label: str, split: str, stamp: str) -> Path:
    base = (
        Path(run.path) / "eval" / f"{split}-{stamp}"
        if run is not None
        else runs_dir() / "eval" / f"{slug(label)}-{stamp}"
    )
    folder, n = base, 1
    while folder.exists():  # the same model twice in one --compare
        n += 1
        folder = base.with_name(f"{base.name}-{n}")
    return folder


@contextmanager
def answering_server(
    model: str | None,
    url: str | None,
    model_name: str | None,
    api_key: str | None,
    options: EvalOptions,
    console: Console,
) -> Iterator[Target]:
    """A server to ask: the one at `url`, or one started for `model` here and stopped on the way out."""
    if url:
        name = served_model_name(url, api_key, model_name)
        yield Target(url=url, model_name=name, api_key=api_key or "EMPTY", label=model or name)
        return
    if not model:
        raise SqlsftError(
            "Nothing to evaluate.", "Pass a MODEL (latest, a run, a folder, a hub id) or --url."
        )
    from sqlsft.serve.server import free_port, running_server

    kwargs: dict[str, Any] = {
        "engine": options.engine,
        "port": options.port or free_port(),
        "console": console,
    }
    if api_key:
        kwargs["api_key"] = api_key
    if model_name:
        kwargs["served_model_name"] = model_name
    console.print(f"Starting a server for {model} (stopped when eval ends)")
    with running_server(model, **kwargs) as record:
        yield Target(
            url=record.url,
            model_name=record.model_name,
            api_key=getattr(record, "api_key", None) or "EMPTY",
            label=model,
            started_by_eval=True,
            engine=getattr(record, "engine", None),
        )


# ---------------------------------------------------------------------------------------------------
# The stage


def check_options(options: EvalOptions) -> None:
    for name, value in (("--limit", options.limit), ("--concurrency", options.concurrency),
                        ("--max-tokens", options.max_tokens)):  # fmt: skip
        if value is not None and value < 1:
            raise SqlsftError(f"{name} must be at least 1 (got {value}).")


def evaluate_target(
    target: Target,
    rows: list[dict],
    options: EvalOptions,
    console: Console,
    *,
    run=None,
    stamp: str | None = None,
) -> EvalResult:
    """Ask `target` every row, score, save and return the report (also printed)."""
    by = breakdown_columns(rows, options.by)
    answer = openai_answerer(target, options.max_tokens, options.request_timeout_s)
    console.print(
        f"Evaluating {target.label} ({target.model_name} at {target.url}) on {len(rows)} rows, "
        f"{options.concurrency} requests at a time, greedy, max {options.max_tokens} tokens"
    )
    records, wall_s = run_rows(
        rows, answer, concurrency=options.concurrency, by=by, console=console, label=slug(target.label)
    )
    stamp = stamp or time.strftime(TIME_FORMAT)
    folder = report_folder(run, target.label, options.split, stamp)
    meta = {
        "sqlsft_version": __version__,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "model": target.label,
        "run": run.name if run is not None else None,
        "served_model_name": target.model_name,
        "url": target.url,
        "server": f"started by eval ({target.engine or 'auto'})"
        if target.started_by_eval
        else "given (--url)",
        "dataset": options.dataset,
        "prepared": options.prepared,
        "split": options.split,
        "limit": options.limit,
        "generation": {
            "temperature": 0.0,
            "max_tokens": options.max_tokens,
            "concurrency": options.concurrency,
        },
        "folder": str(folder),
    }
    report = build_report(records, wall_s=wall_s, by=by, meta=meta)
    write_outputs(folder, report, records)
    failed_requests = report["outcomes"]["request_error"]
    if failed_requests == len(records):
        first = next((r["error"] for r in records if r["outcome"] == "request_error"), "")
        raise SqlsftError(
            f"Every request to {target.url} failed (first: {first}); report saved in {folder}.",
            "Check the server (`sqlsft server status`, its log) and --model-name.",
        )
    return EvalResult(report=report, predictions=records, folder=folder)


def evaluate(
    model: str | None,
    options: EvalOptions,
    console: Console,
    *,
    url: str | None = None,
    model_name: str | None = None,
    api_key: str | None = None,
) -> EvalResult:
    """`sqlsft eval`: evaluate one model (a run, folder, hub id, or whatever serves at `url`)."""
    check_options(options)
    if url:
        served_model_name(url, api_key, model_name)  # an unreachable server fails before the data loads
    run = resolve_model_run(model)
    rows = load_rows(options, console, run=run)
    spec = server_model(model, run, console) if (model and not url) else model
    with answering_server(spec, url, model_name, api_key, options, console) as target:
        if model:
            target.label = model if run is None else run.name
        result = evaluate_target(target, rows, options, console, run=run)
    console.print(report_renderables(result.report))
    return result


def compare_results(a: EvalResult, b: EvalResult) -> dict[str, Any]:
    """Differences between two evaluations of the same rows: each metric, and the rows that changed."""
    metrics = ("execution_accuracy", "execution_accuracy_lenient", "exact_match", "valid_sql")
    diff = {}
    for metric in metrics:
        va, vb = a.report.get(metric), b.report.get(metric)
        diff[metric] = {
            "a": va,
            "b": vb,
            "difference": None if va is None or vb is None else round(vb - va, 4),
        }
    fixed, broken = [], []
    for ra, rb in zip(a.predictions, b.predictions, strict=True):
        if not ra["gold_executes"]:
            continue
        if ra["execution_match"] != rb["execution_match"]:
            entry = {
                "index": ra["index"],
                "id": ra["id"],
                "sql_prompt": ra["sql_prompt"],
                "gold": ra["gold"],
                "a": {"outcome": ra["outcome"], "predicted": ra["predicted_sql"]},
                "b": {"outcome": rb["outcome"], "predicted": rb["predicted_sql"]},
            }
            (fixed if rb["execution_match"] else broken).append(entry)
    return {
        "a": {"model": a.report["model"], "folder": str(a.folder)},
        "b": {"model": b.report["model"], "folder": str(b.folder)},
        "rows": len(a.predictions),
        "metrics": diff,
        "fixed_by_b": fixed,
        "broken_by_b": broken,
        "scoring_rules": SCORING_RULES,
    }


def compare_renderables(comparison: dict[str, Any]) -> Group:
    a, b = comparison["a"]["model"], comparison["b"]["model"]
    table = Table(title=f"compare on {comparison['rows']} rows: A = {a}, B = {b}")
    for name in ("metric", "A", "B", "B - A"):
        table.add_column(name, justify="left" if name == "metric" else "right")
    for metric, values in comparison["metrics"].items():
        delta = values["difference"]
        shown = (
            "-"
            if delta is None
            else f"[{'green' if delta > 0 else 'red' if delta < 0 else 'default'}]{100 * delta:+.1f} pt[/]"
        )
        table.add_row(metric.replace("_", " "), _pct(values["a"]), _pct(values["b"]), shown)
    table.caption = f"{len(comparison['fixed_by_b'])} rows correct only with B, {len(comparison['broken_by_b'])} only with A"
    parts: list[Any] = [table]
    for key, title in (("fixed_by_b", "correct only with B"), ("broken_by_b", "correct only with A")):
        rows = comparison[key][:CHANGED_SHOWN]
        if not rows:
            continue
        changed = Table(title=f"{title} (first {len(rows)} of {len(comparison[key])})")
        for name in ("row", "question", "A", "B"):
            changed.add_column(name, overflow="fold")
        for r in rows:
            changed.add_row(
                str(r["index"]),
                _short(r["sql_prompt"], 50),
                f"{r['a']['outcome']}: {_short(r['a']['predicted'], 50)}",
                f"{r['b']['outcome']}: {_short(r['b']['predicted'], 50)}",
            )
        parts.append(changed)
    if comparison.get("folder"):
        parts.append(f"saved {comparison['folder']}/compare.json")
    return Group(*parts)


def compare(
    model_a: str,
    model_b: str,
    options: EvalOptions,
    console: Console,
    *,
    model_name: str | None = None,
    api_key: str | None = None,
) -> dict[str, Any]:
    """`sqlsft eval --compare A B`: both models on the same rows (a server each, in turn), and the difference.

    With no --dataset the rows come from the first run's own data (A's, else B's)."""
    check_options(options)
    found = [resolve_model_run(model_a), resolve_model_run(model_b)]
    rows = load_rows(options, console, run=next((r for r in found if run_data(r) is not None), None))
    stamp = time.strftime(TIME_FORMAT)
    results = []
    for model, run in zip((model_a, model_b), found, strict=True):
        spec = server_model(model, run, console)
        with answering_server(spec, None, model_name, api_key, options, console) as target:
            target.label = model if run is None else run.name
            results.append(evaluate_target(target, rows, options, console, run=run, stamp=stamp))
        console.print(report_renderables(results[-1].report))
    comparison = compare_results(*results)
    folder = runs_dir() / "eval" / f"compare-{stamp}"
    folder.mkdir(parents=True, exist_ok=True)
    comparison["folder"] = str(folder)
    (folder / "compare.json").write_text(json.dumps(comparison, indent=2, ensure_ascii=False, default=str))
    console.print(compare_renderables(comparison))
    return comparison
