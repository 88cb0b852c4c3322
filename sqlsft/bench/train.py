"""`sqlsft bench train`: a short timed training run per preset x GPU count, on the same prepared data.

Each combination is a real `sqlsft train` run (same presets, same accelerate launch, same worker) with
`max_steps = warmup + steps`, kept out of the run registry under `runs/bench/<time>-train/runs/`. The
figures come from the run's metrics.jsonl (rank 0 logs every step): the warm-up steps are left out,
tokens are TRL's `num_tokens` (attention-mask or padding-free position counts: real tokens, never
padding), samples/s and the projected epoch follow from the token lengths of the prepared train split.
"""

import contextlib
import csv
import hashlib
import io
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from sqlsft.common.errors import SqlsftError
from sqlsft.common.paths import cache_dir, runs_dir

DEFAULT_PRESETS = ("baseline", "liger-slow", "liger", "fast")
TIME_FORMAT = "%Y%m%d-%H%M%S"
CSV_FIELDS = (
    "preset", "device", "gpus", "processes", "status", "reason", "steps", "warmup_steps",
    "per_device_batch", "step_time_s", "tokens_per_s", "samples_per_s", "peak_memory_gib", "memory_kind",
    "projected_epoch_s", "tokens_per_s_ratio", "peak_memory_ratio", "mfu", "first_loss", "last_loss",
)  # fmt: skip
# Dense bf16 tensor-core peaks (FLOP/s) from the vendors' data sheets, for MFU; unknown GPUs get none.
PEAK_BF16_FLOPS = {
    "H200": 989e12,
    "H100": 989e12,
    "A100": 312e12,
    "L40S": 362e12,
    "L4": 121e12,
}


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


def parse_list(text: str, what: str) -> list[str]:
    items = [p.strip() for p in str(text).split(",") if p.strip()]
    if not items:
        raise SqlsftError(f"{what}: give a comma-separated list, e.g. baseline,fast.")
    return items


def parse_gpus(text: str) -> list[int]:
    counts = []
    for item in parse_list(text, "--gpus"):
        try:
            count = int(item)
        except ValueError:
            raise SqlsftError(f"--gpus {text!r}: give GPU counts such as 1,4.") from None
        if count < 1:
            raise SqlsftError(
                f"--gpus {text!r}: counts start at 1 (1 means the CPU on a machine without GPU)."
            )
        counts.append(count)
    return counts


# ---------------------------------------------------------------------------------------------------
# A model built from its config only


def random_init_model(spec: str, console: Console) -> Path:
    """A folder with `spec`'s config and tokenizer and randomly initialised weights (seed 0), cached.

    Only the config and the tokenizer are read (from the hub, a folder, or the embedded model), so
    throughput can be measured where the weights can't be downloaded.
    """
    from sqlsft.models.resolve import embedded_model_dir, resolve_model

    resolved = resolve_model(spec)
    source = str(embedded_model_dir(console)) if resolved.is_embedded else resolved.path_or_id
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(source)
    digest = hashlib.sha256(config.to_json_string(use_diff=False).encode()).hexdigest()[:12]
    name = "".join(c if c.isalnum() or c in "-_." else "-" for c in spec.replace("/", "--"))[-60:]
    folder = cache_dir() / "random-init" / f"{name}-{digest}"
    if (folder / ".complete").is_file():
        return folder
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    console.print(f"Building {spec} from its config with random weights (no weights read) -> {folder}")
    tokenizer = AutoTokenizer.from_pretrained(source)
    if not tokenizer.chat_template:
        from sqlsft.models.chat_template import gemma3_chat_template

        tokenizer.chat_template = gemma3_chat_template()
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    with contextlib.suppress(OSError):  # no generation_config.json: the train worker adds the stop tokens
        model.generation_config = GenerationConfig.from_pretrained(source)
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    (staging / ".complete").write_text(spec + "\n")
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    return folder


# ---------------------------------------------------------------------------------------------------
# Figures


