"""`sqlsft chat`: a Gradio page that asks a served model for SQL and runs its answer in the sandbox.

Each question is sent the way the model was trained: the system prompt and the user message rendered
by `sqlsft.data.prompts` (no earlier turns). Under each answer the page shows the SQL it extracted and what
that SQL returns against the user's schema (or the SQLite error); with an expected query, both results
side by side and whether they match. Any OpenAI-compatible server works.
"""

import html
import os
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlsft.common.errors import SqlsftError
from sqlsft.data.prompts import PromptTemplates, load_templates, prompt_messages
from sqlsft.sql.sandbox import QueryResult, extract_sql, query_orders_rows, results_match, run_query

DEFAULT_MODEL = "local"
API_KEY_ENV_VARS = ("SQLSFT_API_KEY", "OPENAI_API_KEY")
REQUEST_TIMEOUT_S = 120.0
SHOWN_ROWS = 20
# Chat messages the page itself writes (results, errors, notes) start with this; model text never does.
_PAGE_MARK = '<div class="sqlsft-'


@dataclass(frozen=True)
class ChatTarget:
    """The server the page talks to. `api_key` is never shown in the page or printed."""

    url: str
    model: str
    api_key: str
    source: str  # "--url" or "recorded server (pid N)"

    @property
    def display_url(self) -> str:
        return redact_url(self.url)


def redact_url(url: str) -> str:
    """The URL without any user:password part."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def _recorded_servers() -> list[Any]:
    try:
        from sqlsft.serve.server import recorded_servers
    except ImportError:  # the serve stage is optional for chat: --url always works
        return []
    return list(recorded_servers())


def resolve_target(url: str | None, model: str | None, api_key: str | None) -> ChatTarget:
    """--url wins; else the server `sqlsft serve --detach` recorded; else a clear error."""
    env_key = next((os.environ[v] for v in API_KEY_ENV_VARS if os.environ.get(v)), None)
    if url:
        url = url.rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise SqlsftError(
                f"--url '{url}' is not an http(s) URL.", "For example --url http://127.0.0.1:8000/v1."
            )
        return ChatTarget(url, model or DEFAULT_MODEL, api_key or env_key or "EMPTY", "--url")
    servers = _recorded_servers()
    if not servers:
        raise SqlsftError(
            "No model server is running (none recorded by `sqlsft serve`).",
            "Start one with `sqlsft serve RUN --detach`, or pass --url http://HOST:PORT/v1 for any "
            "OpenAI-compatible server.",
        )
    server = max(servers, key=lambda s: getattr(s, "started_at", 0))  # the newest, when several run
    return ChatTarget(
        url=str(server.url).rstrip("/"),
        model=model or getattr(server, "model_name", None) or DEFAULT_MODEL,
        api_key=api_key or getattr(server, "api_key", None) or env_key or "EMPTY",
        source=f"recorded server (pid {getattr(server, 'pid', '?')})",
    )


def parse_auth(auth: str | None) -> tuple[str, str] | None:
    if not auth:
        return None
    user, sep, password = auth.partition(":")
    if not sep or not user or not password:
        raise SqlsftError("--auth must look like USER:PASSWORD (both parts non-empty).")
    return user, password


# ---------------------------------------------------------------------------------------------------
# Questions in, messages out


_WORKSHOP = re.compile(
    r"^\s*Prompt:\s*\n?(?P<prompt>.*?)\n\s*Schema:\s*\n?(?P<schema>.*)$", re.DOTALL | re.IGNORECASE
)


def parse_workshop_message(text: str) -> tuple[str, str] | None:
    """(question, schema) from a message in the workshop's `Prompt:` / `Schema:` format, else None."""
    match = _WORKSHOP.match(text or "")
    if not match:
        return None
    schema = match["schema"].strip()
    fenced = re.fullmatch(r"```[A-Za-z]*\s*\n?(.*?)\n?```", schema, re.DOTALL)
    return match["prompt"].strip(), (fenced.group(1) if fenced else schema).strip()


