"""The HTML the chat page shows: messages, the model's answer, result tables and the verdict.

Everything the model writes, every value a query returns and everything pasted into the page is
untrusted. It is shown as text, never as markup: each piece goes through `text()` (HTML-escaped, line
breaks as <br>), so no value can open a tag, end the results table or start markdown, and nothing in
it makes the browser load a URL. The chatbot renders these strings as HTML with markdown turned off
(see page.py); the page's Content-Security-Policy (app.py) is the second wall.
"""

import html
import re
from typing import Any

from sqlsft.sql.compare import Verdict, compare_results
from sqlsft.sql.sandbox import QueryResult, run_query
from sqlsft.sql.statements import extract_sql, query_orders_rows

SHOWN_ROWS = 20
# Messages the page itself writes (results, errors, notes) start with PAGE_MARK; a model's answer
# starts with ANSWER_MARK (stop() tells a cut-off answer from a finished turn by it).
PAGE_MARK = '<div class="sqlsft-'
ANSWER_MARK = '<div class="sqlsft-answer">'
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
# A line that opens or closes a ``` fence (with or without a language tag).
_FENCE_LINE = re.compile(r"^[ \t]*```[^\n]*(?:\n|$)", re.MULTILINE)


def text(value: Any) -> str:
    """Untrusted text as inert HTML: every `<`, `>`, `&` and quote escaped, line breaks as <br>.

    The result holds no raw line break, so even a markdown renderer would see one HTML block."""
    return _LINE_BREAK.sub("<br>", html.escape(str(value), quote=True))


def user_html(message: str) -> str:
    """A user turn as the chatbot shows it. Only `&`, `<` and `>` are escaped (quotes are harmless in
    text), so Gradio's edit box shows the message almost as typed; user_text() undoes it."""
    return html.escape(message, quote=False)


def user_text(shown: str) -> str:
    """The text of a user turn from what the chatbot holds (the inverse of user_html)."""
    return html.unescape(shown)


def answer_html(answer: str) -> str:
    """The model's answer as text: ``` fenced parts as code blocks, the rest as paragraphs. No
    markdown, no HTML, no links or images: a model cannot make the page fetch anything."""
    parts = _FENCE_LINE.split(answer)
    blocks = []
    for index, part in enumerate(parts):
        if index % 2:  # between an opening and a closing fence (or the end, while streaming)
            blocks.append(f'<pre class="sqlsft-code"><code>{text(part.rstrip(chr(10)))}</code></pre>')
        elif part.strip():
            blocks.append(f'<div class="sqlsft-text">{text(part.strip(chr(10)))}</div>')
    return f"{ANSWER_MARK}{''.join(blocks)}</div>"


def is_page_message(shown: str) -> bool:
    """Whether a chatbot message was written by the page (a result, error or note), not the model."""
    return shown.startswith(PAGE_MARK) and not shown.startswith(ANSWER_MARK)


def page_message(kind: str, message: str) -> dict:
    """A message from the page itself (error, note); `...` quotes a command."""
    body = re.sub(r"`([^`<>]+)`", r"<code>\1</code>", text(message))
    return {"role": "assistant", "content": f'{PAGE_MARK}{kind}">{body}</div>'}


def _cell(value: Any) -> str:
    if value is None:
        return '<span class="sqlsft-null">NULL</span>'
    if isinstance(value, bytes):
        return f"<i>{len(value)} bytes</i>"
    if isinstance(value, float):
        value = f"{value:.6g}"
    return text(value)


def result_table_html(result: QueryResult) -> str:
    if result.status == "schema_error":
        return f'<div class="sqlsft-bad">{text(result.error or "")}</div>'
    if not result.ok:
        label = {"timeout": "Stopped", "denied": "Refused"}.get(result.status, "SQLite error")
        return f'<div class="sqlsft-bad"><b>{label}:</b> {text(result.error or result.status)}</div>'
    if not result.columns:
        return '<div class="sqlsft-meta">The statement ran; it returns no rows.</div>'
    head = "".join(f"<th>{text(column)}</th>" for column in result.columns)
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
    return f'<pre class="sqlsft-sql"><code>{text(sql)}</code></pre>'


def result_html(answer: str, schema: str, expected: str = "") -> str:
    """The block under an answer: extracted SQL and its result, and the expected query's when given."""
    sql = extract_sql(answer)
    expected = (expected or "").strip()
    if sql:
        model_result = run_query(schema, sql, include_state=True, digest=True)
        model_part = _sql_block(sql) + result_table_html(model_result)
    else:
        model_part = '<div class="sqlsft-bad">No SQL found in the answer.</div>'
        model_result = None
    if not expected:
        return f'<div class="sqlsft-result"><div class="sqlsft-title">Result</div>{model_part}</div>'
    expected_sql = extract_sql(expected) or expected
    expected_result = run_query(schema, expected_sql, include_state=True, digest=True)
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
    exact = compare_results(expected, predicted, ordered=ordered)
    if exact == Verdict.MATCH:
        return '<div class="sqlsft-verdict sqlsft-match">✓ Match</div>'
    lenient = compare_results(expected, predicted, ordered=ordered, allow_extra_columns=True)
    if lenient == Verdict.MATCH:
        return '<div class="sqlsft-verdict sqlsft-match">✓ Match (with extra columns)</div>'
    if Verdict.UNDECIDED in (exact, lenient):  # rows were cut and their digests cannot tell
        return '<div class="sqlsft-verdict sqlsft-unknown">? Too many rows to tell whether they match</div>'
    return '<div class="sqlsft-verdict sqlsft-mismatch">✗ Mismatch</div>'


CSS = """
.sqlsft-result, .sqlsft-error, .sqlsft-note { font-size: 0.92em; }
.sqlsft-title { font-weight: 600; margin: 0.2em 0; }
.sqlsft-meta { color: var(--body-text-color-subdued); font-size: 0.9em; margin: 0.2em 0; }
.sqlsft-sql, .sqlsft-code { margin: 0.3em 0; }
.sqlsft-sql code, .sqlsft-code code { white-space: pre-wrap; word-break: break-word; }
.sqlsft-text { margin: 0.3em 0; white-space: pre-wrap; overflow-wrap: anywhere; }
.sqlsft-scroll { overflow-x: auto; max-width: 100%; }
.sqlsft-table { border-collapse: collapse; font-size: 0.9em; }
.sqlsft-table th, .sqlsft-table td { border: 1px solid var(--border-color-primary); padding: 2px 8px; }
.sqlsft-table td { white-space: pre-wrap; }
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
#sqlsft-chatbot .message-content { white-space: pre-wrap; }
"""