def model_flops_per_token(model_path: str, mean_tokens: float) -> float | None:
    """Training FLOPs per token: 6 x matmul parameters (the LM head counted, the embedding lookup not)
    plus attention's 12 x layers x heads x head_dim x context (PaLM's formula), context = mean sample length."""
    try:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM

        config = AutoConfig.from_pretrained(model_path)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
        params = sum(p.numel() for p in model.parameters())  # a tied head is one parameter, counted once
        embed = model.get_input_embeddings().weight
        head = model.get_output_embeddings()
        text = config.get_text_config() if hasattr(config, "get_text_config") else config
        head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
        attention = 12 * text.num_hidden_layers * text.num_attention_heads * head_dim * mean_tokens
        # the embedding lookup costs no matmul; the LM head does (the same weights when tied)
        matmul_params = params if head is not None and head.weight is embed else params - embed.numel()
        return 6 * matmul_params + attention
    except Exception:
        return None


def peak_flops(gpu_name: str) -> float | None:
    for key, value in PEAK_BF16_FLOPS.items():
        if key in gpu_name.upper():
            return value
    return None


def data_lengths(run_dir: Path, max_length: int) -> tuple[list[int], str]:
    """Token lengths (prompt + completion, chat template applied) of the train rows the run trained on."""
    from datasets import load_from_disk

    info = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    train = load_from_disk(info["data_path"])["train"]
    if "num_tokens" in train.column_names and info.get("data_token_counts", True):  # this model's tokenizer
        lengths = list(train["num_tokens"])
    else:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(info["model_path"])
        lengths = [
            len(tokenizer.apply_chat_template(p + c, tokenize=True, return_dict=False))
            for p, c in zip(train["prompt"], train["completion"], strict=True)
        ]
    return [n for n in lengths if n <= max_length], info["model_path"]


def measure(run_dir: Path, warmup: int, steps: int) -> dict[str, Any]:
    """Step time, tokens/s and peak memory of steps warmup+1 .. warmup+steps, from metrics.jsonl."""
    from sqlsft.runs.registry import read_metrics

    metrics = read_metrics(run_dir)
    logged = {int(m["step"]): m for m in metrics if not m.get("event") and m.get("loss") is not None}
    start = next((m for m in metrics if m.get("event") == "start"), None)
    last_step = warmup + steps
    if last_step not in logged:
        raise SqlsftError(f"{run_dir.name}: step {last_step} was never logged (see {run_dir / 'train.log'}).")
    if warmup == 0:
        if start is None:
            raise SqlsftError(f"{run_dir.name}: no start event in metrics.jsonl.")
        begin = {"time": start["time"], "num_tokens": 0}
    else:
        begin = logged.get(warmup)
        if begin is None:
            raise SqlsftError(f"{run_dir.name}: step {warmup} was never logged.")
    end = logged[last_step]
    seconds = end["time"] - begin["time"]
    tokens = (end.get("num_tokens") or 0) - (begin.get("num_tokens") or 0)
    window = [m for s, m in logged.items() if warmup < s <= last_step]
    memory = [m["peak_memory_gib"] for m in window if m.get("peak_memory_gib") is not None]
    losses = [logged[s]["loss"] for s in sorted(logged)]
    return {
        "seconds": seconds,
        "tokens": tokens,
        "step_time_s": seconds / steps,
        "tokens_per_s": tokens / seconds if seconds > 0 else None,
        "peak_memory_gib": max(memory) if memory else None,
        "memory_kind": window[-1].get("memory") if window else None,
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
    }


# ---------------------------------------------------------------------------------------------------
# The benchmark


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


