"""`sqlsft chat`: message parsing, result panels, server errors, the CLI, and the page in a real browser."""

import itertools
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from sqlsft.chat.app import (
    ChatTarget,
    ServerProblem,
    parse_auth,
    parse_workshop_message,
    redact_url,
    resolve_target,
    result_html,
    stream_answer,
)
from sqlsft.common.errors import SqlsftError
from sqlsft.data.prompts import load_templates, prompt_messages

SQLSFT = [str(Path(sys.executable).with_name("sqlsft"))]  # the console script of this environment
SCHEMA = (
    "CREATE TABLE employees (id INT PRIMARY KEY, name VARCHAR(50), dept VARCHAR(20));\n"
    "INSERT INTO employees VALUES (1, 'Ann', 'eng'), (2, 'Bob', 'eng'), (3, 'Cid', 'ops');"
)
SCRIPTED_ANSWER = "SELECT COUNT(*) FROM employees"
API_KEY = "sk-test-never-shown-4711"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------- quick tests


def test_parse_workshop_message():
    templates = load_templates()
    rendered = prompt_messages(templates, "How many employees?", SCHEMA)[1]["content"]
    question, schema = parse_workshop_message(rendered)
    assert question == "How many employees?"
    assert "CREATE TABLE employees" in schema and "```" not in schema
    assert parse_workshop_message("Prompt: list them\nSchema: CREATE TABLE t (a INT)") == (
        "list them",
        "CREATE TABLE t (a INT)",
    )
    assert parse_workshop_message("How many employees?") is None


