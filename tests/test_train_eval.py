"""Execution accuracy during training (--eval-rows): the Trainer's evaluate answers validation rows and scores
them by execution at each checkpoint save; the best checkpoint is recorded, kept across a resume, and
--load-best makes it model/."""

import json
import signal
from pathlib import Path

import pytest

from sqlsft.common.errors import SqlsftError
from sqlsft.common.paths import runs_dir
from sqlsft.runs import registry as runs
from sqlsft.runs.metrics import MetricsEvent, metrics_file
from sqlsft.runs.run_info import read_run_info
from sqlsft.train.config import resolve_config
from sqlsft.train.eval_settings import trainer_arguments
from tests.cli_runner import invoke, one_error_line
from tests.test_train import finish, leftover_processes, start_cli

SCHEMA = "CREATE TABLE t (a INT, b VARCHAR(10)); INSERT INTO t VALUES (1, 'x'), (2, 'y');"
ANSWER = "SELECT COUNT(*) FROM t"  # what the scripted model answers to every question
# Golds the answer gets right (the same query, or the same result) and one it gets wrong.
RIGHT = ("SELECT COUNT(*) FROM t", "SELECT COUNT(a) FROM t")
GOLDS = (*RIGHT, "SELECT SUM(a) FROM t")
# Short rows of the tiny model, 2 rows a step; each test's run evaluates the first 8 validation rows.
SMALL_RUN = ["--preset", "demo", "--set", "max_length=512", "--set", "per_device_train_batch_size=2",
             "--set", "dataset_num_proc=1", "--set", "save_strategy=steps", "--set", "save_steps=2",
             "--set", "eval_max_new_tokens=24", "--eval-rows", "8"]  # fmt: skip


def _row(i: int, sql: str) -> dict:
    return {"id": i, "sql_prompt": f"How many rows are in t ({i})?", "sql_context": SCHEMA, "sql": sql}


@pytest.fixture(scope="module")
def counting_data(tmp_path_factory) -> list[str]:
    """Train rows whose golds cycle through GOLDS, and a test file of 8 (so validation has 8 rows)."""
    folder = tmp_path_factory.mktemp("eval-train-data")
    train, test = folder / "train.jsonl", folder / "test.jsonl"
    train.write_text("".join(json.dumps(_row(i, GOLDS[i % 3])) + "\n" for i in range(60)))
    test.write_text("".join(json.dumps(_row(100 + i, GOLDS[i % 3])) + "\n" for i in range(8)))
    return ["--dataset", str(train), "--set", f"test_file={test}"]


@pytest.fixture(scope="module")
def scripted_model(tiny_model_dir, tmp_path_factory) -> Path:
    from tests.scripted_model import build_scripted_model

    return build_scripted_model(tiny_model_dir, tmp_path_factory.mktemp("eval-train") / "scripted", ANSWER)


def eval_lines(run_dir: Path) -> list[dict]:
    return [dict(row) for row in runs.read_metrics(run_dir) if row.event == MetricsEvent.EVAL]


def expected_accuracy(run_dir: Path, count: int = 8) -> float:
    """What the scripted answer scores on the run's first `count` validation rows, from the golds alone."""
    import datasets

    rows = datasets.load_from_disk(read_run_info(run_dir).data_path)["validation"].select(range(count))
    return sum(row["sql"] in RIGHT for row in rows) / count


def trainer_state(checkpoint: Path) -> dict:
    return json.loads((checkpoint / "trainer_state.json").read_text())


def weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


def same_weights(a: dict, b: dict) -> bool:
    import torch

    return a.keys() == b.keys() and all(torch.equal(a[name], b[name]) for name in a)


# ---------------------------------------------------------------- settings, before anything is launched


