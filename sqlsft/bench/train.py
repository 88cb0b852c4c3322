"""`sqlsft bench train`: a short timed training run per preset x GPU count, on the same prepared data.

Each combination is a real `sqlsft train` run (same presets, same accelerate launch, same worker) with
`max_steps = warmup + steps`, kept out of the run registry under `runs/bench/<time>-train/runs/`. The
figures come from the run's metrics.jsonl (rank 0 logs every step, see train_figures.py): the warm-up steps
are left out, tokens are TRL's `num_tokens` (real tokens, never padding), samples/s and the projected epoch
follow from the token lengths of the prepared train split. The table and the plot are drawn by the CLI
(sqlsft/cli/views/bench.py).
"""

import csv
import io
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from sqlsft.bench.random_init import random_init_model
from sqlsft.bench.train_figures import BenchStatus, add_ratios, run_figures
from sqlsft.common.errors import SqlsftError
from sqlsft.common.files import write_json
from sqlsft.common.paths import runs_dir
from sqlsft.train.adapter import adapter_dir

DEFAULT_PRESETS = ("baseline", "liger-slow", "liger", "fast")
# Full fine-tuning against LoRA and QLoRA: `--presets baseline,lora,qlora` (qlora is skipped without a GPU).
TIME_FORMAT = "%Y%m%d-%H%M%S"
REPORT_FILE = "bench.json"
CSV_FILE = "bench.csv"
PLOT_FILE = "bench.png"
CSV_FIELDS = (
    "preset", "device", "gpus", "processes", "status", "reason", "steps", "warmup_steps",
    "per_device_batch", "tokens_per_micro_batch", "attn_implementation", "step_time_s", "tokens_per_s", "samples_per_s", "peak_memory_gib", "memory_kind",
    "projected_epoch_s", "tokens_per_s_ratio", "peak_memory_ratio", "mfu", "first_loss", "last_loss",
)  # fmt: skip
METHOD = (
    "Each row is a real `sqlsft train` run of warmup+steps steps. Timed window: from the log of the last "
    "warm-up step to the log of the last step (rank 0, logging_steps=1). tokens/s counts TRL's num_tokens "
    "(non-padding tokens, all ranks); samples/s = tokens/s / mean tokens per train row; projected epoch = "
    "real tokens of the train split (rows within max_length) / tokens/s. A preset with "
    "tokens_per_micro_batch packs rows into one padding-free sequence of up to that many tokens per micro-batch "
    "(per_device_batch is then 1); the worker's resolved budget and attention are read from metrics.jsonl. "
    "Peak memory: torch's max "
    "allocated GPU memory, or the peak RSS of rank 0 on the CPU. MFU = FLOPs/token x tokens/s / "
    "(GPUs x peak dense bf16 FLOP/s)."
)


@dataclass
class BenchTrainOptions:
    presets: list[str] = field(default_factory=lambda: list(DEFAULT_PRESETS))
    gpus: list[int] = field(default_factory=lambda: [1])
    steps: int = 10
    warmup_steps: int = 2
    model: str | None = None  # default: each preset's own model
    random_init: bool = False
    dataset: str = "builtin"
    num_rows: int | None = 2000  # builtin size (or a cap on other sources): the same data for every preset
    overrides: list[str] = field(default_factory=list)  # extra --set for every preset


def skip_reason(config, gpus: int, hardware) -> str | None:
    """Why a preset x GPU count cannot run on this machine (None: it can)."""
    import importlib.util

    present = hardware.gpu_count
    liger = bool(config.training.get("use_liger_kernel")) or bool(
        (config.training.get("model_init_kwargs") or {}).get("use_kernels")
    )
    if liger and present == 0:
        return "liger-kernel needs a GPU (Triton kernels); this machine has none"
    if liger and importlib.util.find_spec("liger_kernel") is None:
        return "liger-kernel is not installed (pip install 'sqlsft[gpu]')"
    if config.quantized and present == 0:
        return "QLoRA's 4-bit base (bitsandbytes) needs a CUDA GPU; this machine has none"
    if config.quantized and importlib.util.find_spec("bitsandbytes") is None:
        return "bitsandbytes is not installed (pip install 'sqlsft[gpu]')"
    if present == 0 and gpus > 1:
        return f"asks for {gpus} GPUs; this machine has none (1 means one CPU process here)"
    if present and gpus > present:
        return f"asks for {gpus} GPUs; this machine has {present}"
    return None


def _versions() -> dict[str, str]:
    from sqlsft.common.environment import package_version

    return {
        name: package_version(name) for name in ("torch", "transformers", "trl", "accelerate", "liger-kernel")
    }


def _check(options: BenchTrainOptions) -> None:
    if options.steps < 1:
        raise SqlsftError(f"--steps must be at least 1 (got {options.steps}).")
    if options.warmup_steps < 0:
        raise SqlsftError(f"--warmup-steps must be 0 or more (got {options.warmup_steps}).")
    if options.random_init and not options.model:
        raise SqlsftError("--random-init needs --model (whose config and tokenizer to use).")


def _overrides(options: BenchTrainOptions, hardware) -> list[str]:
    return [
        "save_strategy='no'",  # a benchmark keeps no checkpoint (quoted: YAML reads a bare no as false)
        "logging_steps=1",  # every step's time and tokens
        "eval_rows=0",  # no execution-accuracy evaluation inside a timed run (ask for it with --set)
        f"dataset_num_proc={max(1, min(8, hardware.cpu_cores))}",
        *([f"data.num_rows={options.num_rows}"] if options.num_rows else []),
        *options.overrides,
    ]


