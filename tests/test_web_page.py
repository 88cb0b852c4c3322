"""`sqlsft export --format web` and `sqlsft chat --web`: the page in headless Chromium (Debian's), with every
request outside 127.0.0.1 blocked; the prompt it builds, byte for byte against Python's; hostile answers and
results shown as text; the SQL time limit; the server's headers; bad input as one line."""

import http.server
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import zipfile
from functools import partial
from pathlib import Path

import pytest

from sqlsft.chat.turns import build_turn
from sqlsft.data.prompts import load_templates, prompt_messages
from sqlsft.export.web.bundle import write_bundle
from sqlsft.export.web.in_browser import PagePrompts
from sqlsft.export.web.server import CONTENT_SECURITY_POLICY, open_page_server
from sqlsft.models.chat_template import gemma3_chat_template
from tests.cli_runner import SQLSFT, invoke, one_error_line
from tests.test_chat import CUSTOMERS, ROUTES, OriginListener, hostile, hostile_cells_sql, hostile_prose

SCHEMA = (
    "CREATE TABLE employees (id INT PRIMARY KEY, name VARCHAR(50), dept VARCHAR(20));\n"
    "INSERT INTO employees VALUES (1, 'Ann', 'eng'), (2, 'Bob', 'eng'), (3, 'Cid', 'ops');"
)
ANSWER = "SELECT COUNT(*) FROM employees"  # what the tiny model is set to write
LOOP_FOREVER = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
PROMPTS = {"template_name": "text-to-sql", "special_tokens": {"bos_token": "<bos>", "eos_token": "<eos>"}}


def tricky_rows() -> list[tuple[str, str]]:
    long_schema = "CREATE TABLE t (id INT, note TEXT);\n" + "\n".join(
        f"INSERT INTO t VALUES ({i}, 'row {i} «ü» -- not a comment');" for i in range(400)
    )
    templates = load_templates()
    pasted = prompt_messages(
        templates, "How many rows are in a?", "CREATE TABLE a (x INT); INSERT INTO a VALUES (1);"
    )
    return [
        (
            "Wie viele Mitarbeiter? 社員は何人？ 🧑‍💻 café (e\u0301)",
            "CREATE TABLE émployés (nom TEXT, 名前 TEXT);",
        ),
        (
            'It\'s "quoted" and `ticked`',
            "CREATE TABLE q (\"a b\" TEXT, `c` TEXT, [d] INT); INSERT INTO q VALUES ('it''s', 'x', 1);",
        ),
        (
            "comments",
            "-- a comment\nCREATE TABLE c (a INT); /* block\n comment */ INSERT INTO c VALUES (1); -- end",
        ),
        ("empty schema", ""),
        ("whitespace  \t around  \n", "   \n  CREATE TABLE w (a INT)   \n\n"),
        ("windows\r\nline\r\nends", "CREATE TABLE r (a INT);\r\nINSERT INTO r VALUES (1);\r\n"),
        (
            "{{ sql }} {% if x %}jinja-looking{% endif %} {# not a comment #}",
            'CREATE TABLE j ("{{a}}" TEXT);',
        ),
        ("back\\slash \\n and tab\tinside", "CREATE TABLE b (a TEXT DEFAULT '\\');"),
        ("very long schema", long_schema),
        ("no semicolons", "CREATE TABLE s (a INT) INSERT INTO s VALUES (1)"),
        (
            "mysql flavour",
            "CREATE TABLE m (id INT AUTO_INCREMENT PRIMARY KEY, v ENUM('a','b')) ENGINE=InnoDB;",
        ),
        (pasted[1]["content"], "ignored: the pasted message brings its schema"),
        ("", ""),
    ]


def reference_prompt(question: str, schema: str) -> dict:
    """What `sqlsft chat` sends for a question (build_turn) and the text transformers renders for it."""
    from transformers.utils.chat_template_utils import render_jinja_template

    turn = build_turn(load_templates(), question, schema)
    text = render_jinja_template(
        [turn.messages],
        chat_template=gemma3_chat_template(),
        add_generation_prompt=True,
        **PROMPTS["special_tokens"],
    )[0][0]
    return {"messages": turn.messages, "prompt": text}


# ---------------------------------------------------------------- quick tests


