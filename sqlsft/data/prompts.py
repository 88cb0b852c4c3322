"""The one prompt renderer: training, serving, chat, eval and bench all build messages here.

The format reproduces the reference workshop byte for byte: SQL and schema pretty-printed with
sqlparse (reindent, upper-case keywords) and fenced as ```sql blocks, then rendered through the
system/user/assistant Jinja templates into TRL's conversational prompt-completion format.
"""

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import sqlparse
from jinja2.sandbox import SandboxedEnvironment

from sqlsft.common.errors import SqlsftError
from sqlsft.common.paths import templates_dir

DEFAULT_TEMPLATE = "text-to-sql"
TEMPLATE_ROLES = ("system", "user", "assistant")
# Columns the templates read; everything else in a row is carried along untouched.
REQUIRED_COLUMNS = ("sql_prompt", "sql_context", "sql")


@functools.lru_cache(maxsize=65536)
def format_sql(text: str) -> str:
    """Pretty-print SQL as the workshop does and fence it as a ```sql block.

    sqlparse's reindent costs ~10 ms for a schema with a few INSERTs: the dominant per-row cost of
    `prepare`, so identical texts (shared schemas, repeated gold queries) are formatted once."""
    formatted = sqlparse.format(text, reindent=True, keyword_case="upper")
    return f"```sql\n{formatted}\n```"


@dataclass(frozen=True)
class PromptTemplates:
    """The three compiled templates of one template folder, plus their source text (for fingerprints)."""

    name: str
    folder: Path
    sources: dict[str, str]
    compiled: dict[str, Any]

    def render(self, role: str, variables: dict[str, Any]) -> str:
        try:
            return self.compiled[role].render(**variables)
        except jinja2.UndefinedError as exc:
            line = _template_error_line(exc)
            raise SqlsftError(
                f"Template {self.folder / (role + '.jinja')}{line}: {exc.message}.",
                "Use only the data set's columns (for example sql_prompt, sql_context, sql).",
            ) from exc
        except jinja2.TemplateError as exc:
            raise SqlsftError(f"Template {self.folder / (role + '.jinja')}: {exc}.") from exc


def _template_error_line(exc: BaseException) -> str:
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith(".jinja"):
            line = tb.tb_lineno
        tb = tb.tb_next
    return f" line {line}" if line else ""


def load_templates(template: str | Path | None = None) -> PromptTemplates:
    """Load `templates/<name>/` (a shipped name) or a user folder with system/user/assistant.jinja."""
    template = template or DEFAULT_TEMPLATE
    candidate = Path(template).expanduser()
    folder = candidate if candidate.is_dir() else templates_dir() / str(template)
    if not folder.is_dir():
        shipped = sorted(p.name for p in templates_dir().iterdir() if p.is_dir())
        raise SqlsftError(
            f"Template folder '{template}' not found.",
            f"Pass a folder with system.jinja, user.jinja and assistant.jinja, or one of: {', '.join(shipped)}.",
        )
    env = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
    sources: dict[str, str] = {}
    compiled: dict[str, Any] = {}
    for role in TEMPLATE_ROLES:
        path = folder / f"{role}.jinja"
        if not path.is_file():
            raise SqlsftError(
                f"Template folder {folder} has no {role}.jinja.", "It needs system, user and assistant."
            )
        source = path.read_text(encoding="utf-8")
        try:
            compiled[role] = env.from_string(source)
            compiled[role].filename = str(path)
        except jinja2.TemplateSyntaxError as exc:
            raise SqlsftError(f"Template {path} line {exc.lineno}: {exc.message}.") from exc
        sources[role] = source
    return PromptTemplates(name=folder.name, folder=folder, sources=sources, compiled=compiled)


def template_variables(row: dict[str, Any]) -> dict[str, Any]:
    """The row with its SQL and schema formatted and fenced, as the templates expect them."""
    variables = dict(row)
    variables["sql_context"] = format_sql(row["sql_context"])
    variables["sql"] = format_sql(row["sql"])
    return variables


def prompt_messages(
    templates: PromptTemplates, sql_prompt: str, sql_context: str, **extra: Any
) -> list[dict]:
    """The [system, user] messages for a question and its schema: what a served model is asked."""
    variables = template_variables({"sql_prompt": sql_prompt, "sql_context": sql_context, "sql": "", **extra})
    return [
        {"role": "system", "content": templates.render("system", variables)},
        {"role": "user", "content": templates.render("user", variables)},
    ]


def prompt_completion(templates: PromptTemplates, row: dict[str, Any]) -> dict[str, list[dict]]:
    """One row in TRL's conversational prompt-completion format."""
    variables = template_variables(row)
    return {
        "prompt": [
            {"role": "system", "content": templates.render("system", variables)},
            {"role": "user", "content": templates.render("user", variables)},
        ],
        "completion": [{"role": "assistant", "content": templates.render("assistant", variables)}],
    }