def test_eval_strategy_follows_the_checkpoints_and_bad_combinations_are_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("SQLSFT_RUNS_DIR", str(tmp_path / "runs"))
    steps = resolve_config("demo", overrides=["save_strategy=steps", "save_steps=5"], eval_rows=10)
    assert trainer_arguments(steps.training) == {
        "metric_for_best_model": "execution_accuracy", "greater_is_better": True,
        "eval_strategy": "steps", "eval_steps": 5,
    }  # fmt: skip
    epochs = resolve_config("demo", overrides=["save_strategy=epoch"], eval_rows=10, load_best=True)
    assert trainer_arguments(epochs.training)["eval_strategy"] == "epoch"
    assert epochs.training["load_best_model_at_end"] is True
    assert (
        trainer_arguments(resolve_config("demo", eval_rows=10).training)["eval_strategy"] == "no"
    )  # end only
    for preset in ("demo", "baseline", "fast", "lora"):  # no preset evaluates unless asked (bench included)
        assert trainer_arguments(resolve_config(preset).training) == {}

    with pytest.raises(
        SqlsftError, match="--load-best chooses among checkpoints, and this config saves none"
    ):
        resolve_config("demo", eval_rows=10, load_best=True)
    for flag in ("--load-best", "--eval-at-start"):
        line = one_error_line(invoke("train", "--preset", "demo", flag, "--dry-run"))
        assert f"{flag} (" in line and "Add --eval-rows N" in line
    line = one_error_line(invoke("train", "--preset", "demo", "--eval-rows", "-1", "--dry-run"))
    assert "eval_rows = -1" in line
    line = one_error_line(
        invoke("train", "-p", "demo", "--eval-rows", "5", "--set", "metric_for_best_model=loss")
    )
    assert "measures only execution_accuracy and valid_sql" in line
    assert "drop --eval-rows, --load-best" in one_error_line(
        invoke("train", "--resume", "--eval-rows", "5", "--load-best")
    )
    result = invoke("train", "--preset", "demo", "--eval-rows", "7", "--eval-at-start", "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert "eval_rows: 7" in result.stdout and "eval_on_start: true" in result.stdout
    assert not runs.list_runs()


def test_progress_shows_the_last_evaluation_and_the_summary_the_best(tmp_path):
    import io

    from rich.console import Console

    from sqlsft.cli.views.train import ConsoleTrainView, eval_summary
    from sqlsft.runs.metrics import MetricsFollower, read_metrics
    from sqlsft.train.supervise import summarize

    def evaluation(step: int, accuracy: float) -> dict:
        return {"event": "eval", "step": step, "eval_execution_accuracy": accuracy, "eval_valid_sql": 0.9,
                "eval_rows": 100, "eval_seconds": 12.0}  # fmt: skip

    lines = [
        {"event": "start", "step": 0, "max_steps": 6, "time": 100.0},
        evaluation(0, 0.5),  # the untrained model: no checkpoint, never the best
        *({"step": s, "max_steps": 6, "loss": 1.0 / s, "time": 100.0 + s} for s in (1, 2, 3)),
        evaluation(3, 0.25),
        *({"step": s, "max_steps": 6, "loss": 1.0 / s, "time": 100.0 + s} for s in (4, 5, 6)),
        evaluation(6, 0.25),  # a tie keeps the earlier checkpoint
    ]
    for terminal in (False, True):
        run_dir = tmp_path / f"tty-{terminal}"
        run_dir.mkdir()
        out = io.StringIO()
        view = ConsoleTrainView(Console(file=out, force_terminal=terminal, width=160))
        follower = MetricsFollower(run_dir)
        view.progress_started(0)
        metrics_file(run_dir).write_text("".join(json.dumps(line) + "\n" for line in lines))
        view.progress(follower.new_rows())
        view.progress_stopped()
        text = out.getvalue()
        assert "step 3: execution accuracy 25.0%, valid SQL 90.0% on 100 validation rows in 0:12" in text
        assert "EX 25.0% (valid SQL 90.0%)" in text  # next to the loss
    summary = summarize(read_metrics(run_dir))
    assert (summary.best_eval.step, summary.last_eval.step, summary.start_eval.step) == (3, 6, 0)
    assert eval_summary(summary) == (
        "Execution accuracy on 100 validation rows: best 25.0% at step 3 (valid SQL 90.0%); last 25.0% at "
        "step 6; untrained 50.0%"
    )


# ---------------------------------------------------------------- real runs through accelerate launch


@pytest.mark.slow
def test_execution_accuracy_at_each_save_scored_like_eval(
    scripted_model, counting_data, tmp_path, monkeypatch
):
    """The scripted model answers ANSWER to every question and learns nothing (learning rate 0), so each
    evaluation must find exactly the share of validation rows whose gold ANSWER matches."""
    monkeypatch.setenv("SQLSFT_RUNS_DIR", str(tmp_path / "runs"))
    run_dir = runs_dir() / "scored"
    process = start_cli("train", *SMALL_RUN, *counting_data, "--model", str(scripted_model), "--max-steps", "4",
                        "--set", "learning_rate=0", "--eval-at-start", "--run-name", run_dir.name)  # fmt: skip
    out = finish(process)
    assert process.returncode == 0, out
    expected = expected_accuracy(run_dir)
    assert 0 < expected < 1
    lines = eval_lines(run_dir)
    assert [line["step"] for line in lines] == [0, 2, 4], lines
    for line in lines:
        assert (
            line["eval_execution_accuracy"] == pytest.approx(expected, abs=1e-4)
            and line["eval_valid_sql"] == 1.0
        )
        assert line["eval_rows"] == 8 and line["eval_seconds"] > 0
    assert f"execution accuracy {100 * expected:.1f}%, valid SQL 100.0% on 8 validation rows" in out
    assert f"best {100 * expected:.1f}% at step 2" in out  # a tie keeps the first checkpoint

    checkpoints = run_dir / "checkpoints"
    state = trainer_state(checkpoints / "checkpoint-4")
    assert state["best_model_checkpoint"] == str(checkpoints / "checkpoint-2")
    assert state["best_metric"] == pytest.approx(expected, abs=1e-4)
    # every checkpoint is a model: tokenizer, chat template and a generation config that stops at the end of turn
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoints / "checkpoint-2")
    assert tokenizer.chat_template and (checkpoints / "checkpoint-2" / "chat_template.jinja").is_file()
    generation = json.loads((checkpoints / "checkpoint-2" / "generation_config.json").read_text())
    assert tokenizer.convert_tokens_to_ids("<end_of_turn>") in generation["eos_token_id"]
    assert leftover_processes(run_dir) == []

    # RUN:best is the Trainer's best_model_checkpoint (step 0 never is; a tie keeps the first), wherever a run is
    # accepted, and `sqlsft runs` shows it
    best = runs.resolve_run("scored:best")
    assert best.final_model_dir() == checkpoints / "checkpoint-2" == Path(state["best_model_checkpoint"])
    assert runs.resolve_run("scored:checkpoint-4").final_model_dir() == checkpoints / "checkpoint-4"
    assert "scored has no checkpoint-3; its checkpoints: 2, 4" in one_error_line(
        invoke("serve", "scored:checkpoint-3", "--dry-run")
    )
    served = invoke("serve", "latest:best", "--engine", "transformers", "--dry-run")
    assert served.exit_code == 0, served.stderr
    assert f"scored:best -> {checkpoints / 'checkpoint-2'}" in served.stdout
    assert f"{100 * expected:.1f}% @ 2" in invoke("runs").stdout


