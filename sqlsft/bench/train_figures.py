"""The figures of one `bench train` run, read from its metrics.jsonl and run.json: step time, tokens/s,
samples/s, peak memory, the projected epoch, MFU; and the ratios between presets."""

from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlsft.common.errors import SqlsftError

# Dense bf16 tensor-core peaks (FLOP/s) from the vendors' data sheets, for MFU; unknown GPUs get none.
PEAK_BF16_FLOPS = {
    "H200": 989e12,
    "H100": 989e12,
    "A100": 312e12,
    "L40S": 362e12,
    "L4": 121e12,
}


class BenchStatus(StrEnum):
    """What became of one preset x GPU count."""

    OK = "ok"
    SKIPPED = "skipped"  # this machine cannot run it (no GPU for liger, too few GPUs)
    FAILED = "failed"
    INTERRUPTED = "interrupted"


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

    from sqlsft.runs.run_info import require_run_info

    info = require_run_info(run_dir)
    train = load_from_disk(info.data_path)["train"]
    if "num_tokens" in train.column_names and info.data_token_counts is not False:  # this model's tokenizer
        lengths = list(train["num_tokens"])
    else:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(info.model_path)
        lengths = [
            len(tokenizer.apply_chat_template(p + c, tokenize=True, return_dict=False))
            for p, c in zip(train["prompt"], train["completion"], strict=True)
        ]
    return [n for n in lengths if n <= max_length], info.model_path


def measure(run_dir: Path, warmup: int, steps: int) -> dict[str, Any]:
    """Step time, tokens/s and peak memory of steps warmup+1 .. warmup+steps, from metrics.jsonl."""
    from sqlsft.runs.metrics import MetricsEvent, first_event, read_metrics, step_rows

    metrics = read_metrics(run_dir)
    logged = {m.step: m for m in step_rows(metrics)}
    start = first_event(metrics, MetricsEvent.START)
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
    data = first_event(metrics, MetricsEvent.DATA) or {}  # the worker's resolved plan
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
        "tokens_per_micro_batch": data.get("tokens_per_micro_batch"),
        "attn_implementation": data.get("attn_implementation"),
    }


def run_figures(run_dir: Path, config, warmup: int, steps: int, hardware, gpus: int, device: str) -> dict:
    """Every figure of one benchmark run: speed, memory, the projected epoch and (on known GPUs) MFU."""
    figures = measure(run_dir, warmup, steps)
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
        "tokens_per_micro_batch": figures["tokens_per_micro_batch"],
        "attn_implementation": figures["attn_implementation"],
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
    measured = [r for r in results if r["status"] == BenchStatus.OK]
    for row in measured:
        reference = next((r for r in measured if r["processes"] == row["processes"]), measured[0])
        for key, ratio in (("tokens_per_s", "tokens_per_s_ratio"), ("peak_memory_gib", "peak_memory_ratio")):
            a, b = row.get(key), reference.get(key)
            row[ratio] = round(a / b, 3) if a and b else None
