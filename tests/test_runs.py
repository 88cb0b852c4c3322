"""The run registry: listing, `latest`, `RUN:best`, status files, eval accuracy, checkpoints, `sqlsft runs`."""

import json
import os
import shutil
import time

import pytest

from sqlsft.common.errors import SqlsftError
from sqlsft.common.files import read_json, write_json
from sqlsft.eval.report_folder import latest_execution_accuracy
from sqlsft.runs import registry as runs
from sqlsft.runs.checkpoints import CHECKPOINT_FILES, missing_checkpoint_files
from sqlsft.runs.metrics import Evaluation, MetricsEvent, append_event, metrics_file
from sqlsft.runs.status import RunState, status_file
from tests.cli_runner import invoke, one_error_line, run_process
from tests.test_evaluate import scripted_model, sql_dataset  # noqa: F401 - fixtures: a model that answers SQL


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
    write_json(folder / "eval" / "test-3" / "report.json", {"model": "r:best", "execution_accuracy": 0.75})
    assert latest_execution_accuracy(run.path) == 0.25  # a checkpoint's score is not the run's


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


# ---------------------------------------------------------------- RUN:best (execution accuracy logged in training)


def log_evaluations(folder, *scores):
    """EVAL lines as the training worker writes them: (step, execution accuracy), in the order given."""
    for step, accuracy in scores:
        append_event(folder, MetricsEvent.EVAL, time.time(), step=step, epoch=0.5,
                     eval_execution_accuracy=accuracy, eval_valid_sql=0.875, eval_rows=8)  # fmt: skip


def best_run(root, name="R", steps=(2, 4, 6, 8), model_from=None):
    """A completed run evaluated at steps 2-8, best at 4 (tied with 6): the interrupted timeline scored step 8
    at 0.625, the resumed one scored it again at 0.375. Checkpoints are copies of `model_from` (else empty)."""
    folder = make_run(root, name, "completed", 1.0, steps=8, max_steps=8)
    log_evaluations(folder, (2, 0.25), (4, 0.5), (6, 0.5), (8, 0.625), (8, 0.375))
    for step in steps:
        checkpoint = folder / "checkpoints" / f"checkpoint-{step}"
        if model_from is not None:
            shutil.copytree(model_from, checkpoint)
        else:
            checkpoint.mkdir(parents=True)
    (folder / "model").mkdir()
    append_event(folder, MetricsEvent.SAVED, time.time(), step=8, path=str(folder / "model"))
    return folder


def test_run_best_resolves_to_the_recorded_checkpoint(tmp_path):
    folder = best_run(tmp_path)
    make_run(tmp_path, "failed-later", "failed", 2.0)
    run = runs.resolve_run("R", tmp_path)
    assert run.best_evaluation() == Evaluation(step=4, execution_accuracy=0.5, valid_sql=0.875, rows=8)
    assert run.final_model_dir() == folder / "model" and run.label == "R"

    checkpoint_4 = folder / "checkpoints" / "checkpoint-4"
    for spec in ("R:best", "latest:best", f"{folder}:best"):
        best = runs.resolve_run(spec, tmp_path)
        assert (best.name, best.label, best.final_model_dir()) == ("R", "R:best", checkpoint_4), spec
    explicit = runs.resolve_run("R:checkpoint-6", tmp_path)
    assert explicit.final_model_dir() == folder / "checkpoints" / "checkpoint-6"
    assert explicit.label == "R:checkpoint-6"

    # only the two suffixes split: hub ids, .gguf files and other names pass whole
    assert runs.split_selection("R:best") == ("R", "best")
    assert runs.split_selection("runs/R:checkpoint-40") == ("runs/R", "checkpoint-40")
    for spec in ("google/gemma-3-270m-it", "embedded", "model.gguf", "R:latest", "R:checkpoint-x", ":best"):
        assert runs.split_selection(spec) == (spec, None)


