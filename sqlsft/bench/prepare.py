"""`sqlsft bench prepare`: rows/s of the prepare stage on builtin rows, cold (cache miss) and warm (hit)."""

import tempfile
import time

from rich.console import Console

from sqlsft.common.files import write_json
from sqlsft.common.hardware import detect_hardware
from sqlsft.common.paths import runs_dir
from sqlsft.data.prepare import PrepareOptions, prepare

REPORT_FILE = "prepare.json"
RUNS = ("cold", "warm")


def bench_prepare(num_rows: int, num_proc: int | None, console: Console, model: str | None = None) -> dict:
    """Prepare `num_rows` builtin rows twice in a scratch cache; the report (also in runs/bench/<time>-prepare/)."""
    results = {}
    with tempfile.TemporaryDirectory(prefix="sqlsft-bench-prepare-") as scratch:
        options = PrepareOptions(
            dataset="builtin", num_rows=num_rows, model=model, cache_dir=scratch, num_proc=num_proc
        )
        for label in RUNS:
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
    out = runs_dir() / "bench" / time.strftime("%Y%m%d-%H%M%S-prepare")
    report = {
        "num_rows": num_rows,
        "num_proc": num_proc or hardware.cpu_cores,
        "hardware": hardware.describe(),
        **results,
        "folder": str(out),
    }
    write_json(out / REPORT_FILE, report)
    return report