def _message_text(message: dict) -> str:
    """A chat message's text, whether Gradio handed it back as a string or as normalized parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


# ---------------------------------------------------------------------------------------------------
# Talking to the server


class ServerProblem(Exception):
    """Something about the server the user should read in the page (never a stack trace)."""


def _client(target: ChatTarget):
    from openai import OpenAI

    return OpenAI(base_url=target.url, api_key=target.api_key, timeout=REQUEST_TIMEOUT_S, max_retries=0)


def _explain(exc: Exception, target: ChatTarget) -> str:
    import openai

    where = f"{target.display_url}"
    if isinstance(exc, openai.APITimeoutError):
        return f"The model server at {where} did not answer within {REQUEST_TIMEOUT_S:.0f} s."
    if isinstance(exc, openai.APIConnectionError):
        return (
            f"Cannot reach the model server at {where}. Start one with `sqlsft serve RUN --detach`, "
            "or restart `sqlsft chat` with --url pointing at a running server."
        )
    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        return (
            f"The server at {where} refused the API key. Pass --api-key or set "
            f"{' or '.join(API_KEY_ENV_VARS)}."
        )
    if isinstance(exc, openai.APIStatusError):
        detail = _server_detail(exc)
        if exc.status_code == 404 or "model" in detail.lower():
            return (
                f"The server at {where} does not serve a model named '{target.model}'"
                f"{_available_models(target)}. Restart `sqlsft chat` with --model NAME. ({detail})"
            )
        return f"The server at {where} answered {exc.status_code}: {detail}"
    return f"The request to {where} failed: {type(exc).__name__}: {exc}"


def _server_detail(exc) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):  # OpenAI style {"error": {"message"}}, FastAPI style {"detail"}
        inner = body.get("error", body)
        message = (inner.get("message") or inner.get("detail")) if isinstance(inner, dict) else inner
        if message:
            return " ".join(str(message).split())[:300]
    return " ".join(str(getattr(exc, "message", exc)).split())[:300]


def _available_models(target: ChatTarget) -> str:
    try:
        names = [m.id for m in _client(target).models.list().data]
    except Exception:
        return ""
    return f" (it serves: {', '.join(names[:5])})" if names else ""


def stream_answer(target: ChatTarget, messages: list[dict], max_tokens: int) -> Iterator[str]:
    """The answer so far, after each streamed piece. Raises ServerProblem with a readable message."""
    text = ""
    try:
        stream = _client(target).chat.completions.create(
            model=target.model, messages=messages, temperature=0, max_tokens=max_tokens, stream=True
        )
        with stream:
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta and chunk.choices[0].delta.content:
                    text += chunk.choices[0].delta.content
                    yield text
    except Exception as exc:
        message = _explain(exc, target)
        if target.api_key not in ("", "EMPTY"):
            message = message.replace(target.api_key, "***")
        raise ServerProblem(message) from exc


# ---------------------------------------------------------------------------------------------------
# What the page shows under an answer


def _cell(value: Any) -> str:
    if value is None:
        return '<span class="sqlsft-null">NULL</span>'
    if isinstance(value, bytes):
        return f"<i>{len(value)} bytes</i>"
    if isinstance(value, float):
        value = f"{value:.6g}"
    return html.escape(str(value))


def result_table_html(result: QueryResult) -> str:
    if result.status == "schema_error":
        return f'<div class="sqlsft-bad">{html.escape(result.error or "")}</div>'
    if not result.ok:
        label = {"timeout": "Stopped", "denied": "Refused"}.get(result.status, "SQLite error")
        return f'<div class="sqlsft-bad"><b>{label}:</b> {html.escape(result.error or result.status)}</div>'
    if not result.columns:
        return '<div class="sqlsft-meta">The statement ran; it returns no rows.</div>'
    head = "".join(f"<th>{html.escape(c)}</th>" for c in result.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in result.rows[:SHOWN_ROWS]
    )
    more = len(result.rows) - SHOWN_ROWS
    count = f"{len(result.rows)}{'+' if result.truncated else ''} row{'s' if len(result.rows) != 1 else ''}"
    note = f" · showing {SHOWN_ROWS}" if more > 0 else ""
    return (
        f'<div class="sqlsft-meta">{count} · {result.elapsed_s * 1000:.0f} ms{note}</div>'
        f'<div class="sqlsft-scroll"><table class="sqlsft-table"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def _sql_block(sql: str) -> str:
    return f'<pre class="sqlsft-sql"><code>{html.escape(sql)}</code></pre>'


def result_html(answer: str, schema: str, expected: str = "") -> str:
    """The block under an answer: extracted SQL and its result, and the expected query's when given."""
    sql = extract_sql(answer)
    expected = (expected or "").strip()
    if sql:
        model_result = run_query(schema, sql, include_state=True)
        model_part = _sql_block(sql) + result_table_html(model_result)
    else:
        model_part = '<div class="sqlsft-bad">No SQL found in the answer.</div>'
        model_result = None
    if not expected:
        return f'<div class="sqlsft-result"><div class="sqlsft-title">Result</div>{model_part}</div>'
    expected_sql = extract_sql(expected) or expected
    expected_result = run_query(schema, expected_sql, include_state=True)
    expected_part = _sql_block(expected_sql) + result_table_html(expected_result)
    verdict = _verdict(expected_result, model_result, expected_sql)
    return (
        f'<div class="sqlsft-result">{verdict}<div class="sqlsft-compare">'
        f'<div class="sqlsft-side"><div class="sqlsft-title">Model</div>{model_part}</div>'
        f'<div class="sqlsft-side"><div class="sqlsft-title">Expected</div>{expected_part}</div>'
        "</div></div>"
    )