def bench_train(options: BenchTrainOptions, console: Console) -> dict[str, Any]:
    from sqlsft.common.hardware import detect_hardware
    from sqlsft.train.config import resolve_config
    from sqlsft.train.supervise import TrainOptions, train

    if options.steps < 1:
        raise SqlsftError(f"--steps must be at least 1 (got {options.steps}).")
    if options.warmup_steps < 0:
        raise SqlsftError(f"--warmup-steps must be 0 or more (got {options.warmup_steps}).")
    hardware = detect_hardware()
    model = options.model
    if options.random_init:
        if not model:
            raise SqlsftError("--random-init needs --model (whose config and tokenizer to use).")
        model = str(random_init_model(model, console))
    total_steps = options.warmup_steps + options.steps
    overrides = [
        "save_strategy='no'",  # a benchmark keeps no checkpoint (quoted: YAML reads a bare no as false)
        "logging_steps=1",  # every step's time and tokens
        f"dataset_num_proc={max(1, min(8, hardware.cpu_cores))}",
        *([f"data.num_rows={options.num_rows}"] if options.num_rows else []),
        *options.overrides,
    ]
    # Check every preset before anything runs: an unknown preset or key is an error, not a skip.
    configs = {
        preset: resolve_config(preset, None, overrides, model, options.dataset, total_steps)
        for preset in options.presets
    }
    load_start = [round(x, 2) for x in os.getloadavg()]
    stamp = time.strftime(TIME_FORMAT)
    out = runs_dir() / "bench" / f"{stamp}-train"
    out.mkdir(parents=True, exist_ok=True)
    console.print(
        f"bench train: {', '.join(options.presets)} x GPUs {','.join(map(str, options.gpus))}, "
        f"{options.warmup_steps} warm-up + {options.steps} timed steps each, on {hardware.describe()}"
    )
    results: list[dict[str, Any]] = []
    interrupted = False
    for gpus in options.gpus:
        for preset, config in configs.items():
            device = "cpu" if hardware.gpu_count == 0 else "gpu"
            row: dict[str, Any] = {
                "preset": preset,
                "device": device,
                "gpus": gpus if device == "gpu" else 0,
                "processes": gpus,
                "steps": options.steps,
                "warmup_steps": options.warmup_steps,
                "per_device_batch": config.training.get("per_device_train_batch_size"),
            }
            on_cpu = device == "cpu" and gpus == 1
            label = f"{preset} on the CPU" if on_cpu else f"{preset} x {gpus} GPU{'s' if gpus > 1 else ''}"
            reason = skip_reason(config, gpus, hardware)
            if reason:
                console.print(f"[yellow]skip[/] {label}: {reason}")
                results.append({**row, "status": "skipped", "reason": reason})
                continue
            run_name = f"bench/{out.name}/runs/{preset}-{'cpu' if device == 'cpu' else f'{gpus}gpu'}"
            train_options = TrainOptions(
                preset=preset,
                overrides=overrides,
                model=model,
                dataset=options.dataset,
                max_steps=total_steps,
                gpus=str(gpus) if device == "gpu" else None,
                run_name=run_name,
                report_to="none",
            )
            run_dir = runs_dir() / run_name
            console.print(f"[bold]run[/] {label}: {total_steps} steps -> {run_dir}")
            quiet = Console(file=io.StringIO(), width=200)  # the run's own chatter stays in its folder
            try:
                with console.status(f"training {label} (log: {run_dir / 'train.log'})"):
                    result = train(train_options, quiet)
            except SqlsftError as exc:
                console.print(f"[red]failed[/] {label}: {exc}")
                results.append({**row, "status": "failed", "reason": str(exc), "run_dir": str(run_dir)})
                continue
            (run_dir / "train-console.txt").write_text(quiet.file.getvalue(), encoding="utf-8")
            if result.status == "interrupted":
                results.append(
                    {**row, "status": "interrupted", "reason": "stopped by the user", "run_dir": str(run_dir)}
                )
                interrupted = True
                break
            status = runs_status(run_dir)
            console.print(f"  $ {status.get('command', '')}", markup=False, highlight=False, soft_wrap=True)
            row.update(_figures(run_dir, config, options, hardware, gpus, device))
            row.update(status="ok", reason="", run_dir=str(run_dir))
            shutil.rmtree(run_dir / "model", ignore_errors=True)  # the weights are not what a benchmark keeps
            results.append(row)
        if interrupted:
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
        "options": {
            "presets": options.presets,
            "gpus": options.gpus,
            "steps": options.steps,
            "warmup_steps": options.warmup_steps,
            "model": options.model,
            "random_init": options.random_init,
            "dataset": options.dataset,
            "num_rows": options.num_rows,
            "overrides": options.overrides,
        },
        "model_path": model,
        "method": (
            "Each row is a real `sqlsft train` run of warmup+steps steps. Timed window: from the log of the last "
            "warm-up step to the log of the last step (rank 0, logging_steps=1). tokens/s counts TRL's num_tokens "
            "(non-padding tokens, all ranks); samples/s = tokens/s / mean tokens per train row; projected epoch = "
            "real tokens of the train split (rows within max_length) / tokens/s. Peak memory: torch's max "
            "allocated GPU memory, or the peak RSS of rank 0 on the CPU. MFU = FLOPs/token x tokens/s / "
            "(GPUs x peak dense bf16 FLOP/s)."
        ),
        "interrupted": interrupted,
        "results": results,
        "folder": str(out),
    }
    write_outputs(out, report)
    console.print(results_table(report))
    if interrupted:
        raise SqlsftError(f"bench train interrupted; partial results saved in {out}.", exit_code=130)
    return report


