"""`sqlsft eval`: scoring many rows, reports, comparisons, resuming, bad input, and real served models end to end."""

import json
import os
import signal
import subprocess
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from rich.console import Console

from sqlsft.cli.views.eval import report_renderables
from sqlsft.eval.answering import Answer
from sqlsft.eval.compare import compare_results
from sqlsft.eval.evaluate import EvalResult
from sqlsft.eval.options import EvalOptions
from sqlsft.eval.report import build_report
from sqlsft.eval.report_folder import PREDICTIONS_FILE, REPORT_FILE, latest_execution_accuracy
from sqlsft.eval.rows import load_rows
from sqlsft.eval.score_rows import run_rows
from tests.cli_runner import SQLSFT, invoke, one_error_line, run_process
from tests.scripted_model import ScriptedServer

BY = ["sql_complexity", "sql_task_type"]


@pytest.fixture(scope="module")
def builtin_prepared():
    """A small builtin preparation in the session cache (200 rows: 10 test rows); eval finds it there."""
    from sqlsft.data.prepare import PrepareOptions, prepare

    return prepare(PrepareOptions(dataset="builtin", num_rows=200, model=None), Console(quiet=True))


def indexed(rows: list[dict]) -> dict[int, dict]:
    return dict(enumerate(rows))


def gold_or_nothing(row: dict) -> Answer:
    """Rows with an even id answer with their own gold query (fenced, as the model is trained to); the
    others without SQL."""
    if row["id"] % 2 == 0:
        return Answer(
            text=f"```sql\n{row['sql']}\n```", latency_s=0.01 * (row["id"] % 7), completion_tokens=12
        )
    return Answer(text="I do not know.", latency_s=0.02, completion_tokens=4)


def test_gold_answers_score_full_marks_and_each_row_is_saved_as_it_is_scored(builtin_prepared, tmp_path):
    console = Console(record=True, width=160)
    data = load_rows(EvalOptions(limit=8), console)
    rows = data.rows
    assert len(rows) == 8 and all(r["prompt"][0]["role"] == "system" for r in rows)
    assert data.split_size == 10 and "split 'test' has 10 rows" in data.description
    assert str(data.prepared.folder) in data.description and "num_rows 200" in data.description
    saved: list[int] = []
    records, wall_s = run_rows(
        indexed(rows), gold_or_nothing, concurrency=3, by=BY, on_scored=lambda r: saved.append(r.index)
    )
    assert [r.index for r in records] == list(range(8))  # row order kept whatever finished first
    assert sorted(saved) == list(range(8))  # every record handed on as it was scored
    even = sum(1 for r in rows if r["id"] % 2 == 0)
    report = build_report(records, wall_s=wall_s, by=BY, meta={"model": "gold", "dataset": "builtin"})
    assert report["gold_executes"] == 8  # every builtin gold executes
    assert report["execution_accuracy"] == round(even / 8, 4) == report["exact_match"]
    assert report["outcomes"]["correct"] == even and report["outcomes"]["no_sql"] == 8 - even
    assert set(report["breakdown"]) == set(BY)
    assert sum(g["examples"] for g in report["breakdown"]["sql_complexity"].values()) == 8
    assert len(report["failed"]) == 8 - even and all(f["outcome"] == "no_sql" for f in report["failed"])
    assert report["slowest"][0]["latency_s"] == max(r.latency_s for r in records)
    assert any("ORDER BY" in rule for rule in report["scoring_rules"])
    line = records[0].to_json()
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
        assert key in line
    assert line["sql_complexity"] == rows[0]["sql_complexity"]
    console.print(report_renderables(report, console))
    text = console.export_text()
    assert "execution accuracy" in text and "by sql_complexity" in text and "by sql_task_type" in text


