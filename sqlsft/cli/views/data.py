"""What `sqlsft prepare` shows: its steps while it works, then a table of the prepared splits."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.table import Table

from sqlsft.cli.views.output import print_full
from sqlsft.common.formatting import percent
from sqlsft.data.cache import Prepared


@contextmanager
def prepare_steps(console: Console) -> Iterator[Any]:
    """A step reporter for `prepare`: one spinner line on a terminal, one plain line per step otherwise."""
    if not console.is_terminal:
        yield lambda text: console.print(f"  {text}", highlight=False, markup=False)
        return
    with console.status("") as status:
        yield lambda text: status.update(text)


def summary_table(prepared: Prepared, seconds: float) -> Table:
    manifest = prepared.manifest
    table = Table(
        title=f"Prepared {manifest['options']['dataset']}" + (" (cache hit)" if prepared.cache_hit else "")
    )
    for column in ("split", "rows", "skipped", "executes", "executable"):
        table.add_column(column, justify="right" if column != "split" else "left")
    for split, info in manifest["validation"].items():
        table.add_row(
            split,
            f"{info['rows']:,}",
            f"{info['skipped']:,}",
            f"{info['executes']:,}",
            percent(info["executable_share"]),
        )
    tokens = manifest.get("tokens")
    if tokens:
        table.caption = (
            f"tokens (prompt+completion, {tokens['tokenizer']}): p50 {tokens['p50']}, p95 {tokens['p95']}, "
            f"max {tokens['max']}; {tokens['over_max_length']:,} rows over --max-length {tokens['max_length']}"
        )
    else:
        table.caption = "token statistics skipped (no tokenizer)"
    table.caption += f"\ncache: {prepared.folder}\ntime: {seconds:.1f} s"
    return table


def skipped_lines(prepared: Prepared) -> list[str]:
    """One line per split that lost rows: how many, why, and the first ids."""
    lines = []
    for split, info in prepared.manifest["validation"].items():
        if not info["skipped"]:
            continue
        reasons = []
        if info["skipped_missing"]:
            reasons.append(f"missing or empty {', '.join(info['skipped_missing'])}")
        if info.get("skipped_unformattable"):
            reasons.append(f"{info['skipped_unformattable']:,} with SQL too large for sqlparse to format")
        more = ", ..." if info["skipped"] > len(info["skipped_ids"]) else ""
        ids = ", ".join(str(i) for i in info["skipped_ids"])
        lines.append(f"{split}: skipped {info['skipped']:,} rows ({'; '.join(reasons)}) (ids {ids}{more})")
    return lines


def print_prepared(prepared: Prepared, seconds: float, console: Console) -> None:
    print_full(console, summary_table(prepared, seconds))
    for line in skipped_lines(prepared):
        console.print(line, style="yellow", highlight=False, markup=False)
