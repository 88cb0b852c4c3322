"""The train stage: resolve the config, check the machine, prepare the data, write the run folder, launch.

Everything that can fail cheaply fails here, before any weights are loaded: unknown presets and keys,
more GPUs than present, liger without a GPU, bf16 on a GPU without it, a gated model without access,
no free disk. Then `accelerate launch` runs sqlsft.train.worker in its own process group; this process
tails the run's metrics.jsonl to drive the progress display and records the outcome in status.json.
"""

import json
import os
import re
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeRemainingColumn,
)

from sqlsft.common.errors import SqlsftError
from sqlsft.common.hardware import Hardware, cpu_has_native_bf16, detect_hardware, free_disk_gib
from sqlsft.common.paths import runs_dir
from sqlsft.models.resolve import ResolvedModel, embedded_model_dir, model_weight_bytes, resolve_model
from sqlsft.runs import registry as runs
from sqlsft.train import launch
from sqlsft.train.config import TrainConfig, load_resolved, resolve_config

REPORT_TO = ("wandb", "trackio", "tensorboard", "none")
REPORT_PACKAGES = {"wandb": "wandb", "trackio": "trackio", "tensorboard": "tensorboard"}
STOP_GRACE_S = 600.0  # how long a stop request may take (a step plus a checkpoint) before the group is killed
POLL_S = 0.5
PLAIN_LINE_EVERY_S = 10.0
EMBEDDED_WEIGHT_BYTES = 536_223_056  # the converted bf16 checkpoint, for the disk estimate before conversion
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "auto": 2, None: 4}


@dataclass
class TrainOptions:
    preset: str | None = None
    config_file: str | None = None
    overrides: list[str] = field(default_factory=list)
    model: str | None = None
    dataset: str | None = None
    max_steps: int | None = None
    gpus: str | None = None
    cpu_processes: int | None = None
    strategy: str = "ddp"
    nodes: int = 1
    node_rank: int = 0
    main_ip: str | None = None
    main_port: int | None = None
    run_name: str | None = None
    resume: str | None = None  # None: a new run; "": the newest run that stopped early; else a run name
    report_to: str | None = None
    dry_run: bool = False


@dataclass
class TrainResult:
    status: str  # completed | failed | interrupted | dry-run
    run: runs.Run | None = None
    command: list[str] = field(default_factory=list)
    summary: dict = field(default_factory=dict)


# ---------------------------------------------------------------- checks before launching


def wandb_configured() -> bool:
    mode = os.environ.get("WANDB_MODE", "").lower()
    if mode in ("disabled", "dryrun"):
        return False
    if mode == "offline" or os.environ.get("WANDB_API_KEY"):
        return True
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return "api.wandb.ai" in netrc.read_text(errors="ignore")
    except OSError:
        return False


def resolve_report_to(explicit: str | None, config: TrainConfig) -> tuple[str | list, str | None]:
    """--report-to wins; then the config's own report_to; then wandb if it is set up; else local metrics only."""
    if explicit:
        value = explicit.lower()
        if value not in REPORT_TO:
            raise SqlsftError(f"--report-to {explicit}: unknown.", f"Use one of: {', '.join(REPORT_TO)}.")
        package = REPORT_PACKAGES.get(value)
        if package:
            import importlib.util

            if importlib.util.find_spec(package) is None:
                raise SqlsftError(
                    f"--report-to {value} needs the {package} package.", f"pip install {package}"
                )
        if value == "wandb" and not wandb_configured():
            raise SqlsftError(
                "--report-to wandb: wandb is not set up here.",
                "Run `wandb login`, set WANDB_API_KEY, or WANDB_MODE=offline to log locally.",
            )
        return value, None
    if "report_to" in config.training:
        return config.training["report_to"], None
    if wandb_configured():
        return "wandb", f"wandb: logging to project {os.environ.get('WANDB_PROJECT', 'sqlsft')}"
    return "none", (
        "Metrics stay local (metrics.jsonl). For wandb, run `wandb login` or set WANDB_API_KEY "
        "(or pass --report-to wandb)."
    )


