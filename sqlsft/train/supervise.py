"""The train stage: resolve the config, check the machine, prepare the data, write the run folder, launch;
then follow the run to its end and record the outcome.

`accelerate launch` runs sqlsft.train.worker in its own process group; this process follows the run's
metrics.jsonl for the view, turns Ctrl-C into a checkpoint-and-stop request, leaves no process behind,
and writes the outcome into status.json.
"""

import re
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlsft.common.errors import SqlsftError
from sqlsft.common.files import now_iso
from sqlsft.common.hardware import detect_hardware
from sqlsft.common.paths import runs_dir
from sqlsft.common.processes import kill_group, log_tail, start_in_group
from sqlsft.models.resolve import embedded_model_dir
from sqlsft.runs.metrics import (
    Evaluation,
    MetricsEvent,
    MetricsFollower,
    MetricsRow,
    best_evaluation,
    evaluations,
    first_event,
    read_metrics,
    step_rows,
)
from sqlsft.runs.registry import Run, RunFolder, load_run
from sqlsft.runs.status import RunState, read_status, update_status
from sqlsft.train import launch
from sqlsft.train.adapter import has_adapter
from sqlsft.train.checks import check_before_launch, check_run_name, resolve_report_to, slow_bf16_warning
from sqlsft.train.config import TrainConfig, resolve_config
from sqlsft.train.eval_settings import eval_rows
from sqlsft.train.options import TrainOptions
from sqlsft.train.resume import prepare_resume
from sqlsft.train.run_folder import child_env, create_run, write_launch
from sqlsft.train.view import TrainView

__all__ = ["DryRunPlan", "TrainOptions", "TrainResult", "TrainSummary", "train"]

# How long a stop request may take (the current step plus a checkpoint) before the training group is killed.
TRAIN_STOP_GRACE_S = 600.0
POLL_S = 0.5
SQLSFT_ERROR_MARK = "[sqlsft] error:"  # how the worker reports a mistake it found (see worker.main)


@dataclass
class TrainSummary:
    """The figures of a finished (or stopped) run, from its metrics.jsonl; also merged into status.json."""

    steps: int | None = None
    max_steps: int | None = None
    first_loss: float | None = None
    final_loss: float | None = None
    first_loss_mean3: float | None = None  # single steps are noisy with small batches: means of three
    final_loss_mean3: float | None = None
    tokens_per_s: float | None = None
    train_seconds: float | None = None
    peak_memory_gib: float | None = None
    duration_s: float = 0.0  # this launch's wall time
    exit_code: int | None = None
    # execution accuracy during training (--eval-rows): the best evaluated step after step 0, as the
    # Trainer ranks checkpoints (step 0 has no checkpoint), the untrained model's and the last
    best_eval: Evaluation | None = None
    start_eval: Evaluation | None = None
    last_eval: Evaluation | None = None
    model_checkpoint: str | None = None  # --load-best: the checkpoint whose weights model/ holds


@dataclass
class TrainResult:
    status: RunState  # completed or interrupted (a failed run raises)
    run: Run
    summary: TrainSummary


@dataclass
class DryRunPlan:
    """What a real run would write and start; nothing was prepared or started."""

    config_yaml: str
    accelerate_yaml: str
    command: list[str]
    notes: list[str] = field(default_factory=list)
    hardware: str = ""


