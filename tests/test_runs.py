"""The run registry: listing, `latest`, status files, eval accuracy, checkpoints, the `sqlsft runs` table."""

import os

import pytest

from sqlsft.common.errors import SqlsftError
from sqlsft.runs import registry as runs
from tests.in_process_cli import cli


def make_run(root, name, status, started, **extra):
    folder = root / name
    folder.mkdir(parents=True)
    runs.write_json(
        folder / runs.STATUS_FILE,
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
    assert run.latest_accuracy() is None
    old = runs.write_json(folder / "eval" / "test-1" / "report.json", {"execution_accuracy": 0.25})
    new = runs.write_json(folder / "eval" / "test-2" / "report.json", {"execution_accuracy": 0.5})
    os.utime(old, (1, 1))
    assert run.latest_accuracy() == 0.5
    os.utime(new, (0, 0))
    assert run.latest_accuracy() == 0.25


def test_new_run_dirs_never_collide_and_status_updates_merge(tmp_path):
    first = runs.new_run_dir("demo", tmp_path)
    second = runs.new_run_dir("demo", tmp_path)
    assert first != second and first.name.endswith("-demo") and len(first.name.split("-")[0]) == 8
    runs.update_status(first, status="running", steps=0)
    runs.update_status(first, status="completed", steps=5)
    assert runs.read_json(first / runs.STATUS_FILE) == {"status": "completed", "steps": 5}
    (first / runs.METRICS_FILE).write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "lo')
    assert runs.read_metrics(first) == [{"step": 1, "loss": 2.0}]


def test_checkpoints_and_their_completeness(tmp_path):
    run = runs.load_run(make_run(tmp_path, "r", "interrupted", 1.0))
    for step in (10, 2):
        folder = run.checkpoints_dir / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        for name in (*runs.CHECKPOINT_FILES, "model.safetensors"):
            (folder / name).write_text("x")
    assert [p.name for p in runs.checkpoints(run)] == ["checkpoint-2", "checkpoint-10"]
    assert runs.missing_checkpoint_files(run.checkpoints_dir / "checkpoint-10") == []
    (run.checkpoints_dir / "checkpoint-10" / "optimizer.pt").unlink()
    (run.checkpoints_dir / "checkpoint-10" / "model.safetensors").unlink()
    assert runs.missing_checkpoint_files(run.checkpoints_dir / "checkpoint-10") == [
        "optimizer.pt",
        "model weights",
    ]


def test_runs_command_shows_the_table_with_accuracy(tmp_path, monkeypatch, capsys):
    from sqlsft.cli.app import console

    monkeypatch.setattr(console, "width", 200)
    monkeypatch.setenv("SQLSFT_RUNS_DIR", str(tmp_path))
    assert cli("runs") == 0
    assert "No runs in" in capsys.readouterr().out
    folder = make_run(tmp_path, "20260101-000000-demo", "completed", 1.0, steps=20, max_steps=20,
                      final_loss=0.3125, duration_s=125)  # fmt: skip
    make_run(tmp_path, "20260102-000000-fast", "failed", 2.0)
    runs.write_json(folder / "eval" / "test-1" / "report.json", {"execution_accuracy": 0.625})
    assert cli("runs") == 0
    out = capsys.readouterr().out
    assert "20260101-000000-demo" in out and "20260102-000000-fast" in out
    assert "0.3125" in out and "62.5%" in out and "20/20" in out and "2m05s" in out
    assert "completed" in out and "failed" in out
