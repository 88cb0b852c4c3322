"""`sqlsft bench ...`: the whole sub-app in one file: prepare, train and serve benchmarks that print figures."""

import typer

from sqlsft.cli.app import app, console

bench_app = typer.Typer(help="Benchmarks that print figures: prepare, train, serve.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


@bench_app.command("prepare")
def bench_prepare_command(
    num_rows: int = typer.Option(100_000, "--num-rows", help="Builtin rows to prepare."),
    num_proc: int | None = typer.Option(None, "--num-proc", help="Worker processes (default: every core)."),
) -> None:
    """Rows/s of `prepare` on the builtin set, cold (cache miss) and warm (cache hit)."""
    from sqlsft.bench.prepare import bench_prepare

    bench_prepare(num_rows=num_rows, num_proc=num_proc, console=console)


@bench_app.command("train")
def bench_train_command(
    presets: str = typer.Option(
        "baseline,liger-slow,liger,fast",
        "--presets",
        help="Comma-separated presets; ratios are to the first.",
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
) -> None:
    """Step time, tokens/s (real tokens), samples/s, peak memory and projected epoch per preset and GPU count."""
    from sqlsft.bench.train import BenchTrainOptions, bench_train, parse_gpus, parse_list

    options = BenchTrainOptions(
        presets=parse_list(presets, "--presets"),
        gpus=parse_gpus(gpus),
        steps=steps,
        warmup_steps=warmup_steps,
        model=model,
        random_init=random_init,
        dataset=dataset,
        num_rows=num_rows or None,
        overrides=list(overrides),
    )
    bench_train(options, console)


@bench_app.command("serve")
def bench_serve_command(
    model: str = typer.Argument(
        "latest", help="What `sqlsft serve` accepts: latest, a run, a folder, a hub id."
    ),
    engines: str = typer.Option("vllm,transformers", "--engines", help="Comma-separated engines to compare."),
    concurrency: str = typer.Option(
        "1,8", "--concurrency", help="Comma-separated numbers of parallel clients."
    ),
    requests: int = typer.Option(32, "--requests", help="Requests per engine and concurrency."),
    max_tokens: int = typer.Option(64, "--max-tokens", help="Answer length cap per request."),
    engine_python: str = typer.Option(None, "--engine-python", help="Python of the vLLM environment."),
    port: int = typer.Option(None, "--port", help="Port for the servers (default: a free one from 8090)."),
    timeout: float = typer.Option(600, "--timeout", help="Seconds to wait for each engine to start."),
) -> None:
    """Requests/s, output tokens/s and p50/p95 latency per engine and concurrency, on a fixed prompt set."""
    from sqlsft.bench.serve import run_serve_bench

    def numbers(text: str, what: str) -> list[int]:
        try:
            values = [int(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise typer.BadParameter(f"{what}: comma-separated whole numbers, e.g. 1,8.") from None
        if not values or min(values) < 1:
            raise typer.BadParameter(f"{what}: whole numbers of 1 or more.")
        return values

    run_serve_bench(
        model,
        engines=[e.strip() for e in engines.split(",") if e.strip()],
        concurrencies=numbers(concurrency, "--concurrency"),
        num_requests=requests,
        max_tokens=max_tokens,
        engine_python=engine_python,
        port=port,
        timeout_s=timeout,
        console=console,
    )
