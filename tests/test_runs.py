"""The run registry: listing, `latest`, status files, eval accuracy, checkpoints, the `sqlsft runs` table."""

import json
import os

import pytest

from sqlsft.common.errors import SqlsftError
from sqlsft.common.files import read_json, write_json
from sqlsft.eval.report_folder import latest_execution_accuracy
from sqlsft.runs import registry as runs
from sqlsft.runs.checkpoints import CHECKPOINT_FILES, missing_checkpoint_files
from sqlsft.runs.metrics import metrics_file
from sqlsft.runs.status import RunState, status_file
from tests.cli_runner import invoke, one_error_line, run_process


def make_run(root, name, status, started, **extra):
    folder = root / name
    folder.mkdir(parents=True)
    write_json(
        status_file(folder),
        {
            "status": status,
            "preset": "demo",
            "model": "embedded",
            "gpus": 0,
            "started_epoch": started,
            **extra,
        },
    )
    return folder


def test_list_runs_newest_first_and_latest_is_the_newest_completed(tmp_path):
    make_run(tmp_path, "20260101-000000-demo", "completed", 1.0, steps=20, final_loss=0.5)
    make_run(tmp_path, "20260102-000000-fast", "completed", 2.0)
    make_run(tmp_path, "20260103-000000-demo", "failed", 3.0)
    make_run(tmp_path, "20260104-000000-demo", "interrupted", 4.0)
    (tmp_path / "not-a-run").mkdir()
    names = [r.name for r in runs.list_runs(tmp_path)]
    assert names == [
        "20260104-000000-demo",
        "20260103-000000-demo",
        "20260102-000000-fast",
        "20260101-000000-demo",
    ]

    latest = runs.resolve_run("latest", tmp_path)
    assert latest.name == "20260102-000000-fast" and latest.status == "completed"
    assert latest.model_dir == tmp_path / "20260102-000000-fast" / "model"
    first = runs.resolve_run("20260101-000000-demo", tmp_path)
    assert (first.steps, first.final_loss, first.preset, first.model) == (20, 0.5, "demo", "embedded")
    assert runs.resolve_run(str(tmp_path / "20260103-000000-demo")).status == "failed"


def test_latest_without_a_completed_run_says_how_to_train_one(tmp_path):
    make_run(tmp_path, "20260101-000000-demo", "failed", 1.0)
    with pytest.raises(SqlsftError, match=r"No completed run; train one with `sqlsft train --preset demo`"):
        runs.resolve_run("latest", tmp_path)
    with pytest.raises(SqlsftError, match="No run named 'nope'") as info:
        runs.resolve_run("nope", tmp_path)
    assert "20260101-000000-demo" in info.value.hint


def test_a_running_run_whose_process_is_gone_reads_as_interrupted(tmp_path):
    dead_pid = 2**22 + 12345  # above the default pid_max: no such process
    make_run(tmp_path, "gone", "running", 1.0, pid=dead_pid)
    make_run(tmp_path, "alive", "running", 2.0, pid=os.getpid())
    status = {r.name: r.status for r in runs.list_runs(tmp_path)}
    assert status == {"gone": "interrupted", "alive": "running"}


def test_latest_eval_accuracy(tmp_path):
    folder = make_run(tmp_path, "r", "completed", 1.0)
    run = runs.load_run(folder)
    assert latest_execution_accuracy(run.path) is None
    old = write_json(folder / "eval" / "test-1" / "report.json", {"execution_accuracy": 0.25})
    new = write_json(folder / "eval" / "test-2" / "report.json", {"execution_accuracy": 0.5})
    os.utime(old, (1, 1))
    assert latest_execution_accuracy(run.path) == 0.5
    os.utime(new, (0, 0))
    assert latest_execution_accuracy(run.path) == 0.25


def test_new_run_dirs_never_collide_and_status_updates_merge(tmp_path):
    first = runs.new_run_dir("demo", tmp_path)
    second = runs.new_run_dir("demo", tmp_path)
    assert first != second and first.name.endswith("-demo") and len(first.name.split("-")[0]) == 8
    runs.update_status(first, status="running", steps=0)
    runs.update_status(first, status="completed", steps=5)
    assert read_json(status_file(first)) == {"status": "completed", "steps": 5}
    with pytest.raises(TypeError, match=r"status\.json has no field colour"):
        runs.update_status(first, colour="blue")  # only the fields RunStatus knows are written
    metrics_file(first).write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "lo')
    assert runs.read_metrics(first) == [{"step": 1, "loss": 2.0}]


def test_checkpoints_and_their_completeness(tmp_path):
    run = runs.load_run(make_run(tmp_path, "r", "interrupted", 1.0))
    for step in (10, 2):
        folder = run.checkpoints_dir / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        for name in (*CHECKPOINT_FILES, "model.safetensors"):
            (folder / name).write_text("x")
    assert [p.name for p in run.checkpoints()] == ["checkpoint-2", "checkpoint-10"]
    assert missing_checkpoint_files(run.checkpoints_dir / "checkpoint-10") == []
    (run.checkpoints_dir / "checkpoint-10" / "optimizer.pt").unlink()
    (run.checkpoints_dir / "checkpoint-10" / "model.safetensors").unlink()
    assert missing_checkpoint_files(run.checkpoints_dir / "checkpoint-10") == [
        "optimizer.pt",
        "model weights",
    ]