def _verdict(expected: QueryResult, predicted: QueryResult | None, expected_sql: str) -> str:
    if not expected.ok:
        return '<div class="sqlsft-verdict sqlsft-unknown">? The expected query does not run</div>'
    if predicted is None:
        return '<div class="sqlsft-verdict sqlsft-mismatch">✗ Mismatch: no SQL in the answer</div>'
    if not predicted.ok:
        return '<div class="sqlsft-verdict sqlsft-mismatch">✗ Mismatch: the answer does not run</div>'
    ordered = query_orders_rows(expected_sql)
    if results_match(expected, predicted, ordered=ordered):
        return '<div class="sqlsft-verdict sqlsft-match">✓ Match</div>'
    if results_match(expected, predicted, ordered=ordered, allow_extra_columns=True):
        return '<div class="sqlsft-verdict sqlsft-match">✓ Match (with extra columns)</div>'
    return '<div class="sqlsft-verdict sqlsft-mismatch">✗ Mismatch</div>'


def _page_message(kind: str, text: str) -> dict:
    body = re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))  # our messages quote commands in `...`
    return {"role": "assistant", "content": f'{_PAGE_MARK}{kind}">{body}</div>'}


# ---------------------------------------------------------------------------------------------------
# The page


CSS = """
.sqlsft-result, .sqlsft-error, .sqlsft-note { font-size: 0.92em; }
.sqlsft-title { font-weight: 600; margin: 0.2em 0; }
.sqlsft-meta { color: var(--body-text-color-subdued); font-size: 0.9em; margin: 0.2em 0; }
.sqlsft-sql { margin: 0.3em 0; white-space: pre-wrap; word-break: break-word; }
.sqlsft-scroll { overflow-x: auto; max-width: 100%; }
.sqlsft-table { border-collapse: collapse; font-size: 0.9em; }
.sqlsft-table th, .sqlsft-table td { border: 1px solid var(--border-color-primary); padding: 2px 8px; }
.sqlsft-null { color: var(--body-text-color-subdued); font-style: italic; }
.sqlsft-bad, .sqlsft-error { color: var(--error-text-color, #b91c1c); }
.sqlsft-error { border-left: 4px solid var(--error-border-color, #ef4444); padding: 0.3em 0.7em; }
.sqlsft-note { color: var(--body-text-color-subdued); font-style: italic; }
.sqlsft-compare { display: flex; flex-wrap: wrap; gap: 1em; }
.sqlsft-side { flex: 1 1 240px; min-width: 0; }
.sqlsft-verdict { font-weight: 700; margin-bottom: 0.4em; }
.sqlsft-match { color: #15803d; }
.sqlsft-mismatch { color: #b91c1c; }
.sqlsft-schema textarea, .sqlsft-expected textarea { font-family: var(--font-mono); font-size: 0.85em; }
"""


