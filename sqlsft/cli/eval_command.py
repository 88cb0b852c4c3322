"""`sqlsft eval`: execution accuracy of a served model on a prepared split."""

import typer

from sqlsft.cli.app import app, console
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
    split: str = typer.Option("test", "--split", help="Split to evaluate on."),
    limit: int | None = typer.Option(None, "--limit", "-n", help="Only the first N rows of the split."),
    concurrency: int = typer.Option(16, "--concurrency", "-c", help="Requests in flight at once."),
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
        "auto", "--engine", help="Engine of the server eval starts: auto|vllm|transformers."
    ),
    port: int | None = typer.Option(
        None, "--port", help="Port of the server eval starts (default: a free one)."
    ),
) -> None:
    """Score a model's SQL by executing it: execution accuracy, exact match, valid SQL, with breakdowns."""
    from sqlsft.eval.evaluate import EvalOptions, evaluate
    from sqlsft.eval.evaluate import compare as compare_models

    options = EvalOptions(
        dataset=dataset,
        split=split,
        limit=limit,
        concurrency=concurrency,
        max_tokens=max_tokens,
        by=list(by),
        engine=engine,
        port=port,
    )
    if compare:
        if url or model:
            raise SqlsftError(
                "--compare takes the two models itself and starts a server for each.",
                "Drop MODEL and --url: sqlsft eval --compare RUN_A RUN_B.",
            )
        compare_models(compare[0], compare[1], options, console, model_name=model_name, api_key=api_key)
        return
    evaluate(
        model or (None if url else "latest"),
        options,
        console,
        url=url,
        model_name=model_name,
        api_key=api_key,
    )
