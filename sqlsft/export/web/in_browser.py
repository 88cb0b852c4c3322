"""The Python the web page runs in Pyodide (bundle.py ships it with the modules it imports).

The page asks this module, never a JavaScript copy of it, for everything that must match training or
`sqlsft chat` exactly: the messages (`sqlsft.chat.turns.build_turn`: the Jinja templates, sqlparse's
formatting, a pasted workshop message sent as is), the prompt text the model reads (the chat template
rendered as transformers renders it) and the SQL of an answer (`sqlsft.sql.statements`). It imports only
jinja2, sqlparse and those pure-Python modules, so the same file runs natively (the tests compare).
"""

import json
from datetime import datetime

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

from sqlsft.chat.turns import build_turn
from sqlsft.common.errors import SqlsftError
from sqlsft.data.prompts import compile_templates
from sqlsft.sql.statements import DENIED_LEADING, extract_sql, query_orders_rows, split_statements


class _GenerationTag(jinja2.ext.Extension):
    """`{% generation %}...{% endgeneration %}` renders its body (transformers marks assistant tokens with it)."""

    tags = {"generation"}  # noqa: RUF012 - jinja's own API

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def compile_chat_template(source: str):
    """The chat template compiled with transformers' settings (`_cached_compile_jinja_template`)."""

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(
            x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
        )

    def strftime_now(format):
        return datetime.now().strftime(format)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[_GenerationTag, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env.from_string(source)


class PagePrompts:
    """What one exported page knows about its model's prompts (model.json's `prompts` section)."""

    def __init__(self, config: dict):
        self.templates = compile_templates(config["template_name"], config["templates"])
        self.chat_template = compile_chat_template(config["chat_template"])
        self.special_tokens = config["special_tokens"]  # bos_token, eos_token: the template may use them
        self.bos_token = config["special_tokens"].get("bos_token") or ""

    def prompt_text(self, messages: list[dict]) -> str:
        return self.chat_template.render(
            messages=messages, tools=None, documents=None, add_generation_prompt=True, **self.special_tokens
        )

    def ask(self, question: str, schema: str) -> dict:
        """The turn for a question: messages, the prompt text, the schema its SQL runs on; or the error."""
        try:
            turn = build_turn(self.templates, question, schema)
            text = self.prompt_text(turn.messages)
        except SqlsftError as exc:
            return {"error": str(exc)}
        except jinja2.TemplateError as exc:
            return {"error": f"The chat template does not render: {exc}"}
        return {
            "messages": turn.messages,
            "prompt": text,
            "schema": turn.schema,
            "bos_token": self.bos_token,
        }


def answer_sql(answer: str) -> dict:
    """The one statement of an answer that runs (as `sqlsft chat` runs it), or why none does."""
    return runnable_sql(extract_sql(answer or ""))


def runnable_sql(sql: str) -> dict:
    statements = split_statements(sql or "")
    if not statements:
        return {"sql": sql, "statement": None, "refused": None}
    statement = statements[0]
    refused = None
    if DENIED_LEADING.match(statement):
        refused = f"{statement.split()[0].upper()} statements do not run here."
    return {"sql": sql, "statement": statement, "refused": refused, "ignored": len(statements) - 1}


def schema_statements(schema: str) -> list[str]:
    """The schema's statements, each to run on its own (ATTACH, PRAGMA and the like are left out)."""
    return [s for s in split_statements(schema or "") if not DENIED_LEADING.match(s)]


def orders_rows(sql: str) -> bool:
    return query_orders_rows(sql or "")


_PAGE: PagePrompts | None = None


def dispatch(request: str) -> str:
    """The prompt worker's one call: a JSON request {op, ...} in, a JSON answer out."""
    global _PAGE
    call = json.loads(request)
    op = call["op"]
    if op == "init":
        _PAGE = PagePrompts(call["prompts"])
        return json.dumps({"ok": True})
    if _PAGE is None:
        return json.dumps({"error": "the prompt code is not initialised"})
    if op == "ask":
        return json.dumps(_PAGE.ask(call["question"], call["schema"]))
    if op == "ask_many":  # for the byte-identity test: many rows in one call
        return json.dumps([_PAGE.ask(q, s) for q, s in call["rows"]])
    if op == "answer_sql":
        return json.dumps(answer_sql(call["answer"]))
    if op == "expected_sql":
        return json.dumps(runnable_sql(extract_sql(call["text"]) or call["text"]))
    if op == "schema_statements":
        return json.dumps(schema_statements(call["schema"]))
    if op == "orders_rows":
        return json.dumps(orders_rows(call["sql"]))
    return json.dumps({"error": f"unknown op {op}"})