def estimate_disk_gib(
    config: TrainConfig, weight_bytes: int | None, file_dtype: str | None = "bfloat16"
) -> float:
    """Free disk a run needs: kept checkpoints (weights + AdamW's two fp32 moments) and the final model."""
    if not weight_bytes:
        return 1.0
    params = weight_bytes / DTYPE_BYTES.get(file_dtype, 2)
    train_bytes = DTYPE_BYTES.get(config.model.get("dtype"), 4)
    checkpoint = params * (train_bytes + 8)
    strategy = str(config.training.get("save_strategy", "steps"))
    kept = config.training.get("save_total_limit") or (1 if strategy == "no" else 2)
    return (kept * checkpoint + params * train_bytes) / 2**30 + 0.5


def slow_bf16_warning(
    config: TrainConfig, plan: launch.LaunchPlan, cpu_bf16: bool | None = None
) -> str | None:
    """bf16 on a CPU without native bf16 works (autocast) but is emulated: say so (`cpu_bf16`: detected if None)."""
    wants_bf16 = bool(config.training.get("bf16")) or config.model.get("dtype") == "bfloat16"
    if not wants_bf16 or plan.device != "cpu":
        return None
    if cpu_bf16 is None:
        cpu_bf16 = cpu_has_native_bf16()
    if cpu_bf16 is not False:
        return None
    return (
        "This CPU has no native bf16 (AVX512-BF16 or AMX): bf16 is emulated, many times slower than fp32 "
        "(--set bf16=false --set dtype=float32 trains faster)."
    )


def preflight(config: TrainConfig, plan: launch.LaunchPlan, hardware: Hardware) -> list[str]:
    """Hardware problems that would make the launch fail, each one line with what to do (empty: all clear)."""
    problems = []
    training = config.training
    liger = bool(training.get("use_liger_kernel"))
    if liger and plan.device == "cpu":
        problems.append(
            f"Preset '{config.preset}' uses liger-kernel, whose Triton kernels need a GPU, and this run is on the "
            "CPU. Use --preset baseline or fast (TRL's fused LM head already avoids the full logits), "
            "or --dry-run to prepare the job for a GPU machine."
        )
    elif liger:
        import importlib.util

        if importlib.util.find_spec("liger_kernel") is None:
            problems.append("use_liger_kernel needs the liger-kernel package: pip install 'sqlsft[gpu]'.")
    wants_bf16 = bool(training.get("bf16")) or config.model.get("dtype") == "bfloat16"
    if wants_bf16 and plan.device == "gpu" and hardware.gpus:
        used = hardware.gpus[: plan.processes_per_node]
        lacking = [g for g in used if not g.bf16]
        if lacking:
            problems.append(
                f"bf16 needs a GPU with bf16 support (Ampere or newer); {lacking[0].name} has none. "
                "Use --set bf16=false --set dtype=float32 (Gemma 3 overflows in fp16)."
            )
    return problems


def disk_problem(needed_gib: float, free_gib: float, folder: Path) -> str | None:
    if needed_gib <= free_gib:
        return None
    return (
        f"Not enough free disk for checkpoints: {free_gib:.1f} GiB free under {folder}, the run needs about "
        f"{needed_gib:.1f} GiB. Free some space, point SQLSFT_RUNS_DIR at a bigger disk, "
        "or --set save_total_limit=1."
    )


def _model_file_dtype(resolved: ResolvedModel) -> str | None:
    folder = resolved.local_path
    if folder is None or not (folder / "config.json").is_file():
        return "bfloat16"
    info = json.loads((folder / "config.json").read_text())
    return info.get("dtype") or info.get("torch_dtype") or "float32"


# ---------------------------------------------------------------- the stage


