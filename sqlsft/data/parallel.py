"""Per-row work spread over worker processes, in chunks, in order, with progress as chunks finish.

Measured against `datasets.Dataset.map(num_proc=, batched=)` doing the same work (prepare, 12,000 builtin
rows, cold, two processes, twice each): the same CPU time (74-82 s), and 41-44 s of wall time against
map's 44-49 s. This pool hands out small chunks as workers free up; map gives each worker one fixed shard
(and it reports no progress until a shard ends)."""

import multiprocessing
import os
from collections.abc import Callable, Sequence
from typing import Any


def map_chunks(
    work: Callable[[Sequence], list],
    items: Sequence,
    *,
    num_proc: int,
    chunk_size: int,
    initializer: Callable[..., None],
    initargs: tuple = (),
    advance: Callable[[int], None] | None = None,
) -> list[Any]:
    """`work` over `items` chunk by chunk (`initializer(*initargs)` first, in each process), results in order.
    One process when `num_proc` is 1 or there is only one chunk."""
    chunks = [items[start : start + chunk_size] for start in range(0, len(items), chunk_size)]
    results: list[Any] = []
    if num_proc <= 1 or len(chunks) <= 1:
        initializer(*initargs)
        outputs = map(work, chunks)
        for chunk, output in zip(chunks, outputs, strict=True):
            results.extend(output)
            if advance:
                advance(len(chunk))
        return results
    context = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn")
    with context.Pool(min(num_proc, len(chunks)), initializer=initializer, initargs=initargs) as pool:
        for chunk, output in zip(chunks, pool.imap(work, chunks), strict=True):
            results.extend(output)
            if advance:
                advance(len(chunk))
    return results