def train(options: TrainOptions, view: TrainView | None = None) -> TrainResult | DryRunPlan:
    """A new run (or, with options.resume, a stopped one continued): checks, data, run folder, launch."""
    view = view or TrainView()
    if options.resume is not None:
        plan = prepare_resume(options)
        view.launching(plan.headline, plan.command)
        return execute(plan.folder, plan.command, view, plan.start_step)
    check_run_name(options.run_name, options.nodes, options.dry_run)
    config = resolve_config(
        options.preset, options.config_file, options.overrides, options.model, options.dataset,
        options.max_steps, None, merge_adapter=False if not options.merge_adapter else None,
        eval_rows=options.eval_rows, eval_at_start=options.eval_at_start, load_best=options.load_best,
    )  # fmt: skip
    if not options.preset and not options.config_file:
        view.note(f"No --preset given: using {config.preset}.")
    hardware = detect_hardware()
    plan, notes = launch.plan_launch(
        hardware, options.gpus, options.cpu_processes, options.strategy, options.nodes, options.node_rank,
        options.main_ip, options.main_port, launch.mixed_precision(config.training), options.dry_run,
    )  # fmt: skip
    if plan.use_cpu:  # TrainingArguments refuse bf16 without a GPU unless use_cpu is set
        config.training["use_cpu"] = True
    report_to, report_note = resolve_report_to(options.report_to, config)
    config.training["report_to"] = report_to
    resolved, problems = check_before_launch(config, plan, hardware, options.dry_run)
    bf16_warning = slow_bf16_warning(config, plan)
    if options.dry_run:
        notes += [f"dry run: {p}" for p in problems] + [n for n in (bf16_warning, report_note) if n]
        notes += _estimate(config, plan, resolved)
        return _dry_run(config, plan, notes, options.run_name, hardware.describe())
    if bf16_warning:
        view.note(bf16_warning, warning=True)
    if report_note:
        view.note(report_note)
    model_path = str(embedded_model_dir(view.console)) if resolved.is_embedded else resolved.path_or_id
    prepared = _prepare_data(config, view)
    _check_validation_rows(config, prepared)
    folder = create_run(config, plan, model_path, prepared, options.run_name)
    command = launch.launch_command(folder.accelerate_file, folder.path)
    write_launch(folder, command, folder.launch_script)
    view.launching(f"Run {folder.name}: {config.preset} on {plan.describe()} -> {folder.path}", command)
    return execute(folder, command, view)


def _prepare_data(config: TrainConfig, view: TrainView):
    from sqlsft.data.prepare import PrepareOptions, prepare

    options = PrepareOptions(
        **config.data, model=config.model_name, max_length=int(config.training.get("max_length") or 1024)
    )
    return prepare(options, view.console)


def _check_validation_rows(config: TrainConfig, prepared) -> None:
    """Execution accuracy during training scores validation rows: refuse before launching when there are none."""
    if eval_rows(config.training) and not (prepared.manifest.get("rows") or {}).get("validation"):
        raise SqlsftError(
            f"--eval-rows scores validation rows, and {prepared.folder} has none.",
            "Use a data set with a validation split (prepare carves one out of train when there is none).",
        )


def _estimate(config: TrainConfig, plan, resolved) -> list[str]:
    """Trainable parameters and memory per process, from the model's config (no weights read)."""
    from sqlsft.models.resolve import embedded_model_path
    from sqlsft.train.estimate import estimate_lines

    if resolved is None:
        return []  # the model could not be resolved: the notes already say why
    path = resolved.path_or_id
    if resolved.is_embedded:
        path = str(embedded_model_path())
        if not (embedded_model_path() / "config.json").is_file():
            return ["the estimate needs the embedded model's config: it is converted on the first real run"]
    return estimate_lines(path, config, plan.num_processes, plan.device, plan.strategy == "fsdp")


def _dry_run(config: TrainConfig, plan, notes: list[str], run_name: str | None, hardware: str) -> DryRunPlan:
    folder = runs_dir() / (run_name or f"{time.strftime('%Y%m%d-%H%M%S')}-{config.preset}")
    command = launch.launch_command(RunFolder(folder).accelerate_file, folder)
    return DryRunPlan(config.to_yaml(), launch.accelerate_yaml(plan), command, notes, hardware)


# ---------------------------------------------------------------- running and following


def _raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


def execute(folder: RunFolder, command: list[str], view: TrainView, start_step: int = 0) -> TrainResult:
    """Run the launch command to its end; Ctrl-C (or SIGTERM) asks for a checkpoint, a second one kills."""
    started = time.time()
    follower = MetricsFollower(folder.path)
    events: list[MetricsRow] = []  # this launch's events (a resumed run's file holds earlier ones)

    def follow() -> None:
        rows = follower.new_rows()
        events.extend(row for row in rows if not row.is_step)
        view.progress(rows)

    try:
        process = start_in_group(command, folder.log_file, env=child_env(), append=True)
    except SqlsftError:
        update_status(folder.path, status=RunState.FAILED, finished_at=now_iso())
        raise
    update_status(folder.path, launcher_pid=process.pid)
    view.progress_started(start_step)
    previous_term = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    interrupted = False
    try:
        try:
            while process.poll() is None:
                follow()
                time.sleep(POLL_S)
        except KeyboardInterrupt:
            interrupted = True
            view.note(
                "Stopping: the trainer saves a checkpoint after the current step (Ctrl-C again to kill now)."
            )
            launch.request_stop(process)
            deadline = time.monotonic() + TRAIN_STOP_GRACE_S
            try:
                while process.poll() is None and time.monotonic() < deadline:
                    follow()
                    time.sleep(POLL_S)
            except KeyboardInterrupt:
                view.note("Killing the training processes now.")
    finally:
        kill_group(process.pid, child=process)  # start_in_group made the launcher its group's leader
        follow()
        view.progress_stopped()
        signal.signal(signal.SIGTERM, previous_term)
    interrupted = interrupted or any(row.event == MetricsEvent.INTERRUPTED for row in events)
    return finish(folder, process.returncode, interrupted, started)