@dataclass
class _Bench:
    """What every run of one benchmark shares."""

    options: BenchTrainOptions
    hardware: Any
    model: str | None
    overrides: list[str]
    out: Path
    console: Console

    @property
    def total_steps(self) -> int:
        return self.options.warmup_steps + self.options.steps


def _run_one(bench: _Bench, preset: str, config, gpus: int) -> dict[str, Any]:
    """One preset x GPU count: a result row (measured, skipped, failed or interrupted)."""
    from sqlsft.runs.status import read_status
    from sqlsft.train.supervise import TrainOptions, train
    from sqlsft.train.view import TrainView

    console, options = bench.console, bench.options
    device = "cpu" if bench.hardware.gpu_count == 0 else "gpu"
    row: dict[str, Any] = {
        "preset": preset,
        "device": device,
        "gpus": gpus if device == "gpu" else 0,
        "processes": gpus,
        "steps": options.steps,
        "warmup_steps": options.warmup_steps,
        "per_device_batch": config.training.get("per_device_train_batch_size"),
    }
    label = (
        f"{preset} on the CPU"
        if device == "cpu" and gpus == 1
        else f"{preset} x {gpus} GPU{'s' * (gpus > 1)}"
    )
    reason = skip_reason(config, gpus, bench.hardware)
    if reason:
        console.print(f"[yellow]skip[/] {label}: {reason}")
        return {**row, "status": BenchStatus.SKIPPED, "reason": reason}
    run_name = f"bench/{bench.out.name}/runs/{preset}-{'cpu' if device == 'cpu' else f'{gpus}gpu'}"
    train_options = TrainOptions(
        preset=preset,
        overrides=bench.overrides,
        model=bench.model,
        dataset=options.dataset,
        max_steps=bench.total_steps,
        gpus=str(gpus) if device == "gpu" else None,
        run_name=run_name,
        report_to="none",
    )
    run_dir = runs_dir() / run_name
    console.print(f"[bold]run[/] {label}: {bench.total_steps} steps -> {run_dir}")
    quiet = Console(file=io.StringIO(), width=200)  # the run's own chatter stays in its folder
    try:
        with console.status(f"training {label} (log: {run_dir / 'train.log'})"):
            result = train(train_options, TrainView(quiet))
    except SqlsftError as exc:
        console.print(f"[red]failed[/] {label}: {exc}")
        return {**row, "status": BenchStatus.FAILED, "reason": str(exc), "run_dir": str(run_dir)}
    (run_dir / "train-console.txt").write_text(quiet.file.getvalue(), encoding="utf-8")
    if result.status == "interrupted":
        return {
            **row,
            "status": BenchStatus.INTERRUPTED,
            "reason": "stopped by the user",
            "run_dir": str(run_dir),
        }
    console.print(f"  $ {read_status(run_dir).command or ''}", markup=False, highlight=False, soft_wrap=True)
    row.update(
        run_figures(run_dir, config, options.warmup_steps, options.steps, bench.hardware, gpus, device)
    )
    row.update(status=BenchStatus.OK, reason="", run_dir=str(run_dir))
    for weights in (run_dir / "model", adapter_dir(run_dir)):  # the weights are not what a benchmark keeps
        shutil.rmtree(weights, ignore_errors=True)
    return row


def bench_train(options: BenchTrainOptions, console: Console) -> dict[str, Any]:
    """Run every preset x GPU count; bench.json and bench.csv in runs/bench/<time>-train/; the report.

    The report's `interrupted` is true when the user stopped a run (the rows so far are kept)."""
    from sqlsft.common.hardware import detect_hardware
    from sqlsft.train.config import resolve_config

    _check(options)
    hardware = detect_hardware()
    model = str(random_init_model(options.model, console)) if options.random_init else options.model
    overrides = _overrides(options, hardware)
    total_steps = options.warmup_steps + options.steps
    # Check every preset before anything runs: an unknown preset or key is an error, not a skip.
    configs = {
        preset: resolve_config(preset, None, overrides, model, options.dataset, total_steps)
        for preset in options.presets
    }
    load_start = [round(x, 2) for x in os.getloadavg()]
    out = runs_dir() / "bench" / f"{time.strftime(TIME_FORMAT)}-train"
    out.mkdir(parents=True, exist_ok=True)
    bench = _Bench(options, hardware, model, overrides, out, console)
    console.print(
        f"bench train: {', '.join(options.presets)} x GPUs {','.join(map(str, options.gpus))}, "
        f"{options.warmup_steps} warm-up + {options.steps} timed steps each, on {hardware.describe()}"
    )
    results: list[dict[str, Any]] = []
    for gpus in options.gpus:
        for preset, config in configs.items():
            results.append(_run_one(bench, preset, config, gpus))
            if results[-1]["status"] == BenchStatus.INTERRUPTED:
                break
        if results and results[-1]["status"] == BenchStatus.INTERRUPTED:
            break
    add_ratios(results)
    report = {
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "hardware": hardware.describe(),
        # other work on the machine slows every figure: the 1/5/15-minute load averages at start and end
        "load_average": {"start": load_start, "end": [round(x, 2) for x in os.getloadavg()]},
        "gpus_present": [g.name for g in hardware.gpus],
        "cpu_cores": hardware.cpu_cores,
        "versions": _versions(),
        "options": asdict(options),
        "model_path": model,
        "method": METHOD,
        "interrupted": any(r["status"] == BenchStatus.INTERRUPTED for r in results),
        "results": results,
        "folder": str(out),
    }
    write_outputs(out, report)
    return report


def write_outputs(folder: Path, report: dict) -> None:
    write_json(folder / REPORT_FILE, report)
    with open(folder / CSV_FILE, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for row in report["results"]:
            writer.writerow({k: row.get(k) for k in CSV_FIELDS})