def test_compare_names_the_rows_that_changed(builtin_prepared):
    rows = load_rows(EvalOptions(limit=6), Console(quiet=True)).rows

    def all_but(skipped_id):
        def answer(row: dict) -> Answer:
            sql = "" if row["id"] == skipped_id else f"```sql\n{row['sql']}\n```"
            return Answer(text=sql or "I do not know.", latency_s=0.01)

        return answer

    results = []
    for name, answer in (("a", all_but(rows[1]["id"])), ("b", all_but(rows[0]["id"]))):
        records, wall_s = run_rows(indexed(rows), answer, concurrency=2, by=BY)
        report = build_report(records, wall_s=wall_s, by=BY, meta={"model": name})
        results.append(EvalResult(report, records, None))
    comparison = compare_results(*results)
    # B answers row 1 that A missed, and misses row 0 that A answered; nothing else moves
    assert [r["id"] for r in comparison["fixed_by_b"]] == [rows[1]["id"]]
    assert [r["id"] for r in comparison["broken_by_b"]] == [rows[0]["id"]]
    assert comparison["fixed_by_b"][0]["a"]["outcome"] == "no_sql"
    assert comparison["metrics"]["execution_accuracy"]["difference"] == 0.0


def test_an_answer_that_breaks_scoring_is_that_rows_error(builtin_prepared):
    rows = load_rows(EvalOptions(limit=3), Console(quiet=True)).rows

    def hostile(row: dict) -> Answer:
        if row is rows[1]:
            raise RuntimeError("the client itself blew up")
        return Answer(text="```sql\nSELECT '\ud800'\n```", latency_s=0.01)

    broken = {k: v for k, v in rows[2].items() if k != "sql"}  # no gold: scoring it raises
    records, _ = run_rows({0: rows[0], 1: rows[1], 2: broken}, hostile, concurrency=2, by=BY)
    assert [r.index for r in records] == [0, 1, 2]
    assert records[1].outcome == "request_error" and "blew up" in records[1].score.error
    assert records[2].outcome == "error" and "scoring failed" in records[2].score.error
    assert records[0].outcome in ("error", "wrong")  # a lone surrogate is an answer like any other
    json.dumps([r.to_json() for r in records])  # and every record can be written


def test_bad_input_is_one_line(builtin_prepared, tmp_path):
    assert "Cannot reach" in one_error_line(invoke("eval", "--url", "http://127.0.0.1:9/v1", "--limit", "2"))
    folder = str(tmp_path)  # errors come before any server starts for it
    assert "--limit must be at least 1" in one_error_line(invoke("eval", folder, "--limit", "0"))
    assert "--concurrency must be at least 1" in one_error_line(invoke("eval", folder, "-j", "0"))
    assert "--concurrency must be at least 1" in one_error_line(invoke("eval", folder, "-c", "0"))  # old flag
    assert "--max-tokens must be at least 1" in one_error_line(invoke("eval", folder, "--max-tokens", "0"))
    assert "--by nope: no such column" in one_error_line(invoke("eval", folder, "--by", "nope"))
    assert "has no split 'dev'" in one_error_line(invoke("eval", folder, "--split", "dev"))
    no_runs = {"SQLSFT_RUNS_DIR": str(tmp_path / "no-runs")}
    assert "No completed run" in one_error_line(invoke("eval", "--limit", "2", env=no_runs))
    assert "--compare takes the two models" in one_error_line(invoke("eval", "m", "--compare", "a", "b"))
    assert "is a folder" in one_error_line(invoke("eval", folder, "--test-file", folder))
    assert "does not exist" in one_error_line(
        invoke("eval", folder, "--test-file", str(tmp_path / "no.jsonl"))
    )


def test_an_unknown_model_is_refused_before_any_data_is_prepared(tmp_path):
    from sqlsft.data.cache import list_prepared

    data = tmp_path / "fresh.jsonl"
    data.write_text("".join(json.dumps(_row(i, "SELECT a FROM t", "basic SQL")) + "\n" for i in range(30)))
    started = time.perf_counter()
    line = one_error_line(invoke("eval", "nosuch", "--dataset", str(data)))
    assert "No model folder, run or hub id named 'nosuch'" in line
    assert time.perf_counter() - started < 20
    assert not [p for p in list_prepared() if p.manifest["options"]["dataset"] == str(data)]


# ---------------------------------------------------------------- a scripted OpenAI server

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