def finish(folder: RunFolder, returncode: int | None, interrupted: bool, started: float) -> TrainResult:
    """Record the outcome in status.json; a failed run raises with the line of the log that says why."""
    metrics = read_metrics(folder.path)
    saved = first_event(metrics, MetricsEvent.SAVED) is not None and (
        (folder.model_dir / "config.json").is_file() or has_adapter(folder.path)  # --no-merge: adapter/ only
    )
    if interrupted:
        status = RunState.INTERRUPTED
    elif returncode == 0 and saved:
        status = RunState.COMPLETED
    else:
        status = RunState.FAILED
    summary = summarize(metrics)
    summary.duration_s = round(time.time() - started, 1)
    summary.exit_code = returncode
    record = read_status(folder.path)
    earlier = (record.duration_s or 0) if record.resumes else 0  # time spent before a resume
    update_status(
        folder.path, status=status, finished_at=now_iso(), duration_s=round(earlier + summary.duration_s, 1),
        max_steps=summary.max_steps or record.max_steps, exit_code=returncode, steps=summary.steps,
        first_loss=summary.first_loss, final_loss=summary.final_loss, first_loss_mean3=summary.first_loss_mean3,
        final_loss_mean3=summary.final_loss_mean3, tokens_per_s=summary.tokens_per_s,
        train_seconds=summary.train_seconds, peak_memory_gib=summary.peak_memory_gib,
    )  # fmt: skip
    if status == RunState.FAILED:
        raise SqlsftError(
            f"Training failed (exit code {returncode}): {last_error(folder.log_file)}",
            f"Full log: {folder.log_file}",
        )
    return TrainResult(status, load_run(folder.path), summary)


def summarize(metrics: list[MetricsRow]) -> TrainSummary:
    out = TrainSummary()
    scored = evaluations(metrics)
    if scored:
        out.last_eval = scored[-1]
        out.start_eval = scored[0] if scored[0].step == 0 else None
        out.best_eval = best_evaluation(metrics)  # as the Trainer ranks checkpoints
    saved = first_event(metrics, MetricsEvent.SAVED, last=True)
    if saved is not None and saved.text("best_checkpoint"):
        out.model_checkpoint = Path(saved.text("best_checkpoint")).name
    steps = step_rows(metrics)
    if not steps:
        return out
    losses = [row.loss for row in steps]
    out.first_loss, out.final_loss = round(losses[0], 4), round(losses[-1], 4)
    if len(losses) >= 6:
        out.first_loss_mean3 = round(sum(losses[:3]) / 3, 4)
        out.final_loss_mean3 = round(sum(losses[-3:]) / 3, 4)
    out.steps, out.max_steps = steps[-1].step, steps[-1].max_steps
    counted = [row for row in steps if row.number("num_tokens") is not None and row.time is not None]
    start = first_event(metrics, MetricsEvent.START, last=True)
    if counted and start is not None and start.time is not None:
        seconds = counted[-1].time - start.time
        if seconds > 0:
            out.tokens_per_s = round(counted[-1].number("num_tokens") / seconds, 1)
        out.train_seconds = round(seconds, 1)
    memory = [row.number("peak_memory_gib") for row in steps if row.number("peak_memory_gib") is not None]
    if memory:
        out.peak_memory_gib = max(memory)
    return out


def last_error(log_file: Path) -> str:
    """The line of train.log that says why training failed: the worker's own error line, else the last
    exception line (accelerate's CalledProcessError after it only says that a rank failed)."""
    lines = log_tail(log_file, lines=2000, max_bytes=512_000)
    if not lines:
        return "no log written" if not log_file.is_file() else "the training process exited without output"
    for line in reversed(lines):
        if SQLSFT_ERROR_MARK in line:
            return line.split(SQLSFT_ERROR_MARK, 1)[1].strip()
    pattern = re.compile(r"^\s*(\w+(Error|Exception)|ChildFailedError|error)\b[:\s]")
    for line in reversed(lines):
        if pattern.match(line) and "CalledProcessError" not in line:
            return line.strip()[:300]
    return lines[-1].strip()[:300]