def runs_status(run_dir: Path) -> dict:
    from sqlsft.runs.registry import STATUS_FILE, read_json

    return read_json(run_dir / STATUS_FILE)


def _figures(run_dir: Path, config, options: BenchTrainOptions, hardware, gpus: int, device: str) -> dict:
    figures = measure(run_dir, options.warmup_steps, options.steps)
    max_length = int(config.training.get("max_length") or 1024)
    lengths, model_path = data_lengths(run_dir, max_length)
    mean_tokens = sum(lengths) / len(lengths) if lengths else None
    rate = figures["tokens_per_s"]
    out = {
        "step_time_s": round(figures["step_time_s"], 4),
        "tokens_per_s": round(rate, 1) if rate else None,
        "samples_per_s": round(rate / mean_tokens, 2) if rate and mean_tokens else None,
        "peak_memory_gib": None
        if figures["peak_memory_gib"] is None
        else round(figures["peak_memory_gib"], 3),
        "memory_kind": figures["memory_kind"],
        "projected_epoch_s": round(sum(lengths) / rate, 1) if rate and lengths else None,
        "epoch_tokens": sum(lengths),
        "epoch_rows": len(lengths),
        "mean_tokens_per_row": round(mean_tokens, 1) if mean_tokens else None,
        "timed_tokens": figures["tokens"],
        "timed_seconds": round(figures["seconds"], 3),
        "first_loss": figures["first_loss"],
        "last_loss": figures["last_loss"],
        "mfu": None,
    }
    if device == "gpu" and rate and mean_tokens:
        flops = model_flops_per_token(model_path, mean_tokens)
        peak = peak_flops(hardware.gpus[0].name)
        if flops and peak:
            out["flops_per_token"] = flops
            out["mfu"] = round(flops * rate / (gpus * peak), 4)
    return out


