"""How `sqlsft bench` looks: the prepare, train and serve tables, and the train plot (bench.png)."""

from pathlib import Path
from typing import Any

from rich.console import Group
from rich.markup import escape
from rich.table import Table

from sqlsft.bench import serve, train
from sqlsft.cli.views.output import titled
from sqlsft.common.formatting import duration


def prepare_table(report: dict[str, Any]) -> Table:
    table = Table(title=f"prepare: {report['num_rows']:,} builtin rows on {report['hardware']}")
    for column in ("run", "wall time (s)", "rows", "rows/s"):
        table.add_column(column, justify="right" if column != "run" else "left")
    for label in ("cold", "warm"):
        r = report[label]
        table.add_row(label, f"{r['seconds']:.2f}", f"{r['rows']:,}", f"{r['rows_per_s']:,.0f}")
    table.caption = escape(f"saved in {report['folder']}")
    return table


def _figure(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def train_renderables(report: dict[str, Any]) -> Group:
    """One row per measured preset x GPU count; below it, what was not measured and why (lines of their own,
    so a pipe gets them whole)."""
    table = Table(title=escape(f"bench train on {report['hardware']}"))
    columns = ("preset", "device", "batch", "step s", "tokens/s", "ratio", "samples/s", "peak GiB", "ratio",
               "epoch", "MFU")  # fmt: skip
    for name in columns:
        table.add_column(name, justify="left" if name in ("preset", "device") else "right")
    not_measured = []
    for r in report["results"]:
        device = "CPU" if r["device"] == "cpu" else f"{r['gpus']} GPU"
        if r["status"] != "ok":
            asked = f"{r['processes']} GPUs" if r["processes"] > 1 else device
            not_measured.append(f"{r['status']}: {r['preset']} x {asked} ({r['reason']})")
            continue
        table.add_row(
            escape(r["preset"]),
            device,
            str(r.get("per_device_batch") or "-"),
            _figure(r["step_time_s"], ".3f"),
            _figure(r["tokens_per_s"] or None, ",.0f"),
            _figure(r.get("tokens_per_s_ratio"), ".2f", "x"),
            _figure(r["samples_per_s"] or None, ".1f"),
            _figure(r["peak_memory_gib"], ".2f"),
            _figure(r.get("peak_memory_ratio"), ".2f", "x"),
            duration(r["projected_epoch_s"]),
            _figure(100 * r["mfu"] if r.get("mfu") else None, ".1f", "%"),
        )
    options = report["options"]
    rss = any(r.get("memory_kind") == "cpu-rss" for r in report["results"])
    notes = [
        f"{options['warmup_steps']} warm-up steps excluded, {options['steps']} timed; "
        "ratio: to the first preset; epoch: projected from tokens/s"
        + ("; peak memory: RSS of the CPU process" if rss else ""),
        *not_measured,
        f"saved {report['folder']}/{train.REPORT_FILE}, {train.CSV_FILE}, {train.PLOT_FILE}",
    ]
    return Group(table, *(f"[dim]{escape(note)}[/]" for note in notes))


def plot_train(report: dict[str, Any], path: Path) -> None:
    """Bar charts: tokens/s and peak memory per measured combination; the ones not run named below."""
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


def serve_renderables(report: dict[str, Any]) -> Group:
    """Requests/s, output tokens/s and latency per engine and concurrency; then the vLLM / transformers and
    llama.cpp / vLLM ratios."""
    table = Table()
    columns = (
        "engine",
        "concurrency",
        "requests/s",
        "output tok/s",
        "p50 s",
        "p95 s",
        "errors",
        "start-up s",
    )
    for column in columns:
        table.add_column(column, justify="right" if column != "engine" else "left")
    for r in report["results"]:
        table.add_row(
            r["engine"],
            str(r["concurrency"]),
            f"{r['requests_per_s']:.2f}",
            f"{r['output_tokens_per_s']:.1f}",
            _figure(r["p50_latency_s"], ".2f"),
            _figure(r["p95_latency_s"], ".2f"),
            str(r["errors"]),
            f"{r['startup_s']:.0f}",
        )
    lines: list[Any] = [titled(f"sqlsft bench serve: {report['model']} ({report['hardware']})", table)]
    for concurrency, ratio in report["vllm_over_transformers_output_tokens_per_s"].items():
        lines.append(f"vLLM / transformers output tokens/s at concurrency {concurrency}: {ratio:.2f}x")
    for label, ratios in report.get("llama_cpp_over_vllm_output_tokens_per_s", {}).items():
        for concurrency, ratio in ratios.items():
            lines.append(escape(f"{label} / vLLM output tokens/s at concurrency {concurrency}: {ratio:.2f}x"))
    lines.append(escape(f"results: {report['folder']}/{serve.REPORT_FILE}"))
    return Group(*lines)


def web_renderables(result) -> list:
    """`sqlsft bench web`: the page in Chromium next to llama.cpp native (a sqlsft.bench.web.WebBenchResult)."""
    table = Table(title=f"web page vs llama.cpp native: {result.gguf}", title_justify="left")
    for column in ("", "ready s", "first token s", "output tokens/s"):
        table.add_column(column, justify="right" if column else "left")
    table.add_row(
        "browser (wllama)",
        f"{result.page_ready_s:.1f}",
        f"{result.browser_ttft_s:.2f}",
        f"{result.browser_tokens_per_s:.2f}",
    )
    table.add_row(
        "native (llama-cpp-python)",
        f"{result.native_load_s:.1f}",
        f"{result.native_ttft_s:.2f}",
        f"{result.native_tokens_per_s:.2f}",
    )
    table.caption = (
        f"browser / native: {result.browser_share_of_native:.2f}; {result.same_answers} of {result.prompts} "
        f"greedy answers identical; {result.threads} threads, {result.max_tokens} tokens"
    )
    return [table]