class GatedServer(ScriptedServer):
    """A scripted server that answers the first `free` questions and holds the others until `release()`."""

    def __init__(self, free: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.free, self.gate = free, threading.Event()

    def answer_for(self, messages: list[dict]) -> str:
        if len(self.requests) > self.free:
            self.gate.wait(60)
        return super().answer_for(messages)

    def release(self) -> None:
        self.gate.set()


def chat_requests(server: ScriptedServer) -> int:
    return sum(1 for r in server.requests if "messages" in r)


def report_folders(runs: Path, name: str) -> list[Path]:
    return sorted((runs / "eval").glob(f"{name}-*"))


def test_a_killed_eval_keeps_its_scored_rows_and_a_rerun_resumes(builtin_prepared, tmp_path):
    from sqlsft.common.paths import runs_dir

    server = GatedServer(free=3, model="gated")
    args = ["eval", "--url", server.url, "--limit", "6", "-j", "1"]
    try:
        env = {**os.environ, "COLUMNS": "200"}
        child = subprocess.Popen([SQLSFT, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 text=True, start_new_session=True)  # fmt: skip
        deadline = time.time() + 120
        while time.time() < deadline and chat_requests(server) < 4:  # three answered, the fourth held
            time.sleep(0.1)
        assert chat_requests(server) == 4, child.communicate(timeout=5)[0] if child.poll() is not None else ""
        time.sleep(1)
        os.killpg(child.pid, signal.SIGKILL)  # a crash: no chance to write anything more
        child.wait(timeout=30)
        [folder] = report_folders(runs_dir(), "gated")
        assert not (folder / REPORT_FILE).exists()
        kept = [json.loads(line) for line in (folder / PREDICTIONS_FILE).read_text().splitlines()]
        assert sorted(r["index"] for r in kept) == [0, 1, 2]

        server.free = 1_000_000  # the same server, answering everything now
        server.release()
        asked_before = chat_requests(server)
        result = run_process(*args)
        assert result.returncode == 0, result.stdout + result.stderr
        assert chat_requests(server) - asked_before == 3  # only the rows not scored before
        assert "3 of 6 rows already scored" in result.stdout and str(folder) in result.stdout
        assert report_folders(runs_dir(), "gated") == [folder]
        report = json.loads((folder / REPORT_FILE).read_text())
        assert report["examples"] == 6 and report["rows_resumed"] == 3
        lines = [json.loads(line) for line in (folder / PREDICTIONS_FILE).read_text().splitlines()]
        assert [r["index"] for r in lines] == list(range(6))

        asked_before = chat_requests(server)  # a finished report is never resumed
        assert run_process(*args).returncode == 0 and chat_requests(server) - asked_before == 6
        assert len(report_folders(runs_dir(), "gated")) == 2
    finally:
        server.release()
        server.close()


@contextmanager
def read_only_folder(path: Path):
    """A folder no process can write into, root included (chattr +i), undone on the way out."""
    path.mkdir(parents=True, exist_ok=True)
    immutable = False
    if os.geteuid() == 0:
        immutable = subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0
        if not immutable:  # no chattr here: a path under a regular file cannot be written either
            (path / "file").write_text("")
            yield path / "file" / "runs"
            return
    else:
        path.chmod(0o555)
    try:
        yield path
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        path.chmod(0o755)


def test_the_engine_asked_for_is_part_of_what_an_eval_resumes_or_reuses(builtin_prepared, tmp_path):
    # a resumed eval used to mix answers of two engines, and --compare reused another engine's figures
    from sqlsft.eval.evaluate import eval_plan
    from sqlsft.eval.model import EvalModel
    from sqlsft.eval.rows import EvalRows

    test = [dict(row) for row in builtin_prepared.split("test")]
    data = EvalRows(test, "builtin", builtin_prepared, "test", len(test), "10 builtin test rows")
    served_folder = EvalModel("model", None, tmp_path)
    keys = {
        engine: eval_plan(served_folder, str(tmp_path), data, EvalOptions(engine=engine)).key
        for engine in ("vllm", "transformers", "llama.cpp")
    }
    assert len(set(keys.values())) == 3
    assert eval_plan(served_folder, str(tmp_path), data, EvalOptions(engine="vllm")).key == keys["vllm"]
    # a server given with --url: eval starts none, so the engine option plays no part
    given = EvalModel("model", None, None)
    plans = [
        eval_plan(given, "http://127.0.0.1:8000/v1 m", data, EvalOptions(engine=e)) for e in ("vllm", "auto")
    ]
    assert plans[0].engine is None and plans[0].key == plans[1].key


def test_an_unwritable_runs_folder_is_refused_before_any_question(builtin_prepared, tmp_path):
    with read_only_folder(tmp_path / "runs") as runs, ScriptedServer() as server:
        result = run_process("eval", "--url", server.url, "--limit", "2", env={"SQLSFT_RUNS_DIR": str(runs)})
        line = one_error_line(result)
        assert "Cannot save the eval report" in line and str(runs) in line
        assert chat_requests(server) == 0


def test_test_file_scores_every_row_of_the_file_whatever_was_prepared_before(tmp_path):
    from sqlsft.data.prepare import PrepareOptions, prepare

    rows = [_row(i, "SELECT a FROM t WHERE a = 1", "basic SQL") for i in range(24)]
    data = tmp_path / "mine.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    plain = prepare(PrepareOptions(dataset=str(data), model=None), Console(quiet=True))
    assert plain.manifest["rows"]["test"] < 24  # a plain preparation holds out only a few rows

    with ScriptedServer(default="SELECT a FROM t WHERE a = 1", model="filed") as server:
        result = run_process("eval", "--url", server.url, "--test-file", str(data), "--json")
        assert result.returncode == 0, result.stderr
        assert chat_requests(server) == 24, result.stderr
    report = json.loads(result.stdout)  # --json: stdout is the report alone
    assert report["examples"] == 24 and report["execution_accuracy"] == 1.0
    assert report["split_rows"] == 24 and report["prepared"] != str(plain.folder)
    assert f"every row of {data} as the test split" in result.stderr and "has 24 rows" in result.stderr

    with ScriptedServer(model="filed") as server:  # --dataset alone: the plain preparation, said so
        result = run_process("eval", "--url", server.url, "--dataset", str(data), "--no-resume")
        assert result.returncode == 0, result.stderr
    assert (
        str(plain.folder) in result.stdout and f"has {plain.manifest['rows']['test']} rows" in result.stdout
    )


def test_a_lone_surrogate_in_an_answer_does_not_end_the_eval(builtin_prepared):
    from sqlsft.common.paths import runs_dir

    hostile = {"Question": "x"}  # no builtin question holds it: every answer is the default
    with ScriptedServer(
        hostile, default="```sql\nSELECT '\ud800' AS broken\n```", model="surrogate"
    ) as server:
        result = run_process("eval", "--url", server.url, "--limit", "3")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "execution accuracy" in result.stdout
    [folder] = report_folders(runs_dir(), "surrogate")
    report = json.loads((folder / REPORT_FILE).read_text())
    assert report["examples"] == 3 and report["outcomes"]["correct"] == 0
    lines = (folder / PREDICTIONS_FILE).read_text().splitlines()
    assert len(lines) == 3 and all("\\ud800" in line for line in lines)


def test_piped_tables_keep_whole_values(builtin_prepared):
    long_answer = "SELECT " + ", ".join(f"column_number_{i}" for i in range(30)) + " FROM nowhere"
    with ScriptedServer(default=f"```sql\n{long_answer}\n```", model="wide") as server:
        result = run_process("eval", "--url", server.url, "--limit", "2", env={"COLUMNS": "80"})
    assert result.returncode == 0, result.stderr
    assert long_answer in result.stdout  # one line, uncut, though the console is 80 columns


# ---------------------------------------------------------------- real servers


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
    return str(train), str(test)


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
    from sqlsft.serve import free_port, running_server

    train, test = sql_dataset
    with running_server(str(scripted_model), engine="transformers", port=free_port()) as server:
        result = run_process("eval", "--url", server.url, "--dataset", train, "--test-file", test, "-j", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "execution accuracy" in result.stdout and "66.7%" in result.stdout
    folders = report_folders(runs_dir(), "local")
    assert folders, list((runs_dir() / "eval").iterdir())
    report = json.loads((folders[-1] / REPORT_FILE).read_text())
    _check_scripted_report(report)
    assert report["server"] == "given (--url)" and report["served_model_name"] == "local"
    predictions = [json.loads(line) for line in (folders[-1] / PREDICTIONS_FILE).read_text().splitlines()]
    assert [p["predicted_sql"] for p in predictions] == [ANSWER] * 4
    assert [p["outcome"] for p in predictions] == ["correct", "correct", "wrong", "gold_error"]
    assert all(p["finish_reason"] == "stop" and p["latency_s"] > 0 for p in predictions)


@pytest.mark.slow
def test_eval_compare_starts_and_stops_a_server_per_model(sql_dataset, scripted_model, tiny_model_dir):
    import shutil

    from sqlsft.common.paths import runs_dir
    from sqlsft.runs import registry as runs
    from sqlsft.runs.status import update_status
    from sqlsft.serve import recorded_servers

    # a completed run whose model is the scripted one: its report lands in the run folder
    run_dir = runs_dir() / "20260101-000000-scripted"
    shutil.copytree(scripted_model, run_dir / "model")
    update_status(run_dir, status="completed", preset="scripted", model="scripted")

    train, test = sql_dataset
    result = run_process(
        "eval", "--compare", run_dir.name, str(tiny_model_dir), "--dataset", train, "--test-file", test,
        "--engine", "transformers", "--max-tokens", "8", "-j", "2",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "correct only with A" in result.stdout
    assert not recorded_servers()  # both servers stopped

    reports = list(run_dir.glob(f"eval/test-*/{REPORT_FILE}"))
    assert len(reports) == 1
    _check_scripted_report(json.loads(reports[0].read_text()))
    assert latest_execution_accuracy(runs.resolve_run(run_dir.name).path) == round(
        2 / 3, 4
    )  # what `sqlsft runs` shows
    comparison = json.loads(next((runs_dir() / "eval").glob("compare-*/compare.json")).read_text())
    assert comparison["a"]["model"] == run_dir.name and comparison["rows"] == 4
    assert comparison["metrics"]["execution_accuracy"]["a"] == round(2 / 3, 4)
    assert comparison["metrics"]["execution_accuracy"]["b"] == 0.0  # a random tiny model writes no right SQL
    assert sorted(r["id"] for r in comparison["broken_by_b"]) == [0, 1] and not comparison["fixed_by_b"]

    # the same comparison again: both finished evals are reused, no server is started, the figures are the same
    again = run_process(
        "eval", "--compare", run_dir.name, str(tiny_model_dir), "--dataset", train, "--test-file", test,
        "--engine", "transformers", "--max-tokens", "8", "-j", "2", "--json",
    )  # fmt: skip
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stderr.count("reusing the finished eval") == 2
    assert "Starting a server" not in again.stderr
    assert json.loads(again.stdout)["metrics"]["execution_accuracy"]["a"] == round(2 / 3, 4)
    assert len(list(run_dir.glob(f"eval/test-*/{REPORT_FILE}"))) == 1  # no new report folder


@pytest.mark.slow
def test_a_killed_eval_stops_the_server_it_started(sql_dataset, tiny_model_dir):
    """SIGTERM (a plain `kill`) to an eval mid-way ends it the interrupted way and stops its engine: Python's
    default SIGTERM used to end eval at once and leave `transformers serve` running, generating for no one."""
    import psutil

    from sqlsft.serve import recorded_servers
    from sqlsft.serve.registry import Health, health

    train, test = sql_dataset
    eval_cli = subprocess.Popen(
        [SQLSFT, "eval", str(tiny_model_dir), "--dataset", train, "--test-file", test, "--engine",
         "transformers", "--max-tokens", "4000", "-j", "1", "--no-resume"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not (
            (servers := recorded_servers()) and health("127.0.0.1", servers[0].port) == Health.HEALTHY
        ):
            assert eval_cli.poll() is None, eval_cli.communicate()[0]
            time.sleep(0.5)
        assert servers, "eval started no server"
        time.sleep(2)  # a request in flight: the random tiny model writes up to 4000 tokens
        eval_cli.send_signal(signal.SIGTERM)
        out, _ = eval_cli.communicate(timeout=90)
    finally:
        if eval_cli.poll() is None:
            eval_cli.kill()
    assert eval_cli.returncode == 130, out
    assert "Interrupted" in out and "Traceback" not in out
    assert recorded_servers() == []
    assert not psutil.pid_exists(servers[0].pid) or psutil.Process(servers[0].pid).status() == "zombie"