def test_runs_command_shows_the_table_with_accuracy(tmp_path, monkeypatch):
    monkeypatch.setenv("SQLSFT_RUNS_DIR", str(tmp_path))
    result = invoke("runs")
    assert result.exit_code == 0 and "No runs in" in result.stdout
    folder = make_run(tmp_path, "20260101-000000-demo", "completed", 1.0, steps=20, max_steps=20,
                      final_loss=0.3125, duration_s=125)  # fmt: skip
    make_run(tmp_path, "20260102-000000-fast", "failed", 2.0)
    write_json(folder / "eval" / "test-1" / "report.json", {"execution_accuracy": 0.625})
    result = invoke("runs")
    assert result.exit_code == 0
    out = result.stdout
    assert "20260101-000000-demo" in out and "20260102-000000-fast" in out
    assert "0.3125" in out and "62.5%" in out and "20/20" in out and "2m05s" in out
    assert "completed" in out and "failed" in out


LONG_MODEL = "some-organisation/a-rather-long-model-name-that-fills-a-column"


def test_piped_runs_prints_whole_values_and_grep_finds_them(tmp_path):
    """A pipe is 80 columns wide: cells used to be cut to `20261…` and `compl…`."""
    for day, status in ((1, "completed"), (2, "failed"), (3, "interrupted")):
        make_run(tmp_path, f"2026010{day}-000000-liger-slow", status, float(day), model=LONG_MODEL,
                 steps=1200, max_steps=1200, final_loss=0.123456, duration_s=3725)  # fmt: skip
    result = run_process("runs", timeout=120, env={"SQLSFT_RUNS_DIR": str(tmp_path), "COLUMNS": "80"})
    assert result.returncode == 0, result.stderr
    assert "…" not in result.stdout
    completed = [
        line for line in result.stdout.splitlines() if "completed" in line
    ]  # `sqlsft runs | grep completed`
    assert len(completed) == 1
    assert "20260101-000000-liger-slow" in completed[0] and LONG_MODEL in completed[0]
    assert "1200/1200" in completed[0] and "0.1235" in completed[0] and "1h02m" in completed[0]
    assert f"runs in {tmp_path}" in result.stdout


def test_runs_json(tmp_path, monkeypatch):
    monkeypatch.setenv("SQLSFT_RUNS_DIR", str(tmp_path))
    assert json.loads(invoke("runs", "--json").stdout) == []
    folder = make_run(tmp_path, "20260101-000000-demo", "completed", 1.0, steps=20, max_steps=20,
                      final_loss=0.3125, duration_s=125)  # fmt: skip
    (folder / "model").mkdir()
    write_json(folder / "eval" / "test-1" / "report.json", {"execution_accuracy": 0.625})
    make_run(tmp_path, "20260102-000000-fast", "failed", 2.0)
    listed = json.loads(invoke("runs", "--json", "--limit", "5").stdout)
    assert [r["name"] for r in listed] == ["20260102-000000-fast", "20260101-000000-demo"]
    demo = listed[1]
    assert demo["status"] == "completed" and demo["final_loss"] == 0.3125 and demo["accuracy"] == 0.625
    assert (
        demo["model_dir"] == str(folder / "model") and demo["path"] == str(folder) and demo["problems"] == []
    )
    assert listed[0]["model_dir"] is None
    assert len(json.loads(invoke("runs", "--json", "-n", "1").stdout)) == 1


def test_runs_limit_below_one_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("SQLSFT_RUNS_DIR", str(tmp_path))
    make_run(tmp_path, "20260101-000000-demo", "completed", 1.0)
    for value in ("-1", "0"):
        assert f"--limit {value}: show at least 1 run" in one_error_line(invoke("runs", "--limit", value))


def test_one_damaged_status_file_does_not_hide_the_other_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("SQLSFT_RUNS_DIR", str(tmp_path))
    make_run(tmp_path, "20260101-000000-demo", "completed", 1.0, final_loss=0.5, steps=4)
    make_run(tmp_path, "20260102-000000-demo", "completed", 2.0, final_loss="0.25", steps="four",
             duration_s=[1], gpus="two", started_at=5)  # fmt: skip
    make_run(tmp_path, "20260103-000000-demo", "nonsense", 3.0)
    (tmp_path / "20260104-000000-demo").mkdir()
    status_file(tmp_path / "20260104-000000-demo").write_text("{torn")
    (tmp_path / "20260105-000000-demo").mkdir()
    status_file(tmp_path / "20260105-000000-demo").write_bytes(b"\xff\xfe binary")

    listed = {run.name: run for run in runs.list_runs(tmp_path)}
    assert len(listed) == 5
    odd = listed["20260102-000000-demo"]
    assert odd.status == RunState.COMPLETED and odd.final_loss is None and odd.steps is None
    assert odd.record.problems == [
        "gpus is 'two'", "started_at is 5", "duration_s is [1]", "steps is 'four'", "final_loss is '0.25'",
    ]  # fmt: skip
    assert listed["20260103-000000-demo"].status == RunState.UNKNOWN
    assert listed["20260104-000000-demo"].status == RunState.UNKNOWN
    assert runs.resolve_run("latest", tmp_path).name == "20260102-000000-demo"  # still a completed run

    result = invoke("runs")
    assert result.exit_code == 0, result.stderr
    for day in range(1, 6):
        assert f"2026010{day}-000000-demo" in result.stdout
    assert "final_loss is '0.25'" in result.stdout  # said, not hidden
    listed = json.loads(invoke("runs", "--json").stdout)
    assert len(listed) == 5 and any("final_loss is '0.25'" in p for r in listed for p in r["problems"])