def test_resolve_target_with_url_and_keys(monkeypatch):
    monkeypatch.delenv("SQLSFT_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    target = resolve_target("http://127.0.0.1:8000/v1/", None, None)
    assert (target.url, target.model, target.api_key) == ("http://127.0.0.1:8000/v1", "local", "EMPTY")
    monkeypatch.setenv("OPENAI_API_KEY", "from-openai-env")
    assert resolve_target("http://h/v1", "m", None).api_key == "from-openai-env"
    monkeypatch.setenv("SQLSFT_API_KEY", "from-sqlsft-env")
    assert resolve_target("http://h/v1", "m", None).api_key == "from-sqlsft-env"
    assert resolve_target("http://h/v1", "m", "explicit").api_key == "explicit"
    with pytest.raises(SqlsftError, match="not an http"):
        resolve_target("localhost:8000", None, None)
    assert redact_url("https://user:pw@host:9/v1") == "https://host:9/v1"


def test_resolve_target_without_a_server_says_what_to_do():
    with pytest.raises(SqlsftError) as info:
        resolve_target(None, None, None)  # the test session's state folder records no server
    assert "sqlsft serve" in str(info.value) and "--url" in str(info.value)


def test_parse_auth():
    assert parse_auth(None) is None
    assert parse_auth("ann:s3:cret") == ("ann", "s3:cret")
    for bad in ("ann", "ann:", ":pw"):
        with pytest.raises(SqlsftError, match="USER:PASSWORD"):
            parse_auth(bad)


def test_result_panel_shows_table_errors_and_escapes_values():
    table = result_html("```sql\nSELECT name, id FROM employees WHERE dept = 'eng' ORDER BY id\n```", SCHEMA)
    assert "<th>name</th>" in table and "<td>Ann</td>" in table and "2 rows" in table
    assert "SELECT name, id FROM employees" in table
    error = result_html("SELECT nope FROM employees", SCHEMA)
    assert "SQLite error" in error and "no such column" in error
    assert "No SQL found" in result_html("I am not sure.", SCHEMA)
    assert "Schema" in result_html("SELECT 1", "CREATE TABLE (")
    hostile = result_html("SELECT '<script>alert(1)</script>' AS x", SCHEMA)
    assert "<script>" not in hostile and "&lt;script&gt;" in hostile
    assert "Refused" in result_html("SELECT load_extension('x')", SCHEMA)


def test_result_panel_compares_with_the_expected_query():
    match = result_html(SCRIPTED_ANSWER, SCHEMA, expected="SELECT COUNT(id) FROM employees")
    assert "✓ Match" in match and "Expected" in match
    wider = result_html("SELECT id, name FROM employees", SCHEMA, expected="SELECT name FROM employees")
    assert "with extra columns" in wider
    mismatch = result_html(
        SCRIPTED_ANSWER, SCHEMA, expected="SELECT COUNT(*) FROM employees WHERE dept = 'eng'"
    )
    assert "✗ Mismatch" in mismatch
    assert "no SQL in the answer" in result_html("no idea", SCHEMA, expected="SELECT 1")
    ordered = result_html(
        "SELECT id FROM employees ORDER BY id DESC", SCHEMA, expected="SELECT id FROM employees ORDER BY id"
    )
    assert "✗ Mismatch" in ordered


def test_server_down_is_a_readable_problem():
    target = ChatTarget(f"http://127.0.0.1:{free_port()}/v1", "local", API_KEY, "--url")
    with pytest.raises(ServerProblem) as info:
        list(stream_answer(target, [{"role": "user", "content": "hi"}], 8))
    message = str(info.value)
    assert message.startswith("Cannot reach the model server") and "sqlsft serve" in message
    assert API_KEY not in message


def test_cli_errors_are_one_line(tmp_path):
    env = {**os.environ, "SQLSFT_CACHE_DIR": str(tmp_path / "cache")}
    out = subprocess.run([*SQLSFT, "chat"], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "No model server is running" in out.stderr and "--url" in out.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = subprocess.run(
            [*SQLSFT, "chat", "--url", "http://127.0.0.1:9/v1", "--port", str(port)],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert f"Cannot listen on 127.0.0.1:{port}" in out.stderr and "--port" in out.stderr


# ---------------------------------------------------------------- a served model and the page in a browser


def _wait_for_page(url: str, chat: tuple[subprocess.Popen, Path], timeout_s: float = 180) -> None:
    proc, log = chat
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"sqlsft chat exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"sqlsft chat did not answer at {url} within {timeout_s} s:\n{log.read_text()}")


def _start_chat(args: list[str], folder: Path, env: dict) -> tuple[subprocess.Popen, Path]:
    log = folder / f"chat-{args[args.index('--port') + 1]}.log"
    with log.open("w") as handle:
        return subprocess.Popen(
            [*SQLSFT, "chat", *args], stdout=handle, stderr=subprocess.STDOUT, env=env
        ), log


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def chat_pages(tiny_model_dir, tmp_path_factory):
    """A model served by `sqlsft serve --engine transformers` and two `sqlsft chat` pages: one talking to it,
    one pointed at a port where nothing listens (behind --auth). The pages start while the model loads."""
    from tests.scripted_model import build_scripted_model

    work = tmp_path_factory.mktemp("chat")
    env = {**os.environ, "SQLSFT_API_KEY": API_KEY, "GRADIO_ANALYTICS_ENABLED": "False"}
    serve_env = {k: v for k, v in env.items() if k != "SQLSFT_API_KEY"}  # transformers serve takes no key
    down_port, serve_port, live_port = free_port(), free_port(), free_port()
    api = f"http://127.0.0.1:{serve_port}/v1"
    auth = ["--auth", "tester:pw-4711"]
    down = _start_chat(
        ["--url", f"http://127.0.0.1:{free_port()}/v1", "--port", str(down_port), *auth], work, env
    )
    live = _start_chat(["--url", api, "--port", str(live_port), "--max-tokens", "32"], work, serve_env)
    try:
        model_dir = build_scripted_model(tiny_model_dir, work / "scripted", SCRIPTED_ANSWER)
        served = subprocess.run(
            [
                *SQLSFT,
                "serve",
                str(model_dir),
                "--engine",
                "transformers",
                "--port",
                str(serve_port),
                "--detach",
            ],
            capture_output=True,
            text=True,
            env=serve_env,
            timeout=600,
        )
        assert served.returncode == 0, served.stdout + served.stderr
        _wait_for_page(f"http://127.0.0.1:{down_port}/", down)
        _wait_for_page(f"http://127.0.0.1:{live_port}/", live)
        yield {"live": f"http://127.0.0.1:{live_port}/", "down": f"http://127.0.0.1:{down_port}/", "api": api}
    finally:
        for proc, _ in (down, live):
            _stop(proc)
        subprocess.run([*SQLSFT, "server", "stop", "--port", str(serve_port)], env=serve_env, timeout=60)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path("/usr/bin/chromium").exists():
        pytest.fail("Debian's chromium is missing: apt-get install -y chromium")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
            ],
        )
        yield instance
        instance.close()


def _ask(page, question: str, schema: str, expected: str = "") -> None:
    page.locator("#sqlsft-question textarea").fill(question)
    page.locator("#sqlsft-schema textarea").fill(schema)
    page.locator("#sqlsft-expected textarea").fill(expected)
    page.locator("#sqlsft-send").click()


@pytest.mark.slow
def test_served_model_streams_and_wrong_names_are_explained(chat_pages):
    target = ChatTarget(chat_pages["api"], "local", "EMPTY", "--url")
    messages = prompt_messages(load_templates(), "How many employees are there?", SCHEMA)
    pieces = list(stream_answer(target, messages, 32))
    assert pieces[-1] == SCRIPTED_ANSWER
    assert len(pieces) >= 3 and all(
        later.startswith(earlier) for earlier, later in itertools.pairwise(pieces)
    )
    recorded = resolve_target(None, None, None)  # what `sqlsft chat` without --url connects to
    assert (recorded.url, recorded.model) == (chat_pages["api"], "local") and "recorded" in recorded.source
    wrong = ChatTarget(chat_pages["api"], "no-such-model", "EMPTY", "--url")
    with pytest.raises(ServerProblem, match="does not serve a model named 'no-such-model'"):
        list(stream_answer(wrong, messages, 8))


@pytest.mark.slow
def test_page_answers_runs_the_sql_and_compares(chat_pages, browser, artifacts_dir):
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(chat_pages["live"])
    _ask(page, "How many employees are there?", SCHEMA, expected="SELECT COUNT(id) FROM employees")
    verdict = page.locator(".sqlsft-verdict").first
    verdict.wait_for(timeout=60_000)
    assert "✓ Match" in verdict.inner_text()
    chat = page.locator("#sqlsft-chatbot")
    assert SCRIPTED_ANSWER in chat.inner_text()  # the streamed answer
    assert "How many employees are there?" in chat.inner_text()
    tables = page.locator(".sqlsft-table")
    assert tables.count() == 2 and "3" in tables.first.inner_text()
    page.screenshot(path=str(artifacts_dir / "chat-answer.png"), full_page=True)
    # The same question on a schema that does not build: the panel says so.
    _ask(page, "And now?", "CREATE TABLE (")
    page.locator(".sqlsft-result .sqlsft-bad").first.wait_for(timeout=60_000)
    assert "Schema" in page.locator(".sqlsft-result").last.inner_text()
    page.screenshot(path=str(artifacts_dir / "chat-schema-error.png"), full_page=True)
    assert API_KEY not in page.content()
    page.close()


@pytest.mark.slow
def test_page_when_the_server_is_down(chat_pages, browser, artifacts_dir):
    page = browser.new_page(viewport={"width": 420, "height": 900})  # a narrow window
    page.goto(chat_pages["down"])
    page.get_by_label("username").fill("tester")
    page.get_by_label("password").fill("pw-4711")
    page.get_by_role("button", name="Login").click()
    page.locator("#sqlsft-question textarea").wait_for(timeout=30_000)
    _ask(page, "How many employees are there?", SCHEMA)
    error = page.locator(".sqlsft-error").first
    error.wait_for(timeout=60_000)
    assert "Cannot reach the model server" in error.inner_text()
    assert API_KEY not in page.content() and "pw-4711" not in page.content()
    page.screenshot(path=str(artifacts_dir / "chat-server-down-narrow.png"), full_page=True)
    page.close()


@pytest.mark.slow
def test_page_retry_and_undo(chat_pages, browser, artifacts_dir):
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(chat_pages["live"])
    _ask(page, "How many employees are there?", SCHEMA, expected="SELECT COUNT(id) FROM employees")
    verdicts = page.locator("#sqlsft-chatbot .sqlsft-verdict")
    verdicts.first.wait_for(timeout=60_000)
    assert "✓ Match" in verdicts.first.inner_text()
    # Retry answers the same question again, compared with what the expected box holds now.
    page.locator("#sqlsft-expected textarea").fill("SELECT COUNT(*) FROM employees WHERE dept = 'ops'")
    page.locator("#sqlsft-chatbot").get_by_role("button", name="Retry").last.click()
    page.locator("#sqlsft-chatbot .sqlsft-verdict.sqlsft-mismatch").wait_for(timeout=60_000)
    assert verdicts.count() == 1  # the old answer was replaced, not added to
    assert page.locator("#sqlsft-chatbot").inner_text().count("How many employees are there?") == 1
    page.screenshot(path=str(artifacts_dir / "chat-retry.png"), full_page=True)
    # Undo takes the turn back and puts the question back in the box.
    page.locator("#sqlsft-chatbot").get_by_role("button", name="Undo").last.click()
    page.wait_for_function(
        "() => document.querySelector('#sqlsft-question textarea').value.includes('How many employees')",
        timeout=30_000,
    )
    assert verdicts.count() == 0
    page.close()
