"""`sqlsft train`: parse the options, call sqlsft.train."""

import typer

from sqlsft.cli.app import app, console


@app.command("train")
def train_command(
    preset: str | None = typer.Option(
        None,
        "--preset",
        "-p",
        help="baseline, liger, liger-slow, fast, lora, qlora or demo (presets/*.yaml). Default: demo.",
    ),
    config: str | None = typer.Option(None, "--config", "-c", help="A YAML file laid out like a preset."),
    overrides: list[str] = typer.Option(
        [],
        "--set",
        "-s",
        help="Override any SFTConfig/ModelConfig/data field: key=value or section.key=value.",
    ),
    model: str | None = typer.Option(None, "--model", "-m", help="Hub id, local folder, or 'embedded'."),
    dataset: str | None = typer.Option(None, "--dataset", "-d", help="'builtin', a hub id or data file(s)."),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Stop after this many optimizer steps."),
    gpus: str | None = typer.Option(
        None, "--gpus", "-g", help="Number of GPUs, or 'all' (default: all present)."
    ),
    cpu_processes: int | None = typer.Option(
        None, "--cpu-processes", help="Train on the CPU with N processes (DDP over gloo when N > 1)."
    ),
    strategy: str = typer.Option("ddp", "--strategy", help="ddp or fsdp (accelerate's own)."),
    nodes: int = typer.Option(1, "--nodes", help="Number of machines."),
    node_rank: int = typer.Option(0, "--node-rank", help="This machine's rank (0 is the main one)."),
    main_ip: str | None = typer.Option(None, "--main-ip", help="Address of machine 0 (several machines)."),
    main_port: int | None = typer.Option(None, "--main-port", help="Port of machine 0 (several machines)."),
    run_name: str | None = typer.Option(None, "--run-name", help="Run folder name (same on every machine)."),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Continue RUN (or the newest interrupted/failed run) from its last checkpoint.",
    ),
    run: str | None = typer.Argument(
        None, metavar="RUN", help="With --resume: the run to continue (a name, or 'latest')."
    ),
    report_to: str | None = typer.Option(None, "--report-to", help="wandb, trackio, tensorboard or none."),
    no_merge: bool = typer.Option(
        False, "--no-merge", help="LoRA/QLoRA: keep only the adapter (adapter/), no merged model/."
    ),
    eval_rows: int | None = typer.Option(
        None,
        "--eval-rows",
        help="At each checkpoint save and at the end, answer the first N validation rows (greedy) and log "
        "their execution accuracy and valid-SQL share; the best checkpoint is recorded.",
    ),
    eval_at_start: bool = typer.Option(
        False, "--eval-at-start", help="With --eval-rows: also score the untrained model (step 0)."
    ),
    load_best: bool = typer.Option(
        False,
        "--load-best",
        help="With --eval-rows: model/ becomes the checkpoint with the best execution accuracy.",
    ),
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="Print the config, the accelerate config, the command, the trainable parameters and a memory "
        "estimate per GPU; start nothing.",
    ),
) -> None:
    """Fine-tune with TRL's SFTTrainer through accelerate; leaves a run that `sqlsft serve latest` deploys."""
    from sqlsft.cli.views.train import ConsoleTrainView, print_dry_run, print_summary
    from sqlsft.common.errors import SqlsftError
    from sqlsft.runs.status import RunState
    from sqlsft.train.supervise import DryRunPlan, TrainOptions, train

    if run is not None and not resume:
        raise SqlsftError(f"Unexpected argument '{run}'.", "A run name is taken only with --resume RUN.")

    result = train(
        TrainOptions(
            preset=preset,
            config_file=config,
            overrides=list(overrides),
            model=model,
            dataset=dataset,
            max_steps=max_steps,
            gpus=gpus,
            cpu_processes=cpu_processes,
            strategy=strategy,
            nodes=nodes,
            node_rank=node_rank,
            main_ip=main_ip,
            main_port=main_port,
            run_name=run_name,
            resume=(run or "") if resume else None,
            report_to=report_to,
            dry_run=dry_run,
            merge_adapter=not no_merge,
            eval_rows=eval_rows,
            eval_at_start=eval_at_start,
            load_best=load_best,
        ),
        ConsoleTrainView(console),
    )
    if isinstance(result, DryRunPlan):
        print_dry_run(result, console)
        return
    print_summary(result, console)
    if result.status == RunState.INTERRUPTED:
        raise typer.Exit(130)
