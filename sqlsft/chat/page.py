"""The chat page (Gradio Blocks): ask, stream the answer, run its SQL, retry, edit, undo, stop.

Under each answer the page shows the SQL it extracted and what that SQL returns against the user's
schema (or the SQLite error); with an expected query, both results side by side and whether they
match. Every message is HTML built by render.py from escaped text; the chatbot runs no markdown over
it (render_markdown=False), so nothing a model or a query writes becomes markup.
"""

from sqlsft.chat.render import (
    answer_html,
    is_page_message,
    page_message,
    result_html,
    text,
    user_html,
    user_text,
)
from sqlsft.chat.target import ChatTarget, ServerProblem, stream_answer
from sqlsft.chat.turns import Turn, build_turn, parse_workshop_message, system_message, was_sent
from sqlsft.common.errors import SqlsftError
from sqlsft.common.formatting import shorten
from sqlsft.data.prompts import PromptTemplates


def load_examples(n: int = 4) -> list[dict]:
    """Rows (sql_prompt, sql_context, sql) from the newest prepared test split, else the builtin set."""
    from sqlsft.data.builtin.generator import generate_builtin_rows
    from sqlsft.data.cache import latest_prepared_examples

    try:
        rows = latest_prepared_examples(n)
    except SqlsftError:  # an unreadable cache only costs the examples
        rows = None
    if not rows:
        rows = generate_builtin_rows(50)
        step = max(1, len(rows) // n)  # spread over the set, not n questions about one table
        rows = rows[::step][:n]
    return [{k: row[k] for k in ("sql_prompt", "sql_context", "sql")} for row in rows]


def _message_text(message: dict) -> str:
    """A chat message's text, whether Gradio handed it back as a string or as normalized parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def _last_user(history: list[dict]) -> int | None:
    return max((i for i, m in enumerate(history) if m["role"] == "user"), default=None)


def _inert_markdown(html: str) -> str:
    """HTML for a gr.Markdown: one <div> block without blank lines is passed through, not parsed."""
    return f'<div class="sqlsft-header">{html}</div>'


def build_app(target: ChatTarget, templates: PromptTemplates, examples: list[dict], max_tokens: int = 512):
    import gradio as gr

    system_prompt = system_message(templates)["content"]

    def ask(history: list[dict], turns: dict, question: str, schema: str, expected: str):
        history, turns = list(history or []), dict(turns or {})
        if not (question or "").strip():
            gr.Warning("Type a question first.")
            yield history, turns, question
            return
        yield from _answer(history, turns, question, schema or "", expected or "", clear_question=True)

    def _answer(history, turns, question, schema, expected, clear_question=False, turn: Turn | None = None):
        keep = "" if clear_question else gr.skip()
        if turn is None:
            try:
                turn = build_turn(templates, question, schema)
            except SqlsftError as exc:  # a user template that does not render, a schema sqlparse refuses
                yield [*history, page_message("error", str(exc))], turns, keep
                return
        turns[len(history)] = turn  # keyed by the user message's place in the history
        history = [*history, {"role": "user", "content": user_html(turn.user_message)}]
        history.append({"role": "assistant", "content": answer_html("")})
        yield history, turns, keep
        answer = ""
        try:
            for answer in stream_answer(target, turn.messages, max_tokens):
                history[-1] = {"role": "assistant", "content": answer_html(answer)}
                yield history, turns, keep
        except ServerProblem as problem:
            history[-1] = page_message("error", str(problem))
            yield history, turns, keep
            return
        if not answer:
            history[-1] = page_message("error", "The model returned an empty answer.")
            yield history, turns, keep
            return
        history.append({"role": "assistant", "content": result_html(answer, turn.schema, expected)})
        yield history, turns, keep

    def retry(history: list[dict], turns: dict, schema: str, expected: str):
        history, turns = list(history or []), dict(turns or {})
        last = _last_user(history)
        if last is None:
            yield history, turns, gr.skip()
            return
        shown = user_text(_message_text(history[last]))
        turn = turns.get(last)
        if not was_sent(turn, shown):  # no record of this turn: ask what the chatbot shows
            turn = None
        yield from _answer(history[:last], turns, shown, schema or "", expected or "", turn=turn)

    def edit(history: list[dict], turns: dict, schema: str, expected: str, edit_data: gr.EditData):
        index = edit_data.index[0] if isinstance(edit_data.index, list | tuple) else edit_data.index
        value = edit_data.value
        edited = user_text(value if isinstance(value, str) else _message_text({"content": value}))
        history, turns = list(history or [])[:index], dict(turns or {})
        yield from _answer(history, turns, edited, schema or "", expected or "")

    def undo(history: list[dict], turns: dict, undo_data: gr.UndoData):
        history, turns = list(history or []), dict(turns or {})
        last = _last_user(history)
        if last is None:
            return history, gr.skip(), gr.skip()
        shown = user_text(_message_text(history[last]))
        turn = turns.get(last)
        if was_sent(turn, shown):  # put back what the boxes held
            return history[:last], turn.typed_question, turn.typed_schema
        parsed = parse_workshop_message(shown)
        if parsed is None:
            return history[:last], shown, gr.skip()
        return history[:last], parsed[0], parsed[1]

    def stop(history: list[dict]):
        history = list(history or [])
        if history and history[-1]["role"] == "assistant" and not is_page_message(_message_text(history[-1])):
            history.append(page_message("note", "Stopped."))
        return history

    with gr.Blocks(title="sqlsft chat") as demo:
        gr.Markdown(
            _inert_markdown(
                f"<h3>sqlsft chat</h3>Model <b>{text(target.model)}</b> at <code>{text(target.display_url)}</code>. "
                "Each question is answered on its own, in the model's training format; the SQL in the answer "
                "runs against your schema in a sandboxed in-memory SQLite database."
            ),
            latex_delimiters=[],
        )
        chatbot = gr.Chatbot(
            label="Conversation",
            height=520,
            editable="user",
            elem_id="sqlsft-chatbot",
            buttons=[],  # Gradio's copy button would copy the message's HTML, not its text
            feedback_options=None,
            placeholder="Ask a question about your schema, or pick an example below.",
            # Messages are HTML that render.py built from escaped text: no markdown, no LaTeX, no
            # custom tags on top, and Gradio's sanitizer stays on.
            render_markdown=False,
            sanitize_html=True,
            latex_delimiters=[],
            allow_tags=False,
        )
        turns = gr.State({})
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
                example_labels=[shorten(e["sql_prompt"], 60) for e in examples],
                label="Examples",
            )
        with gr.Accordion("Server and system prompt", open=False):
            gr.Markdown(
                _inert_markdown(
                    f"<ul><li>Server: <code>{text(target.display_url)}</code> ({text(target.source)})</li>"
                    f"<li>Model: <code>{text(target.model)}</code>, temperature 0, at most {max_tokens} new "
                    f"tokens</li><li>Template: <code>{text(templates.name)}</code></li></ul>"
                    f"<b>System prompt</b><blockquote>{text(system_prompt)}</blockquote>"
                ),
                latex_delimiters=[],
            )
        # A plain button: gr.ClearButton clears in browser-side JavaScript that Gradio compiles with
        # new Function(), which the page's Content-Security-Policy (no 'unsafe-eval') refuses.
        clear = gr.Button("Clear conversation", size="sm", elem_id="sqlsft-clear")

        inputs = [chatbot, turns, question, schema, expected]
        outputs = [chatbot, turns, question]
        events = [
            send.click(ask, inputs, outputs),
            question.submit(ask, inputs, outputs),
            chatbot.retry(retry, [chatbot, turns, schema, expected], outputs),
            chatbot.edit(edit, [chatbot, turns, schema, expected], outputs),
        ]
        chatbot.undo(undo, [chatbot, turns], [chatbot, question, schema])
        stop_btn.click(stop, [chatbot], [chatbot], cancels=events, queue=False)
        clear.click(lambda: ([], {}, ""), None, [chatbot, turns, question], cancels=events, queue=False)
    return demo