def train(options: TrainOptions, console: Console | None = None) -> TrainResult:
    """A new run (or, with options.resume, a stopped one continued): checks, data, run folder, launch."""
    console = console or Console()
    if options.resume is not None:
        return resume(options, console)
    _check_run_name(options)
    config = resolve_config(
        options.preset, options.config_file, options.overrides, options.model, options.dataset,
        options.max_steps, None,
    )  # fmt: skip
    if not options.preset and not options.config_file:
        console.print(f"No --preset given: using [bold]{config.preset}[/].")
    hardware = detect_hardware()
    plan, notes = launch.plan_launch(
        hardware, options.gpus, options.cpu_processes, options.strategy, options.nodes, options.node_rank,
        options.main_ip, options.main_port, _mixed_precision(config), options.dry_run,
    )  # fmt: skip
    if plan.use_cpu:  # TrainingArguments refuse bf16 without a GPU unless use_cpu is set
        config.training["use_cpu"] = True
    report_to, report_note = resolve_report_to(options.report_to, config)
    config.training["report_to"] = report_to
    resolved, problems = _check_before_launch(config, plan, hardware, options.dry_run)
    notes += [f"dry run: {p}" for p in problems]
    extra = [n for n in (slow_bf16_warning(config, plan), report_note) if n]
    if options.dry_run:
        return _dry_run(config, plan, hardware, notes + extra, options, console)

    for line in extra:
        console.print(line, style="yellow" if "bf16" in line else "dim", markup=False, soft_wrap=True)
    model_path = str(embedded_model_dir(console)) if resolved.is_embedded else resolved.path_or_id
    prepared = _prepare_data(config, console)
    run_dir = _create_run(config, plan, model_path, prepared, options.run_name)
    command = launch.launch_command(run_dir / "accelerate.yaml", run_dir)
    launch.write_launch_script(command, run_dir / "launch.sh", _child_env(run_dir))
    runs.update_status(run_dir, command=launch.shell_line(command))
    console.print(f"Run [bold]{run_dir.name}[/]: {config.preset} on {plan.describe()} -> {run_dir}")
    console.print(f"$ {launch.shell_line(command)}", markup=False, highlight=False, soft_wrap=True)
    return _execute(run_dir, command, console)


def _check_run_name(options: TrainOptions) -> None:
    if options.nodes > 1 and not options.run_name and not options.dry_run:
        raise SqlsftError(
            f"With --nodes {options.nodes} every machine must write to the same run folder.",
            "Pass the same --run-name on each machine, with the runs folder on a shared filesystem.",
        )
    folder = runs_dir() / (options.run_name or "")
    if options.run_name and options.nodes == 1 and (folder / runs.STATUS_FILE).exists():
        raise SqlsftError(
            f"Run folder {folder} already holds a run.",
            f"Choose another --run-name, or continue it with `sqlsft train --resume {options.run_name}`.",
        )


def _check_before_launch(config, plan, hardware, dry_run: bool) -> tuple[ResolvedModel | None, list[str]]:
    """Hardware, model access and disk checks: errors for a real run, notes (returned) for a dry run."""
    problems = preflight(config, plan, hardware)
    if problems and not dry_run:
        raise SqlsftError(problems[0])
    try:
        resolved = resolve_model(config.model_name, config.model.get("model_revision"))
    except SqlsftError as exc:
        if not dry_run:
            raise
        return None, [*problems, str(exc)]
    weights = EMBEDDED_WEIGHT_BYTES if resolved.is_embedded else model_weight_bytes(resolved)
    needed = estimate_disk_gib(config, weights, _model_file_dtype(resolved))
    problem = disk_problem(needed, free_disk_gib(runs_dir()), runs_dir())
    if problem and not dry_run:
        raise SqlsftError(problem)
    return resolved, problems + ([problem] if problem else [])


def _create_run(
    config: TrainConfig, plan: launch.LaunchPlan, model_path: str, prepared, name: str | None
) -> Path:
    """The run folder with its resolved config, accelerate config, run.json and a `running` status."""
    run_dir = runs.new_run_dir(config.preset, name=name)
    launch.write_accelerate_config(plan, run_dir / "accelerate.yaml")
    (run_dir / "config.yaml").write_text(config.to_yaml(), encoding="utf-8")
    runs.write_json(
        run_dir / "run.json",
        {"model": config.model_name, "model_path": model_path, "data_path": str(prepared.path),
         "data_manifest": str(prepared.path.parent / "manifest.json"), "data_cache_hit": prepared.cache_hit,
         "data_token_counts": _counted_with(prepared.manifest, config.model_name)},
    )  # fmt: skip
    runs.update_status(
        run_dir,
        status="running", preset=config.preset, model=config.model_name, model_path=model_path,
        dataset=config.data.get("dataset"), gpus=plan.num_processes if plan.device == "gpu" else 0,
        processes=plan.num_processes, device=plan.device, distribution=plan.describe(),
        started_at=runs.now_iso(), started_epoch=time.time(), finished_at=None, final_loss=None, steps=0,
        max_steps=config.training.get("max_steps"), pid=os.getpid(),
    )  # fmt: skip
    return run_dir


