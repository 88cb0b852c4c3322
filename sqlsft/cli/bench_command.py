"""`sqlsft bench ...`: the whole sub-app in one file: prepare, train and serve benchmarks that print figures."""

import json

import typer

from sqlsft.cli.app import app, console, err_console
from sqlsft.common.errors import SqlsftError

bench_app = typer.Typer(help="Benchmarks that print figures: prepare, train, serve.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")

JSON_HELP = "Print the results as JSON (progress goes to stderr)."


def _show(report: dict, as_json: bool, *renderables) -> None:
    """The results: JSON alone on stdout, or the tables (whole values when piped)."""
    from sqlsft.cli.views.output import print_full

    if as_json:
        typer.echo(json.dumps(report, indent=2, default=str))
    else:
        print_full(console, *renderables)


@bench_app.command("prepare")
def bench_prepare_command(
    num_rows: int = typer.Option(100_000, "--num-rows", help="Builtin rows to prepare."),
    num_proc: int | None = typer.Option(None, "--num-proc", help="Worker processes (default: every core)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Rows/s of `prepare` on the builtin set, cold (cache miss) and warm (cache hit)."""
    from sqlsft.bench.prepare import bench_prepare
    from sqlsft.cli.views.bench import prepare_table

    report = bench_prepare(num_rows=num_rows, num_proc=num_proc, console=err_console if as_json else console)
    _show(report, as_json, prepare_table(report))


@bench_app.command("train")
def bench_train_command(
    presets: str = typer.Option(
        "baseline,liger-slow,liger,fast",
        "--presets",
        help="Comma-separated presets; ratios are to the first. Full vs adapters: baseline,lora,qlora "
        "(qlora needs a GPU).",
    ),
    gpus: str = typer.Option(
        "1",
        "--gpus",
        help="Comma-separated GPU counts, e.g. 1,4 (1 = one CPU process on a machine without GPU).",
    ),
    steps: int = typer.Option(10, "--steps", help="Timed steps per run (after the warm-up)."),
    warmup_steps: int = typer.Option(2, "--warmup-steps", help="Steps run first and left out of the timing."),
    model: str | None = typer.Option(
        None, "--model", help="'embedded', a folder or a hub id (default: each preset's own model)."
    ),
    random_init: bool = typer.Option(
        False, "--random-init", help="Build the model from its config only (random weights, none downloaded)."
    ),
    dataset: str = typer.Option("builtin", "--dataset", "-d", help="Data set, as for `sqlsft prepare`."),
    num_rows: int = typer.Option(
        2000, "--num-rows", help="Rows of the data set to prepare (0: all); the same data for every preset."
    ),
    overrides: list[str] = typer.Option([], "--set", help="key=value applied to every preset (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Step time, tokens/s (real tokens), samples/s, peak memory and projected epoch per preset and GPU count."""
    from pathlib import Path

    from sqlsft.bench.train import PLOT_FILE, BenchTrainOptions, bench_train
    from sqlsft.cli.views.bench import plot_train, train_renderables
    from sqlsft.common.parse import comma_list, parse_counts

    options = BenchTrainOptions(
        presets=comma_list(presets, "--presets", example="baseline,fast"),
        gpus=parse_counts(
            gpus, "--gpus", what="GPU counts", example="1,4", note="1 means the CPU on a machine without GPU"
        ),
        steps=steps,
        warmup_steps=warmup_steps,
        model=model,
        random_init=random_init,
        dataset=dataset,
        num_rows=num_rows or None,
        overrides=list(overrides),
    )
    report = bench_train(options, err_console if as_json else console)
    plot_train(report, Path(report["folder"]) / PLOT_FILE)
    _show(report, as_json, train_renderables(report))
    if report["interrupted"]:
        raise SqlsftError(
            f"bench train interrupted; partial results saved in {report['folder']}.", exit_code=130
        )


@bench_app.command("serve")
def bench_serve_command(
    model: str = typer.Argument(
        "latest", help="What `sqlsft serve` accepts: latest, a run, a folder, a hub id, embedded, a .gguf."
    ),
    engines: str = typer.Option(
        "vllm,transformers",
        "--engines",
        help="Comma-separated engines to compare: vllm, transformers, llama.cpp.",
    ),
    quants: str = typer.Option(
        None,
        "--quants",
        help="llama.cpp: comma-separated GGUF exports, one row each, e.g. q8_0,q4_k_m (made when missing; "
        "default: the newest export).",
    ),
    concurrency: str = typer.Option(
        "1,8", "--concurrency", "-j", help="Comma-separated numbers of parallel clients."
    ),
    requests: int = typer.Option(32, "--requests", help="Requests per engine and concurrency."),
    max_tokens: int = typer.Option(64, "--max-tokens", help="Answer length cap per request."),
    engine_python: str = typer.Option(None, "--engine-python", help="Python of the vLLM environment."),
    port: int = typer.Option(None, "--port", help="Port for the servers (default: a free one from 8090)."),
    timeout: float = typer.Option(600, "--timeout", help="Seconds to wait for each engine to start."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """Requests/s, output tokens/s and p50/p95 latency per engine and concurrency, on a fixed prompt set."""
    from sqlsft.bench.serve import run_serve_bench
    from sqlsft.cli.views.bench import serve_renderables
    from sqlsft.common.parse import comma_list, parse_counts

    report = run_serve_bench(
        model,
        engines=comma_list(engines, "--engines", example="vllm,transformers,llama.cpp"),
        quants=comma_list(quants, "--quants", example="q8_0,q4_k_m") if quants else None,
        concurrencies=parse_counts(concurrency, "--concurrency", example="1,8"),
        num_requests=requests,
        max_tokens=max_tokens,
        engine_python=engine_python,
        port=port,
        timeout_s=timeout,
        console=err_console if as_json else console,
    )
    _show(report, as_json, serve_renderables(report))


@bench_app.command("web")
def bench_web_command(
    model: str = typer.Argument("embedded", help="A run, a model folder, `embedded` or a .gguf file."),
    quant: str = typer.Option(
        None, "--quant", help="Which GGUF export of a run (default: the newest, else made)."
    ),
    prompts: int = typer.Option(3, "--prompts", min=1, help="Builtin prompts, asked one at a time."),
    max_tokens: int = typer.Option(64, "--max-tokens", min=1, help="Answer length cap per prompt."),
    threads: int = typer.Option(None, "--threads", min=1, help="Threads on both sides (default: all cores)."),
    as_json: bool = typer.Option(False, "--json", help=JSON_HELP),
) -> None:
    """The web page in headless Chromium against llama.cpp native, same prompts: page-ready time, time to first
    token, output tokens/s, and the browser's share of native speed."""
    from sqlsft.bench.web import bench_web
    from sqlsft.cli.views.bench import web_renderables

    result = bench_web(
        model,
        quant,
        prompts=prompts,
        max_tokens=max_tokens,
        threads=threads,
        log=lambda line: err_console.print(line, markup=False, highlight=False),
    )
    _show(result.to_dict(), as_json, web_renderables(result))
