"""Continuing a stopped run from its last checkpoint: which run, whether it can be resumed, the command."""

import os
from dataclasses import dataclass

from sqlsft.common.errors import SqlsftError
from sqlsft.common.files import now_iso
from sqlsft.common.hardware import detect_hardware
from sqlsft.runs.checkpoints import checkpoint_state, missing_checkpoint_files
from sqlsft.runs.registry import Run, RunFolder, list_runs, resolve_run
from sqlsft.runs.status import STATUS_FILE, RunState, update_status
from sqlsft.train import launch
from sqlsft.train.checks import resolve_report_to
from sqlsft.train.config import load_resolved
from sqlsft.train.options import TrainOptions
from sqlsft.train.run_folder import write_launch

RESUMABLE = (RunState.INTERRUPTED, RunState.FAILED)


@dataclass
class ResumePlan:
    folder: RunFolder
    command: list[str]
    start_step: int
    headline: str


def pick_resume_run(name: str) -> Run:
    if name:
        run = resolve_run(name)
        if run.selected:
            raise SqlsftError(
                f"--resume {name}: a run resumes from its newest checkpoint, not from {run.selected}.",
                f"Use --resume {run.name}.",
            )
        return run
    for run in list_runs():
        if run.status in RESUMABLE and run.checkpoints():
            return run
    raise SqlsftError(
        "No interrupted or failed run with a checkpoint to resume.",
        "See `sqlsft runs`, or name one: --resume RUN.",
    )


def _refuse_flags(options: TrainOptions) -> None:
    given = [flag for flag, value in (("--preset", options.preset), ("--config", options.config_file),
             ("--set", options.overrides), ("--model", options.model), ("--dataset", options.dataset),
             ("--max-steps", options.max_steps), ("--run-name", options.run_name),
             ("--no-merge", not options.merge_adapter), ("--eval-rows", options.eval_rows is not None),
             ("--eval-at-start", options.eval_at_start), ("--load-best", options.load_best)) if value]  # fmt: skip
    if given:
        raise SqlsftError(
            f"--resume continues a run with its own config; drop {', '.join(given)}.",
            "To change the config, start a new run.",
        )


def _check_state(run: Run) -> None:
    """Only a run that sqlsft recorded as stopped early is resumed: a damaged status.json is not guessed at."""
    if run.record.problems or run.status == RunState.UNKNOWN:
        detail = "; ".join(run.record.problems) or f"its status is {run.record.status}"
        raise SqlsftError(
            f"Run {run.name} cannot be resumed: its {STATUS_FILE} is not valid ({detail}).",
            "Start a new run, or repair the file if you know the run stopped early.",
        )
    if run.status == RunState.RUNNING:
        raise SqlsftError(f"Run {run.name} is still running (pid {run.record.pid}).")
    if run.status == RunState.COMPLETED:
        raise SqlsftError(
            f"Run {run.name} completed: nothing left to train.", "Start a new run to train further."
        )


def prepare_resume(options: TrainOptions) -> ResumePlan:
    """Checks that the run can continue, rewrites its launch files, and marks it running again."""
    _refuse_flags(options)
    run = pick_resume_run(options.resume or "")
    _check_state(run)
    found = run.checkpoints()
    if not found:
        raise SqlsftError(
            f"Run {run.name} has no checkpoint to resume from.",
            "Checkpoints are written by save_strategy and when a run is interrupted; start a new run.",
        )
    last = found[-1]
    earlier = f"Delete {last} to resume from {found[-2].name}." if len(found) > 1 else "Start a new run."
    missing = missing_checkpoint_files(last)
    if missing:
        raise SqlsftError(
            f"The last checkpoint {last} is incomplete (missing {', '.join(missing)}).", earlier
        )
    state = checkpoint_state(last)
    if state.problems or state.global_step is None:
        detail = "; ".join(state.problems) or "no global_step"
        raise SqlsftError(f"The last checkpoint {last} has a damaged trainer_state.json ({detail}).", earlier)
    step, total = state.global_step, state.max_steps or 0
    if total and step >= total:
        raise SqlsftError(
            f"Run {run.name} has nothing left to train: {last.name} is step {step} of {total}.",
            "Start a new run (for example with --max-steps or more epochs).",
        )
    config = load_resolved(run.config_file)
    if options.gpus is not None or options.cpu_processes is not None:
        plan, _ = launch.plan_launch(detect_hardware(), options.gpus, options.cpu_processes, options.strategy,
                                     mixed_precision=launch.mixed_precision(config.training))  # fmt: skip
        launch.write_accelerate_config(plan, run.accelerate_file)
        config.training["use_cpu"] = plan.use_cpu or None
        config.training = {k: v for k, v in config.training.items() if v is not None}
    if options.report_to:
        config.training["report_to"], _ = resolve_report_to(options.report_to, config)
    if options.gpus is not None or options.cpu_processes is not None or options.report_to:
        run.config_file.write_text(config.to_yaml(), encoding="utf-8")
    command = launch.launch_command(run.accelerate_file, run.path, resume_from=last)
    write_launch(run, command, run.resume_script)
    resumes = [*run.record.resumes, {"from": last.name, "step": step, "at": now_iso()}]
    update_status(run.path, status=RunState.RUNNING, pid=os.getpid(), finished_at=None, resumes=resumes)
    headline = f"Resuming run {run.name} from {last.name}: step {step} of {total or '?'}."
    return ResumePlan(run, command, step, headline)