def _mixed_precision(config: TrainConfig) -> str:
    if config.training.get("bf16"):
        return "bf16"
    if config.training.get("fp16"):
        return "fp16"
    return "no"


def _child_env(run_dir: Path) -> dict[str, str]:
    env = {"TOKENIZERS_PARALLELISM": "false"}
    if "WANDB_PROJECT" not in os.environ:
        env["WANDB_PROJECT"] = "sqlsft"
    return env


def _prepare_data(config: TrainConfig, console: Console):
    from sqlsft.data.prepare import PrepareOptions, prepare

    options = PrepareOptions(
        **config.data, model=config.model_name, max_length=int(config.training.get("max_length") or 1024)
    )
    return prepare(options, console)


def _counted_with(manifest: dict, model: str) -> bool:
    """prepare stored per-row token counts (num_tokens) made with this model's tokenizer."""
    return bool(manifest.get("tokens")) and (manifest.get("options") or {}).get("model") == model


def _dry_run(config, plan, hardware, notes, options, console) -> TrainResult:
    folder = runs_dir() / (options.run_name or f"{time.strftime('%Y%m%d-%H%M%S')}-{config.preset}")
    command = launch.launch_command(folder / "accelerate.yaml", folder)
    console.rule("resolved training config (config.yaml)")
    console.print(config.to_yaml(), markup=False, highlight=False, end="", soft_wrap=True)
    console.rule("accelerate config (accelerate.yaml)")
    console.print(launch.accelerate_yaml(plan), markup=False, highlight=False, end="", soft_wrap=True)
    console.rule("launch command")
    console.print(launch.shell_line(command), markup=False, highlight=False, soft_wrap=True)
    for note in notes:
        console.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)
    console.print(
        f"Dry run: nothing was prepared or started, and the GPUs need not be present "
        f"(this machine: {hardware.describe()}).",
        markup=False, highlight=False, soft_wrap=True,
    )  # fmt: skip
    return TrainResult("dry-run", None, command)


# ---------------------------------------------------------------- resume


def _pick_resume_run(name: str) -> runs.Run:
    if name:
        return runs.resolve_run(name)
    for run in runs.list_runs():
        if run.status in ("interrupted", "failed") and runs.checkpoints(run):
            return run
    raise SqlsftError(
        "No interrupted or failed run with a checkpoint to resume.",
        "See `sqlsft runs`, or name one: --resume RUN.",
    )


