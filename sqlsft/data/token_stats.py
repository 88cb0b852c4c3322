"""Token statistics of prepared rows with the model's tokenizer and chat template: how long the rows are, and
how many exceed --max-length (training would cut them)."""

from typing import Any

from rich.console import Console

from sqlsft.common.formatting import percentile
from sqlsft.models.chat_template import ensure_chat_template

PARALLEL_MIN_ROWS = 2000  # below this, worker processes cost more than they save


def load_stats_tokenizer(model: str | None, console: Console):
    """The model's tokenizer with a chat template, or None (with the reason said)."""
    if not model:
        return None
    try:
        from transformers import AutoTokenizer

        if model == "embedded":
            from sqlsft.models.resolve import embedded_model_dir

            tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir(console=console))
        else:
            tokenizer = AutoTokenizer.from_pretrained(model)
        ensure_chat_template(tokenizer)
        return tokenizer
    except Exception as exc:
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        console.print(
            f"[yellow]Token statistics skipped: could not load the tokenizer of {model} ({reason}).[/]"
        )
        return None


def _count_tokens(batch: dict[str, list], tokenizer) -> dict[str, list[int]]:
    return {
        "num_tokens": [
            len(tokenizer.apply_chat_template(prompt + completion, tokenize=True, return_dict=False))
            for prompt, completion in zip(batch["prompt"], batch["completion"], strict=True)
        ]
    }


def add_token_counts(splits: dict[str, Any], tokenizer, max_length: int, num_proc: int):
    """(the splits with a `num_tokens` column, statistics over all their rows)."""
    total = sum(len(data) for data in splits.values())
    parallel = num_proc if num_proc > 1 and total >= PARALLEL_MIN_ROWS else None
    counted = {
        name: data.map(
            _count_tokens,
            batched=True,
            fn_kwargs={"tokenizer": tokenizer},
            num_proc=parallel if parallel and len(data) >= parallel else None,
            load_from_cache_file=False,
            keep_in_memory=True,
            new_fingerprint=f"num-tokens-{name}",  # hashing a tokenizer is slow, and nothing is cached
        )
        for name, data in splits.items()
    }
    lengths = [n for data in counted.values() for n in data["num_tokens"]]
    stats = {
        "tokenizer": getattr(tokenizer, "name_or_path", ""),
        "p50": round(percentile(lengths, 0.5) or 0),
        "p95": round(percentile(lengths, 0.95) or 0),
        "max": max(lengths, default=0),
        "max_length": max_length,
        "over_max_length": sum(1 for n in lengths if n > max_length),
    }
    return counted, stats
