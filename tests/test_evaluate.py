"""`sqlsft eval`: scoring many rows, reports, comparisons, bad input, and real served models end to end."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from sqlsft.eval.evaluate import (
    Answer,
    EvalOptions,
    EvalResult,
    build_report,
    compare_results,
    load_rows,
    report_renderables,
    run_rows,
    write_outputs,
)

SQLSFT = str(Path(sys.executable).parent / "sqlsft")
BY = ["sql_complexity", "sql_task_type"]


def run_cli(*args: str, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "160", **(env or {})}
    return subprocess.run([SQLSFT, *args], capture_output=True, text=True, timeout=timeout, env=env)


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("error:"), result.stderr
    return " ".join(result.stderr.split())


@pytest.fixture(scope="module")
def builtin_prepared():
    """A small builtin preparation in the session cache (200 rows: 10 test rows); eval finds it there."""
    from sqlsft.data.prepare import PrepareOptions, prepare

    return prepare(PrepareOptions(dataset="builtin", num_rows=200, model=None), Console(quiet=True))


def gold_or_nothing(row: dict) -> Answer:
    """Rows with an even id answer with their own gold query (fenced, as the model is trained to); the
    others without SQL."""
    if row["id"] % 2 == 0:
        return Answer(
            text=f"```sql\n{row['sql']}\n```", latency_s=0.01 * (row["id"] % 7), completion_tokens=12
        )
    return Answer(text="I do not know.", latency_s=0.02, completion_tokens=4)


def test_gold_answers_score_full_marks_and_the_report_files_say_so(builtin_prepared, tmp_path):
    console = Console(record=True, width=160)
    rows = load_rows(EvalOptions(limit=8), console)
    assert len(rows) == 8 and all(r["prompt"][0]["role"] == "system" for r in rows)
    records, wall_s = run_rows(rows, gold_or_nothing, concurrency=3, by=BY, console=console)
    assert [r["index"] for r in records] == list(range(8))  # row order kept whatever finished first
    even = sum(1 for r in rows if r["id"] % 2 == 0)
    report = build_report(records, wall_s=wall_s, by=BY, meta={"model": "gold", "dataset": "builtin"})
    assert report["gold_executes"] == 8  # every builtin gold executes
    assert report["execution_accuracy"] == round(even / 8, 4) == report["exact_match"]
    assert report["outcomes"]["correct"] == even and report["outcomes"]["no_sql"] == 8 - even
    assert set(report["breakdown"]) == set(BY)
    assert sum(g["examples"] for g in report["breakdown"]["sql_complexity"].values()) == 8
    assert len(report["failed"]) == 8 - even and all(f["outcome"] == "no_sql" for f in report["failed"])
    assert report["slowest"][0]["latency_s"] == max(r["latency_s"] for r in records)
    assert any("ORDER BY" in rule for rule in report["scoring_rules"])

    write_outputs(tmp_path / "out", report, records)
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert saved["execution_accuracy"] == report["execution_accuracy"]
    lines = (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    assert len(lines) == 8
    for key in (
        "id",
        "gold",
        "answer",
        "predicted_sql",
        "outcome",
        "execution_match",
        "exact_match",
        "error",
    ):
        assert key in first
    console.print(report_renderables(report))
    text = console.export_text()
    assert "execution accuracy" in text and "by sql_complexity" in text and "by sql_task_type" in text


def test_compare_names_the_rows_that_changed(builtin_prepared):
    console = Console(quiet=True)
    rows = load_rows(EvalOptions(limit=6), console)

    def all_but(skipped_id):
        def answer(row: dict) -> Answer:
            sql = "" if row["id"] == skipped_id else f"```sql\n{row['sql']}\n```"
            return Answer(text=sql or "I do not know.", latency_s=0.01)

        return answer

    results = []
    for name, answer in (("a", all_but(rows[1]["id"])), ("b", all_but(rows[0]["id"]))):
        records, wall_s = run_rows(rows, answer, concurrency=2, by=BY, console=console)
        report = build_report(records, wall_s=wall_s, by=BY, meta={"model": name})
        results.append(EvalResult(report, records, None))
    comparison = compare_results(*results)
    # B answers row 1 that A missed, and misses row 0 that A answered; nothing else moves
    assert [r["id"] for r in comparison["fixed_by_b"]] == [rows[1]["id"]]
    assert [r["id"] for r in comparison["broken_by_b"]] == [rows[0]["id"]]
    assert comparison["fixed_by_b"][0]["a"]["outcome"] == "no_sql"
    assert comparison["metrics"]["execution_accuracy"]["difference"] == 0.0


def test_bad_input_is_one_line(builtin_prepared, tmp_path):
    assert "Cannot reach" in one_error_line(run_cli("eval", "--url", "http://127.0.0.1:9/v1", "--limit", "2"))
    folder = str(tmp_path)  # errors come before any server starts for it
    assert "--limit must be at least 1" in one_error_line(run_cli("eval", folder, "--limit", "0"))
    assert "--concurrency must be at least 1" in one_error_line(run_cli("eval", folder, "-c", "0"))
    assert "--max-tokens must be at least 1" in one_error_line(run_cli("eval", folder, "--max-tokens", "0"))
    assert "--by nope: no such column" in one_error_line(run_cli("eval", folder, "--by", "nope"))
    assert "has no split 'dev'" in one_error_line(run_cli("eval", folder, "--split", "dev"))
    no_runs = {"SQLSFT_RUNS_DIR": str(tmp_path / "no-runs")}
    assert "No completed run" in one_error_line(run_cli("eval", "--limit", "2", env=no_runs))
    assert "--compare takes the two models" in one_error_line(run_cli("eval", "m", "--compare", "a", "b"))


# ---------------------------------------------------------------- real servers

SCHEMA = "CREATE TABLE t (a INT, b VARCHAR(10)); INSERT INTO t VALUES (1, 'x'), (2, 'y');"
ANSWER = "SELECT COUNT(*) FROM t"  # what the scripted model says to every question
# (gold, complexity): the answer is exactly right, right by result, wrong, and against a gold that fails
TEST_ROWS = [
    ("SELECT COUNT(*) FROM t", "basic SQL"),
    ("SELECT COUNT(a) FROM t", "aggregation"),
    ("SELECT SUM(a) FROM t", "aggregation"),
    ("SELECT missing FROM t", "basic SQL"),
]


def _row(i: int, sql: str, complexity: str) -> dict:
    return {
        "id": i,
        "sql_prompt": f"Question {i} about t?",
        "sql_context": SCHEMA,
        "sql": sql,
        "sql_complexity": complexity,
        "sql_task_type": "analytics and reporting",
    }


@pytest.fixture(scope="module")
def sql_dataset(tmp_path_factory):
    """A local data set whose test split is TEST_ROWS, prepared into the session cache."""
    from sqlsft.data.prepare import PrepareOptions, prepare

    folder = tmp_path_factory.mktemp("eval-data")
    train, test = folder / "train.jsonl", folder / "test.jsonl"
    train.write_text(
        "".join(json.dumps(_row(100 + i, "SELECT a FROM t", "basic SQL")) + "\n" for i in range(20))
    )
    test.write_text("".join(json.dumps(_row(i, sql, c)) + "\n" for i, (sql, c) in enumerate(TEST_ROWS)))
    prepare(PrepareOptions(dataset=str(train), test_file=str(test), model=None), Console(quiet=True))
    return str(train)


@pytest.fixture(scope="module")
def scripted_model(tiny_model_dir, tmp_path_factory):
    from tests.scripted_model import build_scripted_model

    return build_scripted_model(tiny_model_dir, tmp_path_factory.mktemp("eval-model") / "scripted", ANSWER)


def _check_scripted_report(report: dict) -> None:
    assert report["examples"] == 4 and report["gold_executes"] == 3
    assert report["execution_accuracy"] == round(2 / 3, 4) and report["exact_match"] == 0.25
    assert report["valid_sql"] == 1.0 and report["outcomes"]["gold_error"] == 1
    assert report["outcomes"]["wrong"] == 1 and report["outcomes"]["correct"] == 2
    by = report["breakdown"]["sql_complexity"]
    assert by["aggregation"]["execution_accuracy"] == 0.5 and by["basic SQL"]["execution_accuracy"] == 1.0


@pytest.mark.slow
def test_eval_against_a_running_server(sql_dataset, scripted_model):
    from sqlsft.common.paths import runs_dir
    from sqlsft.serve.server import free_port, running_server

    with running_server(str(scripted_model), engine="transformers", port=free_port()) as server:
        result = run_cli("eval", "--url", server.url, "--dataset", sql_dataset, "--concurrency", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "execution accuracy" in result.stdout and "66.7%" in result.stdout
    folders = sorted((runs_dir() / "eval").glob("local-*"))
    assert folders, list((runs_dir() / "eval").iterdir())
    report = json.loads((folders[-1] / "report.json").read_text())
    _check_scripted_report(report)
    assert report["server"] == "given (--url)" and report["served_model_name"] == "local"
    predictions = [json.loads(line) for line in (folders[-1] / "predictions.jsonl").read_text().splitlines()]
    assert [p["predicted_sql"] for p in predictions] == [ANSWER] * 4
    assert [p["outcome"] for p in predictions] == ["correct", "correct", "wrong", "gold_error"]
    assert all(p["finish_reason"] == "stop" and p["latency_s"] > 0 for p in predictions)


@pytest.mark.slow
def test_eval_compare_starts_and_stops_a_server_per_model(sql_dataset, scripted_model, tiny_model_dir):
    import shutil

    from sqlsft.common.paths import runs_dir
    from sqlsft.runs import registry as runs
    from sqlsft.serve.server import recorded_servers

    # a completed run whose model is the scripted one: its report lands in the run folder
    run_dir = runs_dir() / "20260101-000000-scripted"
    shutil.copytree(scripted_model, run_dir / "model")
    runs.update_status(run_dir, status="completed", preset="scripted", model="scripted")

    result = run_cli(
        "eval", "--compare", run_dir.name, str(tiny_model_dir), "--dataset", sql_dataset,
        "--engine", "transformers", "--max-tokens", "8", "--concurrency", "2",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "correct only with A" in result.stdout
    assert not recorded_servers()  # both servers stopped

    reports = list(run_dir.glob("eval/test-*/report.json"))
    assert len(reports) == 1
    _check_scripted_report(json.loads(reports[0].read_text()))
    assert runs.resolve_run(run_dir.name).latest_accuracy() == round(2 / 3, 4)  # what `sqlsft runs` shows
    comparison = json.loads(next((runs_dir() / "eval").glob("compare-*/compare.json")).read_text())
    assert comparison["a"]["model"] == run_dir.name and comparison["rows"] == 4
    assert comparison["metrics"]["execution_accuracy"]["a"] == round(2 / 3, 4)
    assert comparison["metrics"]["execution_accuracy"]["b"] == 0.0  # a random tiny model writes no right SQL
    assert sorted(r["id"] for r in comparison["broken_by_b"]) == [0, 1] and not comparison["fixed_by_b"]
