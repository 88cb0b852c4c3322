"""`sqlsft bench train`: timed short runs per preset x GPU count."""

import typer

from sqlsft.cli.app import console
from sqlsft.cli.bench_command import bench_app


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