def resume(options: TrainOptions, console: Console) -> TrainResult:
    given = [flag for flag, value in (("--preset", options.preset), ("--config", options.config_file),
             ("--set", options.overrides), ("--model", options.model), ("--dataset", options.dataset),
             ("--max-steps", options.max_steps), ("--run-name", options.run_name)) if value]  # fmt: skip
    if given:
        raise SqlsftError(
            f"--resume continues a run with its own config; drop {', '.join(given)}.",
            "To change the config, start a new run.",
        )
    run = _pick_resume_run(options.resume or "")
    if run.status == "running":
        raise SqlsftError(f"Run {run.name} is still running (pid {run.info.get('pid')}).")
    if run.status == "completed":
        raise SqlsftError(
            f"Run {run.name} completed: nothing left to train.", "Start a new run to train further."
        )
    found = runs.checkpoints(run)
    if not found:
        raise SqlsftError(
            f"Run {run.name} has no checkpoint to resume from.",
            "Checkpoints are written by save_strategy and when a run is interrupted; start a new run.",
        )
    last = found[-1]
    missing = runs.missing_checkpoint_files(last)
    if missing:
        hint = f"Delete {last} to resume from {found[-2].name}." if len(found) > 1 else "Start a new run."
        raise SqlsftError(f"The last checkpoint {last} is incomplete (missing {', '.join(missing)}).", hint)
    state = runs.checkpoint_state(last)
    step, total = int(state.get("global_step") or 0), int(state.get("max_steps") or 0)
    if total and step >= total:
        raise SqlsftError(
            f"Run {run.name} has nothing left to train: {last.name} is step {step} of {total}.",
            "Start a new run (for example with --max-steps or more epochs).",
        )
    config = load_resolved(run.config_file)
    hardware = detect_hardware()
    acc_file = run.path / "accelerate.yaml"
    if options.gpus is not None or options.cpu_processes is not None:
        plan, _ = launch.plan_launch(hardware, options.gpus, options.cpu_processes, options.strategy,
                                     mixed_precision=_mixed_precision(config))  # fmt: skip
        acc_file = launch.write_accelerate_config(plan, run.path / "accelerate.yaml")
        config.training["use_cpu"] = plan.use_cpu or None
        config.training = {k: v for k, v in config.training.items() if v is not None}
        (run.path / "config.yaml").write_text(config.to_yaml(), encoding="utf-8")
    if options.report_to:
        config.training["report_to"], _ = resolve_report_to(options.report_to, config)
        (run.path / "config.yaml").write_text(config.to_yaml(), encoding="utf-8")
    console.print(f"Resuming run [bold]{run.name}[/] from {last.name}: step {step} of {total or '?'}.")
    command = launch.launch_command(acc_file, run.path, resume_from=last)
    launch.write_launch_script(command, run.path / "resume.sh", _child_env(run.path))
    resumes = [*run.info.get("resumes", []), {"from": last.name, "step": step, "at": runs.now_iso()}]
    runs.update_status(
        run.path, status="running", pid=os.getpid(), finished_at=None, resumes=resumes,
        command=launch.shell_line(command),
    )  # fmt: skip
    console.print(f"$ {launch.shell_line(command)}", markup=False, highlight=False, soft_wrap=True)
    return _execute(run.path, command, console, start_step=step)


# ---------------------------------------------------------------- running and watching


