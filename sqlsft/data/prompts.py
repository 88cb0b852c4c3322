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
import sqlparse.engine.grouping
from jinja2.sandbox import SandboxedEnvironment
from sqlparse.exceptions import SQLParseError

from sqlsft.common.errors import SqlsftError
from sqlsft.common.paths import templates_dir
from sqlsft.data.options import DEFAULT_TEMPLATE

TEMPLATE_ROLES = ("system", "user", "assistant")
# Columns the templates read; everything else in a row is carried along untouched.
REQUIRED_COLUMNS = ("sql_prompt", "sql_context", "sql")
# The workshop's own templates name the formatted texts so (its rows keep `sql` and `sql_context` raw);
# sqlsft's templates use `sql` and `sql_context`, which are formatted here. Both spellings work.
WORKSHOP_ALIASES = {"new_sql": "sql", "new_sql_context": "sql_context"}

# sqlparse 0.6 refuses statements of more than 10,000 tokens (an INSERT of ~900 rows, as gretel's contexts
# have) and nesting deeper than 100; the workshop's pinned 0.5.3 has neither limit and formats them. With
# the depth limit off, Python's recursion limit bounds nesting as in 0.5.3; the token limit stays, 10x
# higher, so one huge statement still cannot stall a process for minutes (100k tokens take ~5 s). The
# output is the same as 0.5.3's (checked byte for byte on INSERTs of 10 to 3,000 rows).
SQLPARSE_MAX_TOKENS = 100_000
sqlparse.engine.grouping.MAX_GROUPING_TOKENS = SQLPARSE_MAX_TOKENS
sqlparse.engine.grouping.MAX_GROUPING_DEPTH = None


class SqlFormatError(SqlsftError):
    """sqlparse could not format a text (too many tokens or too deeply nested)."""


@functools.lru_cache(maxsize=65536)
def format_sql(text: str) -> str:
    """Pretty-print SQL as the workshop does and fence it as a ```sql block.

    sqlparse's reindent costs ~10 ms for a schema with a few INSERTs: the dominant per-row cost of
    `prepare`, so identical texts (shared schemas, repeated gold queries) are formatted once."""
    try:
        formatted = sqlparse.format(text, reindent=True, keyword_case="upper")
    except SQLParseError as exc:
        raise SqlFormatError(
            f"The SQL could not be formatted ({len(text):,} characters): {exc}",
            "Shorten the statement (sqlparse formats at most "
            f"{SQLPARSE_MAX_TOKENS:,} tokens per statement), or split it.",
        ) from None
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
        shipped = sorted(p.name for p in templates_dir().iterdir() if (p / "system.jinja").is_file())
        raise SqlsftError(
            f"Template folder '{template}' not found.",
            f"Pass a folder with system.jinja, user.jinja and assistant.jinja, or one of: {', '.join(shipped)}.",
        )
    sources: dict[str, str] = {}
    for role in TEMPLATE_ROLES:
        path = folder / f"{role}.jinja"
        if not path.is_file():
            raise SqlsftError(
                f"Template folder {folder} has no {role}.jinja.", "It needs system, user and assistant."
            )
        try:
            sources[role] = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise SqlsftError(f"Template {path} is not UTF-8 text.", "Save it as UTF-8.") from None
    return compile_templates(folder, sources)


def compile_templates(folder: Path, sources: dict[str, str]) -> PromptTemplates:
    """The templates of `folder` compiled from their text (what a worker process gets: the text, so an edited
    file is never served from a stale compile)."""
    return _compile(Path(folder), tuple((role, sources[role]) for role in TEMPLATE_ROLES))


@functools.lru_cache(maxsize=16)
def _compile(folder: Path, sources: tuple[tuple[str, str], ...]) -> PromptTemplates:
    env = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
    compiled: dict[str, Any] = {}
    for role, source in sources:
        path = folder / f"{role}.jinja"
        try:
            compiled[role] = env.from_string(source)
            compiled[role].filename = str(path)
        except jinja2.TemplateSyntaxError as exc:
            raise SqlsftError(f"Template {path} line {exc.lineno}: {exc.message}.") from exc
    return PromptTemplates(name=folder.name, folder=folder, sources=dict(sources), compiled=compiled)


def template_variables(row: dict[str, Any]) -> dict[str, Any]:
    """The row with its SQL and schema formatted and fenced, as the templates expect them (also under the
    workshop's names, so a workshop `prompts/` folder works unchanged with --template)."""
    variables = dict(row)
    variables["sql_context"] = format_sql(row["sql_context"])
    variables["sql"] = format_sql(row["sql"])
    for alias, column in WORKSHOP_ALIASES.items():
        variables[alias] = variables[column]
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