def load_examples(n: int = 4) -> list[dict]:
    """Rows (sql_prompt, sql_context, sql) from the newest prepared test split, else the builtin set."""
    try:
        from sqlsft.data.prepare import latest_prepared_examples

        rows = latest_prepared_examples(n)
    except (ImportError, SqlsftError):
        rows = None
    if not rows:
        try:
            from sqlsft.data.builtin.generator import generate_builtin_rows
        except ImportError:
            return []
        rows = generate_builtin_rows(50)
        step = max(1, len(rows) // n)  # spread over the set, not n questions about one table
        rows = rows[::step][:n]
    return [{k: row[k] for k in ("sql_prompt", "sql_context", "sql")} for row in rows]


def build_app(target: ChatTarget, templates: PromptTemplates, examples: list[dict], max_tokens: int = 512):
    import gradio as gr

    system_prompt = prompt_messages(templates, "", "")[0]["content"]

    def ask(history: list[dict], question: str, schema: str, expected: str):
        history = list(history or [])
        pasted = parse_workshop_message(question or "")
        if pasted:
            question, schema = pasted[0], pasted[1] or schema
        if not (question or "").strip():
            gr.Warning("Type a question first.")
            yield history, question
            return
        yield from _answer(history, question.strip(), schema or "", expected or "", clear_question=True)

    def _answer(history: list[dict], question: str, schema: str, expected: str, clear_question: bool = False):
        keep = "" if clear_question else gr.skip()
        try:
            messages = prompt_messages(templates, question, schema)
        except SqlsftError as exc:  # a user template that does not render
            yield [*history, _page_message("error", str(exc))], keep
            return
        history = [*history, {"role": "user", "content": messages[1]["content"]}]
        history.append({"role": "assistant", "content": ""})
        yield history, keep
        answer = ""
        try:
            for answer in stream_answer(target, messages, max_tokens):
                history[-1] = {"role": "assistant", "content": answer}
                yield history, keep
        except ServerProblem as problem:
            history[-1] = _page_message("error", str(problem))
            yield history, keep
            return
        if not answer:
            history[-1] = _page_message("error", "The model returned an empty answer.")
            yield history, keep
            return
        history.append({"role": "assistant", "content": result_html(answer, schema, expected)})
        yield history, keep

    def _rerun(history: list[dict], user_text: str, schema: str, expected: str):
        parsed = parse_workshop_message(user_text)
        question, turn_schema = parsed if parsed else (user_text, schema)
        yield from _answer(history, question, turn_schema, expected)

    def retry(history: list[dict], schema: str, expected: str):
        history = list(history or [])
        last_user = max((i for i, m in enumerate(history) if m["role"] == "user"), default=None)
        if last_user is None:
            yield history, gr.skip()
            return
        yield from _rerun(history[:last_user], _message_text(history[last_user]), schema, expected)

    def edit(history: list[dict], schema: str, expected: str, edit_data: gr.EditData):
        index = edit_data.index[0] if isinstance(edit_data.index, list | tuple) else edit_data.index
        value = edit_data.value
        text = value if isinstance(value, str) else _message_text({"content": value})
        yield from _rerun(list(history or [])[:index], text, schema, expected)

    def undo(history: list[dict], undo_data: gr.UndoData):
        history = list(history or [])
        last_user = max((i for i, m in enumerate(history) if m["role"] == "user"), default=None)
        if last_user is None:
            return history, gr.skip(), gr.skip()
        parsed = parse_workshop_message(_message_text(history[last_user]))
        if parsed is None:
            return history[:last_user], _message_text(history[last_user]), gr.skip()
        return history[:last_user], parsed[0], parsed[1]

    def stop(history: list[dict]):
        history = list(history or [])
        if (
            history
            and history[-1]["role"] == "assistant"
            and not _message_text(history[-1]).startswith(_PAGE_MARK)
        ):
            history.append(_page_message("note", "Stopped."))
        return history

    with gr.Blocks(title="sqlsft chat") as demo:
        gr.Markdown(
            f"### sqlsft chat\nModel **{html.escape(target.model)}** at `{html.escape(target.display_url)}`. "
            "Each question is answered on its own, in the model's training format; the SQL in the answer "
            "runs against your schema in a sandboxed in-memory SQLite database."
        )
        chatbot = gr.Chatbot(
            label="Conversation",
            height=520,
            editable="user",
            elem_id="sqlsft-chatbot",
            buttons=["copy"],
            feedback_options=None,
            placeholder="Ask a question about your schema, or pick an example below.",
        )
        with gr.Row(equal_height=True):
            question = gr.Textbox(
                label="Question",
                placeholder="How many customers live in Paris?  (a pasted 'Prompt: … Schema: …' message works too)",
                lines=2,
                max_lines=8,
                scale=4,
                min_width=240,
                elem_id="sqlsft-question",
            )
            with gr.Column(scale=1, min_width=120), gr.Row():
                send = gr.Button("Send", variant="primary", elem_id="sqlsft-send", min_width=60)
                stop_btn = gr.Button("Stop", variant="stop", elem_id="sqlsft-stop", min_width=60)
        with gr.Row():
            schema = gr.Textbox(
                label="Schema (CREATE TABLE and INSERT statements)",
                lines=6,
                max_lines=20,
                min_width=280,
                elem_id="sqlsft-schema",
                elem_classes=["sqlsft-schema"],
            )
            expected = gr.Textbox(
                label="Expected query (optional): compare results",
                lines=6,
                max_lines=20,
                min_width=280,
                elem_id="sqlsft-expected",
                elem_classes=["sqlsft-expected"],
            )
        if examples:
            gr.Examples(
                examples=[[e["sql_prompt"], e["sql_context"], e["sql"]] for e in examples],
                inputs=[question, schema, expected],
                example_labels=[_shorten(e["sql_prompt"]) for e in examples],
                label="Examples",
            )
        with gr.Accordion("Server and system prompt", open=False):
            gr.Markdown(
                f"- Server: `{html.escape(target.display_url)}` ({html.escape(target.source)})\n"
                f"- Model: `{html.escape(target.model)}`, temperature 0, at most {max_tokens} new tokens\n"
                f"- Template: `{html.escape(templates.name)}`\n\n**System prompt**\n\n> {html.escape(system_prompt)}"
            )
        clear = gr.ClearButton([chatbot, question], value="Clear conversation", size="sm")

        inputs = [chatbot, question, schema, expected]
        events = [
            send.click(ask, inputs, [chatbot, question]),
            question.submit(ask, inputs, [chatbot, question]),
            chatbot.retry(retry, [chatbot, schema, expected], [chatbot, question]),
            chatbot.edit(edit, [chatbot, schema, expected], [chatbot, question]),
        ]
        chatbot.undo(undo, [chatbot], [chatbot, question, schema])
        stop_btn.click(stop, [chatbot], [chatbot], cancels=events, queue=False)
        clear.click(lambda: None, None, None, cancels=events, queue=False)
    return demo


def _shorten(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _check_port(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise SqlsftError(
                f"Cannot listen on {host}:{port} ({exc.strerror}).", "Pass another --port."
            ) from exc


def launch_chat(
    url: str | None = None,
    model: str | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 7860,
    share: bool = False,
    auth: str | None = None,
    api_key: str | None = None,
    template: str | None = None,
    max_tokens: int = 512,
    console=None,
) -> None:
    """Start the chat page and block until Ctrl+C."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    credentials = parse_auth(auth)
    target = resolve_target(url, model, api_key)
    templates = load_templates(template)
    _check_port(host, port)
    if console is not None:
        console.print(
            f"Chatting with model [bold]{target.model}[/] at {target.display_url} ({target.source}).",
            soft_wrap=True,
        )
        if host not in ("127.0.0.1", "localhost", "::1") and credentials is None:
            console.print(
                f"[yellow]warning:[/] listening on {host} without --auth: anyone who can reach it can use it.",
                soft_wrap=True,
            )
    demo = build_app(target, templates, load_examples(), max_tokens=max_tokens)
    demo.queue(default_concurrency_limit=4)
    demo.launch(
        server_name=host,
        server_port=port,
        share=share,
        auth=credentials,
        inbrowser=False,
        prevent_thread_lock=True,
        quiet=True,
        ssr_mode=False,
        css=CSS,
        footer_links=[],
    )
    if console is not None:
        console.print(f"Open {demo.local_url} (Ctrl+C to stop).", soft_wrap=True, highlight=False)
        if demo.share_url:
            console.print(f"Public link: {demo.share_url}", soft_wrap=True, highlight=False)
    try:
        demo.block_thread()
    finally:
        demo.close()
