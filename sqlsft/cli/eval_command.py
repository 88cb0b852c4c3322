"""`sqlsft eval`: execution accuracy of a served model on a prepared split."""

import json

import typer

from sqlsft.cli.app import app, console, err_console
from sqlsft.common.errors import SqlsftError


@app.command("eval")
def eval_command(
    model: str | None = typer.Argument(
        None,
        help="'latest' (default without --url), a run name, a model folder or a hub id. "
        "Eval starts a server for it and stops it at the end.",
        show_default=False,
    ),
    url: str | None = typer.Option(
        None, "--url", help="Ask this OpenAI-compatible server instead, e.g. http://127.0.0.1:8080/v1."
    ),
    model_name: str | None = typer.Option(
        None,
        "--model-name",
        help="Model name to request (default: the one the server lists, or 'local'); the name of the server eval starts.",
    ),
    api_key: str | None = typer.Option(None, "--api-key", help="API key of the server (default EMPTY)."),
    dataset: str | None = typer.Option(
        None,
        "--dataset",
        "-d",
        help="Data set, as for `sqlsft prepare` (default: a run's own data, else builtin).",
        show_default=False,
    ),
    test_file: str | None = typer.Option(
        None,
        "--test-file",
        help="Score every row of this file (.jsonl, .json, .csv, .parquet): prepared as the test split.",
        show_default=False,
    ),
    split: str = typer.Option("test", "--split", help="Split to evaluate on."),
    limit: int | None = typer.Option(None, "--limit", "-n", help="Only the first N rows of the split."),
    concurrency: int = typer.Option(16, "--concurrency", "-j", help="Requests in flight at once."),
    concurrency_c: int | None = typer.Option(
        None, "-c", hidden=True
    ),  # the old short flag (-c is --config now)
    max_tokens: int = typer.Option(256, "--max-tokens", help="Longest answer, in tokens."),
    by: list[str] = typer.Option(
        [],
        "--by",
        help="Break results down by this column (repeatable; default sql_complexity, sql_task_type).",
    ),
    compare: tuple[str, str] | None = typer.Option(
        None,
        "--compare",
        help="Evaluate two models (runs, folders or hub ids) on the same rows and show what changed.",
        show_default=False,
    ),
    engine: str = typer.Option(
        "auto", "--engine", help="Engine of the server eval starts: auto|vllm|transformers|llama.cpp."
    ),
    port: int | None = typer.Option(
        None, "--port", help="Port of the server eval starts (default: a free one)."
    ),
    resume: bool = typer.Option(
        True,
        "--resume/--no-resume",
        help="Continue an unfinished report of the same model, rows and settings (an interrupted eval), "
        "asking only the rows not yet scored; --no-resume starts a new report.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON (progress goes to stderr)."),
) -> None:
    """Score a model's SQL by executing it: execution accuracy, exact match, valid SQL, with breakdowns.

    Each row is saved to predictions.jsonl as soon as it is scored; an interrupted eval resumes when run again.
    """
    from sqlsft.cli.views.eval import EvalProgress, compare_renderables, report_renderables
    from sqlsft.cli.views.output import print_full
    from sqlsft.eval.compare import compare as compare_models
    from sqlsft.eval.evaluate import evaluate
    from sqlsft.eval.options import EvalOptions

    options = EvalOptions(
        dataset=dataset,
        test_file=test_file,
        split=split,
        limit=limit,
        concurrency=concurrency_c if concurrency_c is not None else concurrency,
        max_tokens=max_tokens,
        by=list(by),
        engine=engine,
        port=port,
        resume=resume,
    )
    talk = err_console if as_json else console  # with --json, stdout carries the JSON only
    progress = EvalProgress(talk)
    if compare:
        if url or model:
            raise SqlsftError(
                "--compare takes the two models itself and starts a server for each.",
                "Drop MODEL and --url: sqlsft eval --compare RUN_A RUN_B.",
            )
        found = compare_models(
            compare[0], compare[1], options, talk, model_name=model_name, api_key=api_key, progress=progress
        )
        if as_json:
            typer.echo(json.dumps(found.summary, indent=2, default=str))
            return
        print_full(console, *(report_renderables(r.report, console) for r in found.results))
        print_full(console, compare_renderables(found.summary, console))
        return
    result = evaluate(
        model or (None if url else "latest"),
        options,
        talk,
        url=url,
        model_name=model_name,
        api_key=api_key,
        progress=progress,
    )
    if as_json:
        typer.echo(json.dumps(result.report, indent=2, default=str))
    else:
        print_full(console, report_renderables(result.report, console))