def test_run_best_without_its_checkpoint_or_evaluations_is_one_clear_error(tmp_path):
    folder = best_run(tmp_path)
    # save_total_limit removed the best checkpoint: say what is left
    shutil.rmtree(folder / "checkpoints" / "checkpoint-4")
    with pytest.raises(SqlsftError) as info:
        runs.resolve_run("R:best", tmp_path).final_model_dir()
    assert str(info.value) == (
        "Run R's best step 4 has no checkpoint left; its checkpoints: 2, 6, 8. Use R or R:checkpoint-8."
    )
    with pytest.raises(SqlsftError, match=r"^Run R has no checkpoint-5; its checkpoints: 2, 6, 8\."):
        runs.resolve_run("R:checkpoint-5", tmp_path).final_model_dir()

    # the best is the final step and its checkpoint is gone (or was never written): model/ holds it
    log_evaluations(folder, (8, 0.75))
    shutil.rmtree(folder / "checkpoints" / "checkpoint-8")
    assert runs.resolve_run("R:best", tmp_path).final_model_dir() == folder / "model"

    # step 0 (--eval-at-start) is the untrained model: never the best checkpoint, as in the Trainer
    zero = make_run(tmp_path, "Z", "completed", 2.0, steps=4)
    (zero / "checkpoints" / "checkpoint-2").mkdir(parents=True)
    log_evaluations(zero, (0, 0.25))
    with pytest.raises(SqlsftError, match=r"^Run Z has no execution-accuracy evaluations after step 0 "):
        runs.resolve_run("Z:best", tmp_path).final_model_dir()
    log_evaluations(zero, (2, 0.125))
    assert runs.resolve_run("Z:best", tmp_path).final_model_dir() == zero / "checkpoints" / "checkpoint-2"

    # a LoRA run's checkpoints hold only the adapter: not a model folder to load
    lora = make_run(tmp_path, "L", "completed", 3.0, steps=2)
    log_evaluations(lora, (2, 0.5))
    (lora / "checkpoints" / "checkpoint-2").mkdir(parents=True)
    (lora / "checkpoints" / "checkpoint-2" / "adapter_config.json").write_text("{}")
    with pytest.raises(SqlsftError, match="checkpoint-2 holds only its LoRA adapter"):
        runs.resolve_run("L:best", tmp_path).final_model_dir()

    make_run(tmp_path, "N", "completed", 4.0, steps=4)
    with pytest.raises(SqlsftError) as info:
        runs.resolve_run("N:best", tmp_path).final_model_dir()
    assert str(info.value) == (
        "Run N has no execution-accuracy evaluations; train with --eval-rows N. Use N for its final model."
    )


def test_commands_take_run_best_and_runs_shows_it(tiny_model_dir, tmp_path, monkeypatch):
    from sqlsft.models.resolve import resolve_model_folder

    monkeypatch.setenv("SQLSFT_RUNS_DIR", str(tmp_path))
    folder = best_run(tmp_path, steps=(4, 6), model_from=tiny_model_dir)
    checkpoint_4 = folder / "checkpoints" / "checkpoint-4"
    assert resolve_model_folder("R:best") == (checkpoint_4, "R:best")
    assert resolve_model_folder("latest:best") == (checkpoint_4, "R:best")

    served = invoke("serve", "R:best", "--engine", "transformers", "--dry-run")
    assert served.exit_code == 0, served.stderr
    assert f"R:best -> {checkpoint_4}" in served.stdout
    exported = invoke("export", "R:best", "--dry-run")  # named by its step: a later best is another file
    assert exported.exit_code == 0, exported.stderr
    assert f"{folder}/export/checkpoint-4/gguf/R-checkpoint-4-q8_0.gguf" in exported.stdout

    table = invoke("runs")
    assert "best EX @ step" in table.stdout and "50.0% @ 4" in table.stdout
    (listed,) = json.loads(invoke("runs", "--json").stdout)
    assert listed["best"] == {
        "step": 4, "execution_accuracy": 0.5, "valid_sql": 0.875, "rows": 8, "model_dir": str(checkpoint_4),
    }  # fmt: skip

    make_run(tmp_path, "N", "completed", 2.0)
    assert json.loads(invoke("runs", "--json").stdout)[0]["best"] is None
    assert "no execution-accuracy evaluations" in one_error_line(invoke("eval", "N:best", "--limit", "2"))
    assert "no execution-accuracy evaluations" in one_error_line(invoke("serve", "latest:best", "--dry-run"))
    assert "resumes from its newest checkpoint" in one_error_line(invoke("train", "--resume", "R:best"))


@pytest.mark.slow
def test_eval_of_run_best_asks_the_best_checkpoint(sql_dataset, scripted_model, tiny_model_dir):  # noqa: F811
    """The best checkpoint answers the SQL that scores 2 of 3 (the scripted model); the run's final model is a
    random tiny model that scores nothing: the eval's figure says which folder was served."""
    from sqlsft.common.paths import runs_dir
    from sqlsft.eval.report_folder import PLAN_FILE, REPORT_FILE

    folder = best_run(runs_dir(), name="20260101-000000-best", steps=())
    shutil.copytree(scripted_model, folder / "checkpoints" / "checkpoint-4")
    (folder / "model").rmdir()
    shutil.copytree(tiny_model_dir, folder / "model")

    train, test = sql_dataset
    result = run_process(
        "eval", f"{folder.name}:best", "--dataset", train, "--test-file", test, "--engine", "transformers",
        "--max-tokens", "8", "-j", "2",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    (report_folder,) = (folder / "eval").iterdir()
    report = json.loads((report_folder / REPORT_FILE).read_text())
    assert report["execution_accuracy"] == round(2 / 3, 4) and report["model"] == f"{folder.name}:best"
    plan = json.loads((report_folder / PLAN_FILE).read_text())  # reports are cached by the folder served
    assert plan["model_identity"] == str(folder / "checkpoints" / "checkpoint-4")
    assert (
        latest_execution_accuracy(folder) is None
    )  # `sqlsft runs` accuracy: the final model's, not evaluated