class ProgressView:
    """Rank 0's metrics.jsonl, followed as it grows: a Rich bar on a terminal, plain lines otherwise."""

    def __init__(self, run_dir: Path, console: Console, start_step: int = 0):
        self.path = run_dir / runs.METRICS_FILE
        self.console = console
        self.offset = self.path.stat().st_size if self.path.is_file() else 0
        self.rows: list[dict] = []
        self.events: list[dict] = []
        self.total: int | None = None
        self.step = start_step
        self.last_plain = 0.0
        self.started = time.monotonic()
        self.progress: Progress | None = None
        self.task = None
        if console.is_terminal:
            self.progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[loss]}"),
                TextColumn("{task.fields[speed]}"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[memory]}"),
                console=console,
                transient=False,
            )
            self.progress.start()
            self.task = self.progress.add_task("starting (loading model and data)", total=None, loss="",
                                               speed="", memory="")  # fmt: skip
        else:
            console.print("starting: loading the model and the data (see train.log)")

    def poll(self) -> None:
        if not self.path.is_file():
            return
        with open(self.path, encoding="utf-8") as handle:
            handle.seek(self.offset)
            chunk = handle.read()
        complete = chunk[: chunk.rfind("\n") + 1] if "\n" in chunk else ""
        self.offset += len(complete.encode("utf-8"))
        for line in complete.splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            self._handle(row)

    def _handle(self, row: dict) -> None:
        event = row.get("event")
        if event:
            self.events.append(row)
            if event == "start":
                self.total = row.get("max_steps")
                self.step = row.get("step", self.step)
                self._update("training")
            elif event == "data" and row.get("dropped_overlong"):
                self._say(
                    f"{row['dropped_overlong']} rows longer than max_length={row.get('max_length')} left out"
                )
            elif event == "checkpoint":
                self._say(f"checkpoint saved at step {row.get('step')}")
            elif event == "note":
                self._say(str(row.get("text")))
            elif event == "interrupted":
                self._say(
                    f"stopping at step {row.get('step')} of {row.get('max_steps')}; saving a checkpoint"
                )
            return
        self.rows.append(row)
        self.total = row.get("max_steps") or self.total
        self.step = row.get("step", self.step)
        self._update("training", row)

    def _say(self, text: str) -> None:
        (self.progress.console if self.progress else self.console).print(text, markup=False, highlight=False)

    def _update(self, description: str, row: dict | None = None) -> None:
        loss = f"loss {row['loss']:.4f}" if row and row.get("loss") is not None else ""
        speed = f"{row['tokens_per_s']:,.0f} tok/s" if row and row.get("tokens_per_s") else ""
        memory = ""
        if row and row.get("peak_memory_gib") is not None:
            memory = f"{'GPU' if row.get('memory') == 'gpu' else 'RSS'} {row['peak_memory_gib']:.1f} GiB"
        if self.progress is not None:
            self.progress.update(self.task, description=description, total=self.total, completed=self.step,
                                 loss=loss, speed=speed, memory=memory)  # fmt: skip
            return
        now = time.monotonic()
        if row is None or (now - self.last_plain < PLAIN_LINE_EVERY_S and self.step != self.total):
            return
        self.last_plain = now
        total = self.total or 0
        share = f" ({100 * self.step / total:.0f}%)" if total else ""
        eta = ""
        if self.rows and total and self.step:
            first = self.rows[0]
            done = self.step - (first.get("step", 0) - 1)
            elapsed = row.get("time", 0) - first.get("time", 0)
            if done > 1 and elapsed > 0:
                eta = f" eta {_duration((total - self.step) * elapsed / (done - 1))}"
        parts = [f"step {self.step}/{total or '?'}{share}", loss, speed, memory]
        self.console.print(" ".join(p for p in parts if p) + eta, markup=False, highlight=False)

    def close(self) -> None:
        self.poll()
        if self.progress is not None:
            self.progress.stop()


def _duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


def _execute(run_dir: Path, command: list[str], console: Console, start_step: int = 0) -> TrainResult:
    started = time.time()
    log_file = run_dir / "train.log"
    view = ProgressView(run_dir, console, start_step)
    previous_term = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    process = launch.start(command, log_file, _child_env(run_dir))
    runs.update_status(run_dir, launcher_pid=process.pid)
    interrupted = False
    try:
        try:
            while process.poll() is None:
                view.poll()
                time.sleep(POLL_S)
        except KeyboardInterrupt:
            interrupted = True
            view._say(
                "Stopping: the trainer saves a checkpoint after the current step (Ctrl-C again to kill now)."
            )
            launch.request_stop(process)
            deadline = time.monotonic() + STOP_GRACE_S
            try:
                while process.poll() is None and time.monotonic() < deadline:
                    view.poll()
                    time.sleep(POLL_S)
            except KeyboardInterrupt:
                view._say("Killing the training processes now.")
    finally:
        launch.kill_group(process)
        view.close()
        signal.signal(signal.SIGTERM, previous_term)
    return _finish(run_dir, process.returncode, interrupted, started, view, console)