def add_ratios(results: list[dict]) -> None:
    """tokens/s and peak memory relative to the first preset measured with the same GPU count."""
    measured = [r for r in results if r["status"] == "ok"]
    for row in measured:
        reference = next((r for r in measured if r["processes"] == row["processes"]), measured[0])
        for key, ratio in (("tokens_per_s", "tokens_per_s_ratio"), ("peak_memory_gib", "peak_memory_ratio")):
            a, b = row.get(key), reference.get(key)
            row[ratio] = round(a / b, 3) if a and b else None


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    value = round(value)
    hours, rest = divmod(value, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


def results_table(report: dict) -> Table:
    table = Table(title=f"bench train on {report['hardware']}")
    columns = ("preset", "device", "batch", "step s", "tokens/s", "ratio", "samples/s", "peak GiB", "ratio",
               "epoch", "MFU")  # fmt: skip
    for name in columns:
        table.add_column(name, justify="left" if name in ("preset", "device") else "right")
    skipped = []
    for r in report["results"]:
        device = "CPU" if r["device"] == "cpu" else f"{r['gpus']} GPU"
        if r["status"] != "ok":
            asked = f"{r['processes']} GPUs" if r["processes"] > 1 else device
            skipped.append(f"{r['status']}: {r['preset']} x {asked} ({r['reason']})")
            continue
        memory = "-" if r["peak_memory_gib"] is None else f"{r['peak_memory_gib']:.2f}"
        table.add_row(
            r["preset"],
            device,
            str(r.get("per_device_batch") or "-"),
            f"{r['step_time_s']:.3f}",
            f"{r['tokens_per_s']:,.0f}" if r["tokens_per_s"] else "-",
            f"{r['tokens_per_s_ratio']:.2f}x" if r.get("tokens_per_s_ratio") else "-",
            f"{r['samples_per_s']:.1f}" if r["samples_per_s"] else "-",
            memory,
            f"{r['peak_memory_ratio']:.2f}x" if r.get("peak_memory_ratio") else "-",
            _seconds(r["projected_epoch_s"]),
            f"{100 * r['mfu']:.1f}%" if r.get("mfu") else "-",
        )
    rss = any(r.get("memory_kind") == "cpu-rss" for r in report["results"])
    caption = [
        f"{report['options']['warmup_steps']} warm-up steps excluded, {report['options']['steps']} timed; "
        "ratio: to the first preset; epoch: projected from tokens/s"
        + ("; peak memory: RSS of the CPU process" if rss else "")
    ]
    caption += skipped
    caption.append(f"saved {report['folder']}/bench.json, bench.csv, bench.png")
    table.caption = "\n".join(caption)
    return table


def write_outputs(folder: Path, report: dict) -> None:
    (folder / "bench.json").write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    with open(folder / "bench.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for row in report["results"]:
            writer.writerow({k: row.get(k) for k in CSV_FIELDS})
    plot(report, folder / "bench.png")


def plot(report: dict, path: Path) -> None:
    """Bar charts: tokens/s and peak memory per measured combination; skipped ones named below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [r for r in report["results"] if r["status"] == "ok"]
    labels = [
        f"{r['preset']}\n{'CPU' if r['device'] == 'cpu' else str(r['gpus']) + ' GPU'}" for r in measured
    ]
    fig, axes = plt.subplots(1, 2, figsize=(max(8, 2.2 * len(measured) + 4), 4.5))
    for ax, key, title in (
        (axes[0], "tokens_per_s", "tokens/s (real tokens, higher is better)"),
        (axes[1], "peak_memory_gib", "peak memory, GiB (lower is better)"),
    ):
        values = [r.get(key) or 0 for r in measured]
        bars = ax.bar(labels, values, color="#4C72B0")
        ax.set_title(title, fontsize=10)
        for bar, value in zip(bars, values, strict=True):
            ax.annotate(f"{value:,.0f}" if key == "tokens_per_s" else f"{value:.2f}",
                        (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=8)  # fmt: skip
        ax.tick_params(axis="x", labelsize=8)
    skipped = [
        f"{r['preset']} x {r['processes']}: {r['reason']}" for r in report["results"] if r["status"] != "ok"
    ]
    fig.suptitle(f"sqlsft bench train: {report['hardware']}", fontsize=11)
    if skipped:
        fig.text(0.01, 0.01, "not run: " + "; ".join(skipped), fontsize=7, wrap=True)
    fig.tight_layout(rect=(0, 0.06 if skipped else 0, 1, 0.95))
    fig.savefig(path, dpi=110)
    plt.close(fig)
