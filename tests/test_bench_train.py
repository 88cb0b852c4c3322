"""`sqlsft bench train`: figures from a run's metrics, skip reasons, and a real CPU benchmark of two presets."""

import csv
import json
from pathlib import Path

import pytest

from sqlsft.bench.train import skip_reason
from sqlsft.bench.train_figures import add_ratios, measure
from sqlsft.common.errors import SqlsftError
from sqlsft.common.hardware import Gpu, Hardware
from sqlsft.train.config import TrainConfig
from tests.cli_runner import invoke, one_error_line

NO_GPU = Hardware(gpus=[], cpu_cores=2)
ONE_GPU = Hardware(gpus=[Gpu(0, "NVIDIA H200", 139.8, True)], cpu_cores=16)


def write_metrics(run_dir: Path, rows: list[dict]) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "metrics.jsonl", "w") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    return run_dir


def test_measure_leaves_out_the_warm_up_steps(tmp_path):
    run_dir = write_metrics(
        tmp_path / "run",
        [
            {"event": "start", "step": 0, "time": 100.0},
            {
                "step": 1,
                "time": 110.0,
                "num_tokens": 1000,
                "loss": 3.0,
                "peak_memory_gib": 2.0,
                "memory": "gpu",
            },
            {
                "step": 2,
                "time": 112.0,
                "num_tokens": 2000,
                "loss": 2.5,
                "peak_memory_gib": 2.5,
                "memory": "gpu",
            },
            {
                "step": 3,
                "time": 114.0,
                "num_tokens": 3000,
                "loss": 2.0,
                "peak_memory_gib": 2.5,
                "memory": "gpu",
            },
            {"event": "summary", "step": 3, "time": 114.1},
        ],
    )
    figures = measure(run_dir, warmup=1, steps=2)
    assert figures["step_time_s"] == 2.0 and figures["tokens"] == 2000 and figures["tokens_per_s"] == 500.0
    assert figures["peak_memory_gib"] == 2.5 and figures["first_loss"] == 3.0 and figures["last_loss"] == 2.0
    with_first = measure(run_dir, warmup=0, steps=3)  # from the start event: the slow first step counts
    assert with_first["step_time_s"] == pytest.approx(14 / 3) and with_first["tokens"] == 3000
    with pytest.raises(SqlsftError, match="step 5 was never logged"):
        measure(run_dir, warmup=2, steps=3)


def test_ratios_are_to_the_first_preset_with_the_same_gpu_count():
    results = [
        {"preset": "baseline", "processes": 1, "status": "ok", "tokens_per_s": 100.0, "peak_memory_gib": 4.0},
        {"preset": "liger", "processes": 1, "status": "skipped"},
        {"preset": "fast", "processes": 1, "status": "ok", "tokens_per_s": 250.0, "peak_memory_gib": 2.0},
        {"preset": "baseline", "processes": 4, "status": "ok", "tokens_per_s": 400.0, "peak_memory_gib": 4.0},
        {"preset": "fast", "processes": 4, "status": "ok", "tokens_per_s": 1000.0, "peak_memory_gib": 2.0},
    ]
    add_ratios(results)
    assert [r.get("tokens_per_s_ratio") for r in results] == [1.0, None, 2.5, 1.0, 2.5]
    assert results[2]["peak_memory_ratio"] == 0.5


def test_skip_reasons_for_liger_and_missing_gpus():
    liger = TrainConfig(preset="liger", training={"use_liger_kernel": True})
    plain = TrainConfig(preset="baseline", training={})
    assert "needs a GPU" in skip_reason(liger, 1, NO_GPU)
    assert "needs a GPU" in skip_reason(
        TrainConfig("x", training={"model_init_kwargs": {"use_kernels": True}}), 1, NO_GPU
    )
    assert skip_reason(plain, 1, NO_GPU) is None  # one CPU process
    assert "has none" in skip_reason(plain, 4, NO_GPU)
    assert skip_reason(plain, 1, ONE_GPU) is None
    assert "this machine has 1" in skip_reason(plain, 4, ONE_GPU)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gpus", "0"], "counts start at 1"),
        (["--gpus", "one"], "GPU counts such as 1,4"),
        (["--presets", "baseline,nope"], "Unknown preset 'nope'"),
        (["--random-init"], "--random-init needs --model"),
        (["--steps", "0"], "--steps must be at least 1"),
    ],
)
def test_bad_input_is_one_line(args, message):
    assert message in one_error_line(invoke("bench", "train", *args))


@pytest.mark.slow
def test_bench_train_on_the_cpu_baseline_and_fast(tiny_model_dir):
    from sqlsft.runs.registry import list_runs

    result = invoke(
        "bench", "train", "--presets", "baseline,liger,fast", "--gpus", "1", "--steps", "2",
        "--warmup-steps", "1", "--model", str(tiny_model_dir),
        "--random-init",  # built from the tiny model's config: no weights read
        "--num-rows", "200", "--set", "max_length=512", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)  # --json: the report alone on stdout, progress on stderr

    by_preset = {r["preset"]: r for r in report["results"]}
    assert by_preset["liger"]["status"] == "skipped" and "needs a GPU" in by_preset["liger"]["reason"]
    for preset in ("baseline", "fast"):
        row = by_preset[preset]
        assert row["status"] == "ok", row
        assert row["device"] == "cpu" and row["memory_kind"] == "cpu-rss"
        assert row["step_time_s"] > 0 and row["tokens_per_s"] > 0 and row["samples_per_s"] > 0
        assert row["peak_memory_gib"] > 0 and row["projected_epoch_s"] > 0 and row["timed_tokens"] > 0
        assert not (Path(row["run_dir"]) / "model").exists()  # weights are not kept
    assert by_preset["baseline"]["tokens_per_s_ratio"] == 1.0
    assert by_preset["fast"]["per_device_batch"] != by_preset["baseline"]["per_device_batch"]
    assert "random-init" in report["model_path"]
    assert "liger-kernel needs a GPU" in result.stderr

    folder = Path(report["folder"])
    assert folder.parent.name == "bench" and folder.name.endswith("-train")
    saved = json.loads((folder / "bench.json").read_text())
    assert [r["preset"] for r in saved["results"]] == ["baseline", "liger", "fast"]
    assert saved["versions"]["trl"] and saved["load_average"]["start"]
    with open(folder / "bench.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["status"] for r in rows] == ["ok", "skipped", "ok"] and float(rows[2]["tokens_per_s"]) > 0
    png = (folder / "bench.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    # benchmark runs stay out of the run registry: `latest` is never a benchmark
    assert all("bench" not in str(run.path) for run in list_runs())

    from rich.console import Console

    from sqlsft.cli.views.bench import train_renderables  # the table, piped: whole values
    from sqlsft.cli.views.output import print_full

    console = Console(record=True, width=60)
    print_full(console, train_renderables(report))
    text = console.export_text()
    assert "liger-kernel needs a GPU (Triton kernels); this machine has none" in text and "tokens/s" in text
