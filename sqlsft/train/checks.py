"""Checks before a launch: everything that can fail cheaply fails here, before any weights are loaded.

Liger without a GPU, bf16 on a GPU without it, a gated or missing model, too little free disk, a run
name already taken, a metrics logger that is not set up. A dry run turns these errors into notes.
"""

import importlib.util
import json
import os
from pathlib import Path

from sqlsft.common.environment import wandb_setup
from sqlsft.common.errors import SqlsftError
from sqlsft.common.hardware import Hardware, cpu_has_native_bf16, free_disk_gib
from sqlsft.common.paths import runs_dir
from sqlsft.models.resolve import ResolvedModel, model_weight_bytes, resolve_model
from sqlsft.runs.status import has_status
from sqlsft.train.config import TrainConfig
from sqlsft.train.launch import LaunchPlan

REPORT_TO = ("wandb", "trackio", "tensorboard", "none")
REPORT_PACKAGES = {"wandb": "wandb", "trackio": "trackio", "tensorboard": "tensorboard"}
EMBEDDED_WEIGHT_BYTES = 536_223_056  # the converted bf16 checkpoint, for the disk estimate before conversion
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2, "auto": 2, None: 4}
LORA_CHECKPOINT_SHARE = 0.05  # adapter parameters / model parameters, generously (r=32 all-linear: ~1.5-3%)


def resolve_report_to(explicit: str | None, config: TrainConfig) -> tuple[str | list, str | None]:
    """--report-to wins; then the config's own report_to; then wandb if it is set up; else local metrics only."""
    if explicit:
        value = explicit.lower()
        if value not in REPORT_TO:
            raise SqlsftError(f"--report-to {explicit}: unknown.", f"Use one of: {', '.join(REPORT_TO)}.")
        package = REPORT_PACKAGES.get(value)
        if package and importlib.util.find_spec(package) is None:
            raise SqlsftError(f"--report-to {value} needs the {package} package.", f"pip install {package}")
        if value == "wandb" and not wandb_setup().usable:
            raise SqlsftError(
                f"--report-to wandb: wandb is not set up here ({wandb_setup().detail}).",
                "Run `wandb login`, set WANDB_API_KEY, or WANDB_MODE=offline to log locally.",
            )
        if value == "trackio":
            return value, (
                f"trackio: logging locally (no account) to {trackio_dir()}, project sqlsft; "
                "see it with `trackio show --project sqlsft`"
            )
        return value, None
    if "report_to" in config.training:
        return config.training["report_to"], None
    if wandb_setup().usable:
        return "wandb", f"wandb: logging to project {os.environ.get('WANDB_PROJECT', 'sqlsft')}"
    return "none", (
        "Metrics stay local (metrics.jsonl). For wandb, run `wandb login` or set WANDB_API_KEY "
        "(or pass --report-to wandb)."
    )


def trackio_dir() -> Path:
    """Where trackio keeps its local database (its own rule: TRACKIO_DIR, else HF_HOME/trackio)."""
    if os.environ.get("TRACKIO_DIR"):
        return Path(os.environ["TRACKIO_DIR"])
    hf_home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface"
    )
    return Path(hf_home) / "trackio"


def estimate_disk_gib(
    config: TrainConfig, weight_bytes: int | None, file_dtype: str | None = "bfloat16"
) -> float:
    """Free disk a run needs: kept checkpoints (weights + AdamW's two fp32 moments) and the final model."""
    if not weight_bytes:
        return 1.0
    params = weight_bytes / DTYPE_BYTES.get(file_dtype, 2)
    train_bytes = DTYPE_BYTES.get(config.model.get("dtype"), 4)
    checkpoint = params * (train_bytes + 8)
    if config.uses_peft:  # a checkpoint holds the adapter and its optimizer: a few % of the model at most
        checkpoint = params * LORA_CHECKPOINT_SHARE * 12
    strategy = str(config.training.get("save_strategy", "steps"))
    kept = config.training.get("save_total_limit") or (1 if strategy == "no" else 2)
    return (kept * checkpoint + params * train_bytes) / 2**30 + 0.5


def _wants_bf16(config: TrainConfig) -> bool:
    return bool(config.training.get("bf16")) or config.model.get("dtype") == "bfloat16"


def slow_bf16_warning(config: TrainConfig, plan: LaunchPlan, cpu_bf16: bool | None = None) -> str | None:
    """bf16 on a CPU without native bf16 works (autocast) but is emulated: say so (`cpu_bf16`: detected if None)."""
    if not _wants_bf16(config) or plan.device != "cpu":
        return None
    if cpu_bf16 is None:
        cpu_bf16 = cpu_has_native_bf16()
    if cpu_bf16 is not False:
        return None
    return (
        "This CPU has no native bf16 (AVX512-BF16 or AMX): bf16 is emulated, many times slower than fp32 "
        "(--set bf16=false --set dtype=float32 trains faster)."
    )


def preflight(config: TrainConfig, plan: LaunchPlan, hardware: Hardware) -> list[str]:
    """Hardware problems that would make the launch fail, each one line with what to do (empty: all clear)."""
    problems = []
    liger = bool(config.training.get("use_liger_kernel"))
    if liger and plan.device == "cpu":
        problems.append(
            f"Preset '{config.preset}' uses liger-kernel, whose Triton kernels need a GPU, and this run is on the "
            "CPU. Use --preset baseline or fast (TRL's fused LM head already avoids the full logits), "
            "or --dry-run to prepare the job for a GPU machine."
        )
    elif liger and importlib.util.find_spec("liger_kernel") is None:
        problems.append("use_liger_kernel needs the liger-kernel package: pip install 'sqlsft[gpu]'.")
    if config.quantized and plan.device == "cpu":
        problems.append(
            f"Preset '{config.preset}' loads the base in 4 bits (QLoRA, bitsandbytes), which needs a CUDA GPU, "
            "and this run is on the CPU. Use --preset lora (the same adapter on a bf16 base), "
            "or --dry-run to prepare the job for a GPU machine."
        )
    elif config.quantized and importlib.util.find_spec("bitsandbytes") is None:
        problems.append("QLoRA (load_in_4bit) needs the bitsandbytes package: pip install 'sqlsft[gpu]'.")
    if config.uses_peft and importlib.util.find_spec("peft") is None:
        problems.append("LoRA (use_peft) needs the peft package: pip install peft.")
    if _wants_bf16(config) and plan.device == "gpu" and hardware.gpus:
        lacking = [g for g in hardware.gpus[: plan.processes_per_node] if not g.bf16]
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
    try:
        info = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # from_pretrained will say what is wrong with the folder
    if not isinstance(info, dict):
        return None
    return info.get("dtype") or info.get("torch_dtype") or "float32"


def check_run_name(run_name: str | None, nodes: int, dry_run: bool) -> None:
    if nodes > 1 and not run_name and not dry_run:
        raise SqlsftError(
            f"With --nodes {nodes} every machine must write to the same run folder.",
            "Pass the same --run-name on each machine, with the runs folder on a shared filesystem.",
        )
    if run_name and nodes == 1 and has_status(runs_dir() / run_name):
        raise SqlsftError(
            f"Run folder {runs_dir() / run_name} already holds a run.",
            f"Choose another --run-name, or continue it with `sqlsft train --resume {run_name}`.",
        )


def check_before_launch(
    config: TrainConfig, plan: LaunchPlan, hardware: Hardware, dry_run: bool
) -> tuple[ResolvedModel | None, list[str]]:
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