@pytest.mark.slow
def test_an_interrupted_run_keeps_its_history_and_load_best_makes_model_the_best(
    tiny_model_dir, counting_data, tmp_path, monkeypatch
):
    """A random tiny model writes no right SQL: every evaluation scores 0, so the best stays the first
    checkpoint (step 2) while training moves the weights on. The run is stopped after that evaluation and
    resumed; at the end model/ holds checkpoint-2's weights."""
    monkeypatch.setenv("SQLSFT_RUNS_DIR", str(tmp_path / "runs"))
    run_dir = runs_dir() / "stopped-and-resumed"
    process = start_cli("train", *SMALL_RUN, *counting_data, "--model", str(tiny_model_dir), "--max-steps", "12",
                        "--set", "learning_rate=1e-3", "--load-best", "--run-name", run_dir.name)  # fmt: skip
    import time

    deadline = time.monotonic() + 300
    while not eval_lines(run_dir) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    out = finish(process)
    assert process.returncode == 130, out
    before = eval_lines(run_dir)
    assert before and before[0]["step"] == 2, out
    stopped_at = max(int(p.name.split("-")[1]) for p in (run_dir / "checkpoints").glob("checkpoint-*"))
    assert stopped_at < 12

    process = start_cli("train", "--resume", run_dir.name)
    out = finish(process)
    assert process.returncode == 0, out
    after = eval_lines(run_dir)
    assert after[: len(before)] == before  # the history before the stop is kept
    evaluated = [line["step"] for line in after]
    assert evaluated[-1] == 12 and evaluated == sorted(set(evaluated))
    assert all(line["eval_execution_accuracy"] == 0.0 for line in after)
    assert (
        "best 0.0% at step 2" in out and f"{run_dir / 'model'} (checkpoint-2's weights: --load-best)" in out
    )

    checkpoints = run_dir / "checkpoints"
    state = trainer_state(checkpoints / "checkpoint-12")
    assert state["best_model_checkpoint"] == str(checkpoints / "checkpoint-2")  # known across the resume
    final = weights(run_dir / "model")
    assert same_weights(final, weights(checkpoints / "checkpoint-2"))
    assert not same_weights(final, weights(checkpoints / "checkpoint-12"))  # training did move the weights
    assert leftover_processes(run_dir) == []


@pytest.mark.slow
def test_two_cpu_processes_share_the_rows_and_log_one_line_per_evaluation(
    scripted_model, counting_data, tmp_path, monkeypatch
):
    """7 rows on 2 ranks (4 and 3): no rank waits forever, and every row is scored once. Without checkpoints
    the run is scored at the end (by the worker, not the Trainer's schedule), and at step 0 when asked."""
    monkeypatch.setenv("SQLSFT_RUNS_DIR", str(tmp_path / "runs"))
    run_dir = runs_dir() / "ddp"
    process = start_cli("train", *SMALL_RUN, *counting_data, "--model", str(scripted_model), "--max-steps", "2",
                        "--set", "learning_rate=0", "--set", "save_strategy='no'", "--eval-rows", "7",
                        "--eval-at-start", "--cpu-processes", "2", "--run-name", run_dir.name)  # fmt: skip
    out = finish(process)
    assert process.returncode == 0, out
    assert "save_strategy is no: execution accuracy is measured once, at the end" in out
    lines = eval_lines(run_dir)
    assert [line["step"] for line in lines] == [0, 2]  # one line per evaluation, from rank 0
    expected = expected_accuracy(run_dir, 7)
    assert 0 < expected < 1
    for line in lines:
        assert line["eval_rows"] == 7 and line["eval_execution_accuracy"] == pytest.approx(expected, abs=1e-4)
    assert not (run_dir / "checkpoints").exists() or not list((run_dir / "checkpoints").iterdir())
    assert runs.resolve_run(run_dir.name).status == "completed"
    assert leftover_processes(run_dir) == []
