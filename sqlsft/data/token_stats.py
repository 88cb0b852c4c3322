"""Token statistics of prepared rows with the model's tokenizer and chat template: how long the rows are, and
how many exceed --max-length (training would cut them)."""

import tempfile
from collections.abc import Callable
from typing import Any

from rich.console import Console

from sqlsft.common.formatting import percentile
from sqlsft.data.parallel import map_chunks
from sqlsft.models.chat_template import ensure_chat_template

PARALLEL_MIN_ROWS = 2000  # below this, worker processes cost more than they save
CHUNK_ROWS = 1000

_worker_tokenizer = None


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


def _init_token_worker(tokenizer_folder: str) -> None:
    global _worker_tokenizer
    from transformers import AutoTokenizer

    _worker_tokenizer = AutoTokenizer.from_pretrained(tokenizer_folder)


def _count_tokens(conversations: list[list[dict]]) -> list[int]:
    return [
        len(_worker_tokenizer.apply_chat_template(c, tokenize=True, return_dict=False)) for c in conversations
    ]


def token_statistics(
    tokenizer, rows: list[dict], max_length: int, num_proc: int, advance: Callable[[int], None] | None = None
) -> tuple[dict[str, Any], list[int]]:
    """(statistics over the rows, each row's length in tokens: prompt and completion in the chat template)."""
    conversations = [r["prompt"] + r["completion"] for r in rows]
    with tempfile.TemporaryDirectory() as folder:
        tokenizer.save_pretrained(folder)  # each worker loads it from here
        lengths = map_chunks(
            _count_tokens,
            conversations,
            num_proc=num_proc if len(conversations) >= PARALLEL_MIN_ROWS else 1,
            chunk_size=CHUNK_ROWS,
            initializer=_init_token_worker,
            initargs=(folder,),
            advance=advance,
        )
    stats = {
        "tokenizer": getattr(tokenizer, "name_or_path", ""),
        "p50": round(percentile(lengths, 0.5) or 0),
        "p95": round(percentile(lengths, 0.95) or 0),
        "max": max(lengths, default=0),
        "max_length": max_length,
        "over_max_length": sum(1 for n in lengths if n > max_length),
    }
    return stats, lengths