def test_the_python_the_page_runs_renders_what_transformers_renders():
    from sqlsft.data.builtin.generator import generate_builtin_rows

    templates = load_templates()
    page = PagePrompts({**PROMPTS, "templates": templates.sources, "chat_template": gemma3_chat_template()})
    rows = [(r["sql_prompt"], r["sql_context"]) for r in generate_builtin_rows(40, verify=False)]
    for question, schema in rows + tricky_rows():
        mine, theirs = page.ask(question, schema), reference_prompt(question, schema)
        assert (mine["messages"], mine["prompt"]) == (theirs["messages"], theirs["prompt"]), question
    question, schema = rows[0]
    assert page.ask(question, schema)["messages"] == prompt_messages(templates, question, schema)


def test_the_bundle_imports_nothing_from_outside_it(tmp_path):
    """python.zip alone (no site-packages) is enough for the page's Python: what Pyodide gets."""
    bundle = write_bundle(tmp_path / "python.zip")
    assert write_bundle(tmp_path / "again.zip").read_bytes() == bundle.read_bytes()  # reproducible
    names = zipfile.ZipFile(bundle).namelist()
    assert "sqlsft/data/prompts.py" in names and not any(n.endswith(".so") for n in names)
    script = (
        f"import sys; sys.path.insert(0, {str(bundle)!r}); "
        "import sqlsft.export.web.in_browser as m, sqlparse, jinja2; "
        "assert all(p.startswith(sys.path[0]) for p in (m.__file__, sqlparse.__file__, jinja2.__file__)); "
        "print(m.answer_sql('```sql\\nSELECT 1; DROP TABLE t\\n```'))"
    )
    done = subprocess.run([sys.executable, "-S", "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "'statement': 'SELECT 1'" in done.stdout and "'ignored': 1" in done.stdout


def test_the_server_sends_isolation_and_policy_headers(tmp_path):
    (tmp_path / "index.html").write_text("<!doctype html><p>hi</p>")
    (tmp_path / "x.wasm").write_bytes(b"\0asm")
    (tmp_path / "sub").mkdir()
    server = open_page_server(tmp_path).start_in_thread()
    try:
        for path, kind in (("", "text/html"), ("x.wasm", "application/wasm")):
            with urllib.request.urlopen(server.url + path, timeout=10) as response:
                headers = response.headers
            assert headers["Content-Type"].startswith(kind)
            assert headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
            assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
            assert headers["Cross-Origin-Embedder-Policy"] == "require-corp"
        with pytest.raises(urllib.error.HTTPError) as listing:
            urllib.request.urlopen(server.url + "sub/", timeout=10)
        assert listing.value.code == 404 and "Cross-Origin" in str(listing.value.headers)
    finally:
        server.close()


def test_bad_input_is_one_line(tmp_path):
    empty = tmp_path / "no-weights"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    line = one_error_line(invoke("export", str(empty), "--format", "web"))
    assert "weights" in line or "safetensors" in line, line
    assert "Unknown export format 'html'" in one_error_line(invoke("export", "--format", "html"))
    assert "Unknown quantization 'q9'" in one_error_line(invoke("export", "--format", "web", "--quant", "q9"))
    assert "does not exist" in one_error_line(invoke("chat", "--web", str(tmp_path / "missing.gguf")))
    assert "is for --web" in one_error_line(invoke("chat", "some-run"))
    shown = invoke("export", "--format", "web", "--dry-run")
    assert shown.exit_code == 0 and "npm install --prefix" in shown.stdout and "wllama@" in shown.stdout


def test_chat_web_serves_a_page_folder_and_prints_the_url(tmp_path):
    (tmp_path / "index.html").write_text("<!doctype html><p>page</p>")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [SQLSFT, "chat", "--web", str(tmp_path), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = [proc.stdout.readline() for _ in range(2)]
        assert f"Open http://127.0.0.1:{port}/" in "".join(lines), lines
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
            assert response.read() == b"<!doctype html><p>page</p>"
            assert response.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
    finally:
        proc.terminate()
        proc.wait(timeout=15)


# ---------------------------------------------------------------- the page in a browser


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory) -> Path:
    """A tiny Gemma 3 set to answer ANSWER to any prompt, exported to GGUF by llama.cpp's converter."""
    from sqlsft.export.gguf import plan_export, run_export
    from tests.scripted_model import build_scripted_model
    from tests.tiny_gguf_model import build_tiny_spm_gemma, llama_cpp_or_skip

    llama_cpp_or_skip()
    work = tmp_path_factory.mktemp("web-tiny")
    model = build_scripted_model(build_tiny_spm_gemma(work / "base"), work / "scripted", ANSWER)
    plan = plan_export(model, work / "gguf", "q8_0", name="tiny", threads=2)
    run_export(plan, log=lambda line: None)
    return plan.output


@pytest.fixture(scope="module")
def runtime():
    from sqlsft.export.web.runtime import ensure_runtime

    if shutil.which("npm") is None:
        pytest.skip("npm is not installed: bash scripts/setup.sh --web")
    return ensure_runtime()


@pytest.fixture(scope="module")
def listener():
    origin = OriginListener()
    yield origin
    origin.close()


def _write(tiny_gguf, folder: Path, examples: list[dict]) -> Path:
    from sqlsft.export.web.page import write_page

    return write_page(tiny_gguf, folder, label="tiny scripted model", examples=examples).folder


@pytest.fixture(scope="module")
def tiny_page(tiny_gguf, runtime, tmp_path_factory):
    examples = [
        {
            "sql_prompt": "How many employees are there?",
            "sql_context": SCHEMA,
            "sql": "SELECT COUNT(id) FROM employees",
        }
    ]
    folder = _write(tiny_gguf, tmp_path_factory.mktemp("web-page") / "web", examples)
    server = open_page_server(folder).start_in_thread()
    yield server
    server.close()


RECORD_CSP_VIOLATIONS = (
    "window.cspViolations = [];"
    "document.addEventListener('securitypolicyviolation', e => "
    "window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));"
)


def open_page(browser, url: str, blocked: list[str], allowed_port: int | None = None):
    """The page with every request outside 127.0.0.1 (and to any other port of it) blocked and recorded."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    port = allowed_port or int(url.rsplit(":", 1)[1].split("/")[0])

    def route(request_route) -> None:
        target = request_route.request.url
        if target.startswith((f"http://127.0.0.1:{port}/", "blob:", "data:")):
            request_route.continue_()
        else:
            blocked.append(target)
            request_route.abort()

    page.route("**/*", route)
    page.add_init_script(RECORD_CSP_VIOLATIONS)
    page.goto(url)
    page.wait_for_function(
        "() => ['ready', 'error'].includes(window.sqlsftPage && window.sqlsftPage.state)", timeout=120_000
    )
    assert page.evaluate("window.sqlsftPage.error") is None
    return page


def ask(page, question: str, schema: str, expected: str = "") -> dict:
    page.fill("#question", question)
    page.fill("#schema", schema)
    page.fill("#expected", expected)
    page.click("#ask")
    page.wait_for_function("() => window.sqlsftPage.last && window.sqlsftPage.last.done", timeout=60_000)
    return page.evaluate(
        "(() => { const l = {...window.sqlsftPage.last}; return JSON.parse(JSON.stringify(l)); })()"
    )


SCRIPT_ANSWERS = """answers => {
    // Stands in for the model (as ScriptedServer does for `sqlsft chat`): streams the answer whose keyword
    // the prompt holds, in pieces, through the page's own path.
    window.sqlsftPage.wllama.createCompletion = async (options) => {
        const key = Object.keys(answers).find(k => options.prompt.includes(k));
        const text = key === undefined ? 'SELECT 1' : answers[key];
        for (let i = 0; i < text.length; i += 7) options.onData({choices: [{text: text.slice(i, i + 7)}]});
    };
}"""


@pytest.mark.slow
def test_page_answers_and_runs_the_sql_into_a_table(tiny_page, browser, artifacts_dir):
    """Issue 13: the exported page of a tiny model, every request outside 127.0.0.1 blocked, answers a
    question with a schema and the answer's SQL runs into a result table, compared with the expected."""
    blocked: list[str] = []
    page = open_page(browser, tiny_page.url, blocked)
    assert page.evaluate("self.crossOriginIsolated") and page.evaluate("window.sqlsftPage.threads") >= 1
    assert "How many employees are there?" in page.locator("#example-list").inner_text()
    last = ask(page, "How many employees are there?", SCHEMA, expected="SELECT COUNT(id) FROM employees")
    assert last["answer"] == ANSWER and not last.get("error")
    assert page.locator("#sql").inner_text() == ANSWER
    assert page.locator("#result table td").inner_text() == "3"
    assert page.locator("#verdict").inner_text() == "✓ Match"
    assert (
        last["output_tokens"] >= 1
        and last["tokens_per_s"] > 0
        and "tokens/s" in page.locator("#speed").inner_text()
    )
    page.screenshot(path=str(artifacts_dir / "web-page.png"), full_page=True)
    # the prompt llama.cpp read is the training prompt: its token count equals llama.cpp's count of that text
    from llama_cpp import Llama

    native = Llama(model_path=str(tiny_page.folder / "model.gguf"), n_ctx=2048, verbose=False)
    assert last["prompt_tokens"] == len(native.tokenize(last["prompt"].encode(), add_bos=False, special=True))
    assert blocked == [] and page.evaluate("window.cspViolations") == []
    page.close()


@pytest.mark.slow
def test_prompts_in_the_browser_are_byte_identical(tiny_page, browser):
    """Issue 13: >= 300 builtin rows plus tricky ones, rendered by the page's own Python (Pyodide), equal
    byte for byte to what transformers renders from sqlsft's messages (and the messages to training's)."""
    from sqlsft.data.builtin.generator import generate_builtin_rows

    rows = [
        (r["sql_prompt"], r["sql_context"]) for r in generate_builtin_rows(320, verify=False)
    ] + tricky_rows()
    page = open_page(browser, tiny_page.url, [])
    shown = page.evaluate("rows => window.sqlsftPage.python({op: 'ask_many', rows})", rows)
    assert len(shown) == len(rows) >= 300 + len(tricky_rows())
    templates = load_templates()
    for (question, schema), mine in zip(rows, shown, strict=True):
        theirs = reference_prompt(question, schema)
        assert mine.get("error") is None, (question, mine)
        assert mine["messages"] == theirs["messages"], question
        assert mine["prompt"] == theirs["prompt"], question
    for (question, schema), mine in zip(rows[:320], shown, strict=False):
        assert mine["messages"] == prompt_messages(templates, question, schema)  # training's own messages
    too_big = "INSERT INTO t VALUES " + ",".join(f"({i})" for i in range(60_000)) + ";"
    error = page.evaluate("s => window.sqlsftPage.python({op: 'ask', question: 'q', schema: s})", too_big)
    assert "could not be formatted" in error["error"]
    page.close()


@pytest.mark.slow
def test_hostile_answers_results_and_examples_stay_text(tiny_gguf, runtime, browser, listener, tmp_path):
    """Answers, query results, SQLite errors and examples that try every way to make the browser fetch a URL
    are shown as text: the other origin gets nothing and the page's policy has nothing to block."""
    origin = listener.origin
    examples = [
        {"sql_prompt": hostile(ROUTES[r], origin), "sql_context": "CREATE TABLE t (a INT);", "sql": ""}
        for r in ("img", "svg-image", "iframe")
    ]
    server = open_page_server(_write(tiny_gguf, tmp_path / "web", examples)).start_in_thread()
    blocked: list[str] = []
    try:
        listener.forget()
        page = open_page(browser, server.url, blocked)
        cells = f"```sql\n{hostile_cells_sql(origin)}\n```"
        page.evaluate(
            SCRIPT_ANSWERS,
            {
                "hostile cells": f"{hostile_prose(origin)}\n{cells}",
                "hostile error": f'{hostile_prose(origin)}\n```sql\nSELECT * FROM "<img src={origin}/sqlite-error>"\n```',
            },
        )
        schema = hostile(CUSTOMERS, origin)
        last = ask(page, "hostile cells", schema, expected=hostile_cells_sql(origin))
        assert (
            last["verdict"] == "✓ Match"
            and hostile(ROUTES["img"], origin) in page.locator("#answer").inner_text()
        )
        cells_text = page.locator("#result table").inner_text()
        assert (
            "alice:4111-1111,bob:5500-0000" in cells_text and f"<img src={origin}/column-name>" in cells_text
        )
        page.screenshot(path=str(tmp_path / "hostile.png"), full_page=True)
        ask(page, "hostile error", schema)
        assert f"<img src={origin}/sqlite-error>" in page.locator("#result").inner_text()
        ask(
            page,
            "a broken schema",
            f'CREATE TABLE t (a INT); INSERT INTO "<img src={origin}/schema-error>" VALUES (1);',
        )
        assert f"{origin}/schema-error" in page.locator("#result").inner_text()
        page.get_by_text(f"{origin}/svg-image").click()
        assert page.locator("#question").input_value() == examples[1]["sql_prompt"]
        page.wait_for_timeout(1_000)
        loaders = "img, image, iframe, video, audio, source, object, embed, svg, link, style, meta, base, :not(textarea)[style]"
        found = page.locator(f"main :is({loaders})").evaluate_all(
            "e => e.map(x => x.outerHTML.slice(0, 200))"
        )
        assert found == []
        assert page.evaluate("window.cspViolations") == []
        listener.assert_untouched()
        assert blocked == []
        page.close()
    finally:
        server.close()


@pytest.mark.slow
def test_a_query_that_loops_forever_is_stopped_and_one_statement_runs(tiny_page, browser):
    page = open_page(browser, tiny_page.url, [])
    page.evaluate(
        SCRIPT_ANSWERS,
        {
            "forever": LOOP_FOREVER,
            "attach": "```sql\nATTACH DATABASE 'x.db' AS x\n```",
            "two": "SELECT 1 AS one; SELECT 2 AS two",
        },
    )
    started = time.monotonic()
    last = ask(page, "forever", SCHEMA)
    limit_s = page.evaluate("window.sqlsftPage.config.sql_time_limit_ms") / 1000
    assert last["result"]["status"] == "timeout" and time.monotonic() - started < limit_s + 10
    assert "Stopped" in page.locator("#result").inner_text()
    assert ask(page, "attach", SCHEMA)["result"]["status"] == "refused"
    two = ask(page, "two", SCHEMA)  # a fresh SQL worker runs after the stopped one
    assert two["sql"] == "SELECT 1 AS one" and two["result"]["columns"] == ["one"]
    page.close()


@pytest.mark.slow
def test_page_runs_single_threaded_without_the_isolation_headers(tiny_page, browser):
    """Any static server (here Python's own, no COOP/COEP) serves a page that works, single-threaded."""
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tiny_page.folder))
    handler.log_message = lambda *args: None
    plain = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=plain.serve_forever, daemon=True).start()
    try:
        blocked: list[str] = []
        page = open_page(browser, f"http://127.0.0.1:{plain.server_address[1]}/", blocked)
        assert (
            page.evaluate("self.crossOriginIsolated") is False
            and page.evaluate("window.sqlsftPage.threads") == 1
        )
        last = ask(page, "How many employees are there?", SCHEMA)
        assert last["answer"] == ANSWER and last["result"]["rows"] == [[3]]
        assert blocked == [] and page.evaluate("window.cspViolations") == []
        page.close()
    finally:
        plain.shutdown()
        plain.server_close()


def test_page_code_writes_text_only():
    """Untrusted text reaches the DOM as textContent: no page file builds markup from strings."""
    from sqlsft.export.web.page import PAGE_FILES, page_source_dir

    for name in PAGE_FILES:
        source = (page_source_dir() / name).read_text(encoding="utf-8")
        for sink in (
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
        ):
            assert sink not in source, (name, sink)


@pytest.mark.slow
def test_bench_web_measures_the_page_and_native_on_the_same_prompts(tiny_gguf, runtime):
    """`sqlsft bench web FILE.gguf`: the page in headless Chromium and llama-cpp-python natively, same prompts."""
    from tests.cli_runner import run_process

    result = run_process("bench", "web", str(tiny_gguf), "--prompts", "2", "--max-tokens", "8", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["prompts"] == 2 and report["page_ready_s"] > 0 and report["native_load_s"] > 0
    assert report["browser_tokens_per_s"] > 0 and report["native_tokens_per_s"] > 0
    assert len(report["prompt_tokens"]) == 2 and report["browser_share_of_native"] > 0
