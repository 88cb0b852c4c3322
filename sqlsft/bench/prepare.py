"""`sqlsft bench prepare`: rows/s of the prepare stage on builtin rows, cold (cache miss) and warm (hit)."""

import json
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from sqlsft.common.hardware import detect_hardware
from sqlsft.common.paths import runs_dir
from sqlsft.data.prepare import PrepareOptions, prepare


def bench_prepare(num_rows: int, num_proc: int | None, console: Console, model: str | None = None) -> dict:
    results = {}
    with tempfile.TemporaryDirectory(prefix="sqlsft-bench-prepare-") as scratch:
        options = PrepareOptions(
            dataset="builtin", num_rows=num_rows, model=model, cache_dir=scratch, num_proc=num_proc
        )
        for label in ("cold", "warm"):
            started = time.perf_counter()
            prepared = prepare(options, console=console)
            seconds = time.perf_counter() - started
            rows = sum(prepared.manifest["rows"].values())
            results[label] = {
                "seconds": round(seconds, 3),
                "rows": rows,
                "rows_per_s": round(rows / seconds, 1),
            }
    hardware = detect_hardware()
    report = {
        "num_rows": num_rows,
        "num_proc": num_proc or hardware.cpu_cores,
        "hardware": hardware.describe(),
        **results,
    }
    out = runs_dir() / "bench" / time.strftime("%Y%m%d-%H%M%S-prepare")
    out.mkdir(parents=True, exist_ok=True)
    (out / "prepare.json").write_text(json.dumps(report, indent=2))

    table = Table(title=f"prepare: {num_rows:,} builtin rows on {hardware.describe()}")
    for column in ("run", "wall time (s)", "rows", "rows/s"):
        table.add_column(column, justify="right" if column != "run" else "left")
    for label in ("cold", "warm"):
        r = results[label]
        table.add_row(label, f"{r['seconds']:.2f}", f"{r['rows']:,}", f"{r['rows_per_s']:,.0f}")
    table.caption = f"saved {Path(out) / 'prepare.json'}"
    console.print(table)
    return report