def _finish(run_dir, returncode, interrupted, started, view: ProgressView, console) -> TrainResult:
    from sqlsft.runs.registry import read_metrics

    metrics = read_metrics(run_dir)
    losses = [m for m in metrics if "loss" in m and m.get("loss") is not None and not m.get("event")]
    saved = any(m.get("event") == "saved" for m in metrics) and (run_dir / "model" / "config.json").is_file()
    if interrupted or any(m.get("event") == "interrupted" for m in view.events):
        status = "interrupted"
    elif returncode == 0 and saved:
        status = "completed"
    else:
        status = "failed"
    finished = time.time()
    summary = _summarize(metrics, losses)
    summary.update(duration_s=round(finished - started, 1), exit_code=returncode)
    info = runs.read_json(run_dir / runs.STATUS_FILE)
    earlier = (info.get("duration_s") or 0) if info.get("resumes") else 0  # time spent before a resume
    runs.update_status(
        run_dir, status=status, finished_at=runs.now_iso(), duration_s=round(earlier + summary["duration_s"], 1),
        max_steps=summary.get("max_steps") or info.get("max_steps"), exit_code=returncode,
        **{k: summary.get(k) for k in ("steps", "first_loss", "final_loss", "first_loss_mean3", "final_loss_mean3",
                                       "tokens_per_s", "train_seconds", "peak_memory_gib")},
    )  # fmt: skip
    run = runs.load_run(run_dir)
    if status == "failed":
        raise SqlsftError(
            f"Training failed (exit code {returncode}): {_last_error(run_dir / 'train.log')}",
            f"Full log: {run_dir / 'train.log'}",
        )
    _print_summary(run, summary, status, console)
    return TrainResult(status, run, [], summary)


def _summarize(metrics: list[dict], losses: list[dict]) -> dict:
    out: dict = {}
    if losses:
        out["first_loss"] = round(float(losses[0]["loss"]), 4)
        out["final_loss"] = round(float(losses[-1]["loss"]), 4)
        if len(losses) >= 6:  # single steps are noisy with small batches: means of the first and last three
            out["first_loss_mean3"] = round(sum(float(m["loss"]) for m in losses[:3]) / 3, 4)
            out["final_loss_mean3"] = round(sum(float(m["loss"]) for m in losses[-3:]) / 3, 4)
        out["steps"] = losses[-1].get("step")
        out["max_steps"] = losses[-1].get("max_steps")
        rates = [m for m in losses if m.get("num_tokens") is not None]
        starts = [m for m in metrics if m.get("event") == "start"]
        if rates and starts:
            seconds = rates[-1]["time"] - starts[-1]["time"]
            if seconds > 0:
                out["tokens_per_s"] = round(rates[-1]["num_tokens"] / seconds, 1)
            out["train_seconds"] = round(seconds, 1)
        memory = [m["peak_memory_gib"] for m in losses if m.get("peak_memory_gib") is not None]
        if memory:
            out["peak_memory_gib"] = max(memory)
    return out


def _last_error(log_file: Path) -> str:
    try:
        lines = log_file.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "no log written"
    for line in reversed(lines):
        if "[sqlsft] error:" in line:
            return line.split("[sqlsft] error:", 1)[1].strip()
    pattern = re.compile(r"^\s*(\w+(Error|Exception)|ChildFailedError|error)\b[:\s]")
    for line in reversed(lines):
        if pattern.match(line) and "CalledProcessError" not in line:
            return line.strip()[:300]
    tail = [line for line in lines if line.strip()]
    return tail[-1].strip()[:300] if tail else "the training process exited without output"


def _print_summary(run: runs.Run, summary: dict, status: str, console: Console) -> None:
    console.print()
    duration = _duration(summary.get("duration_s") or 0)
    if status == "interrupted":
        console.print(
            f"[yellow]Interrupted[/] {run.name} at step {summary.get('steps') or 0} after {duration}."
        )
        console.print(f"Resume it with: sqlsft train --resume {run.name}", markup=False, highlight=False)
        return
    loss = ""
    if summary.get("first_loss") is not None:
        loss = f"loss {summary['first_loss']:.4f} -> {summary['final_loss']:.4f}"
        if summary.get("first_loss_mean3") is not None:
            loss += f" (first/last 3 steps: {summary['first_loss_mean3']:.4f} -> {summary['final_loss_mean3']:.4f})"
    speed = f"{summary['tokens_per_s']:,.0f} tokens/s" if summary.get("tokens_per_s") else ""
    parts = [f"{summary.get('steps')} steps in {duration}", loss, speed]
    console.print(f"[green]Completed[/] {run.name}: " + ", ".join(p for p in parts if p))
    console.print(f"Model: {run.model_dir}", markup=False, highlight=False, soft_wrap=True)
    console.print("Next: sqlsft serve latest", markup=False, highlight=False)
