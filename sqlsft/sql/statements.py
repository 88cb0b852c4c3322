"""Reading SQL text: splitting it into statements, finding the SQL in a model's answer, spotting ORDER BY.

Everything here reads untrusted text, so each function is one left-to-right pass (linear time) over it:
no regular expression here may backtrack over the whole input once per position.
"""

import re

# One token of SQL text for the statement splitter: a quoted string or identifier (an unclosed one runs
# to the end), a comment, a semicolon, a word, or a run of other characters. Whitespace is skipped.
_TOKEN = re.compile(
    r"""(?P<quoted>'[^']*(?:''[^']*)*'?|"[^"]*(?:""[^"]*)*"?|`[^`]*(?:``[^`]*)*`?|\[[^\]]*\]?)
      | (?P<comment>--[^\n]*|/\*(?:[^*]|\*(?!/))*(?:\*/)?)
      | (?P<semicolon>;)
      | (?P<word>\w+)
      | (?P<other>[^\s\w'"`\[;/-]+|[/-])""",
    re.VERBOSE,
)
_TRIGGER_HEADS = (("CREATE", "TEMP", "TRIGGER"), ("CREATE", "TEMPORARY", "TRIGGER"))

# Statements the sandbox refuses outright, whatever follows them.
DENIED_LEADING = re.compile(r"\s*(ATTACH|DETACH|PRAGMA|VACUUM)\b", re.IGNORECASE)


def split_statements(sql: str) -> list[str]:
    """Split SQL text on top-level semicolons (quotes and comments respected); empty pieces dropped.

    A CREATE TRIGGER's BEGIN ... END body is one statement: its inner semicolons do not end it.
    """
    statements: list[str] = []
    start = 0
    head: list[str] = []  # the statement's first three tokens, to recognise CREATE [TEMP] TRIGGER
    opened = 0  # BEGIN and CASE words minus END words
    has_begin = has_content = False
    for token in _TOKEN.finditer(sql):
        kind = token.lastgroup
        if kind == "comment":
            continue
        if kind == "semicolon" and not (_is_trigger(head) and has_begin and opened > 0):
            if has_content:
                statements.append(sql[start : token.start()].strip())
            start, head, opened, has_begin, has_content = token.end(), [], 0, False, False
            continue
        has_content = True
        word = token.group().upper() if kind == "word" else ""
        if len(head) < 3:
            head.append(word)
        if word in ("BEGIN", "CASE"):
            opened += 1
            has_begin = has_begin or word == "BEGIN"
        elif word == "END":
            opened -= 1
    if has_content:
        statements.append(sql[start:].strip())
    return statements


def _is_trigger(head: list[str]) -> bool:
    return head[:2] == ["CREATE", "TRIGGER"] or tuple(head) in _TRIGGER_HEADS


# ---------------------------------------------------------------------------------------------------
# ORDER BY at the top level


_LITERALS = re.compile(
    r"'[^']*(?:''[^']*)*'?|\"[^\"]*(?:\"\"[^\"]*)*\"?|`[^`]*`?|\[[^\]]*\]?|--[^\n]*|/\*(?:[^*]|\*(?!/))*(?:\*/)?"
)
_PARENTHESIS_OR_ORDER_BY = re.compile(r"[()]|\bORDER\s+BY\b", re.IGNORECASE)


def query_orders_rows(sql: str) -> bool:
    """Whether the top-level query has ORDER BY (then row order matters); subqueries and OVER() don't count."""
    depth = 0
    for token in _PARENTHESIS_OR_ORDER_BY.findall(_LITERALS.sub(" ", sql or "")):
        if token == "(":
            depth += 1
        elif token == ")":
            depth -= depth > 0
        elif not depth:
            return True
    return False


# ---------------------------------------------------------------------------------------------------
# The SQL in a model's answer


_SQL_LANGUAGES = ("sql", "sqlite", "mysql", "postgresql", "postgres")
_FENCE_LANGUAGE = re.compile(r"[ \t]*([A-Za-z0-9_+-]*)")
# The start of a bare SQL statement in a model's answer: the keyword and the shape that follows it, so
# that prose such as "Delete the old rows first." or "Update: ..." is not taken for a query. Every
# repetition is bounded by a character that ends it, and the column list of WITH by a length, so one
# attempt reads a short stretch of text only.
_SQL_START = re.compile(
    r"""[ \t]*(
        SELECT\b
      | WITH\s+(RECURSIVE\s+)?[\w"`\[\]]+(\s*\([^()]{0,2000}\))?\s+AS\s*\(
      | (INSERT|REPLACE)\s+(OR\s+\w+\s+)?INTO\s
      | UPDATE\s+(OR\s+\w+\s+)?[\w."`\[\]]+\s+SET\s
      | DELETE\s+FROM\s
      | CREATE\s+(TEMP\s+|TEMPORARY\s+|UNIQUE\s+|VIRTUAL\s+)?(TABLE|VIEW|INDEX|TRIGGER)\s
      | ALTER\s+TABLE\s
      | DROP\s+(TABLE|VIEW|INDEX|TRIGGER)\s
      | TRUNCATE\s
      | VALUES\s*\(
    )""",
    re.IGNORECASE | re.VERBOSE,
)


# Lines that start with a keyword _SQL_START knows: only these are worth its closer look.
_SQL_KEYWORD_LINE = re.compile(
    r"^[ \t]*(?=(?:SELECT|WITH|INSERT|REPLACE|UPDATE|DELETE|CREATE|ALTER|DROP|TRUNCATE|VALUES)\b)",
    re.IGNORECASE | re.MULTILINE,
)


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """The ``` fenced blocks of a text as (language, body); a block left open runs to the end."""
    blocks, position = [], 0
    while True:
        opening = text.find("```", position)
        if opening < 0:
            return blocks
        line_end = text.find("\n", opening + 3)
        if line_end < 0:  # no line break after any later fence either: no more blocks
            return blocks
        language = _FENCE_LANGUAGE.match(text, opening + 3).group(1)
        closing = text.find("```", line_end + 1)
        body_end = len(text) if closing < 0 else closing
        blocks.append((language.lower(), text[line_end + 1 : body_end].strip()))
        if closing < 0:
            return blocks
        position = closing + 3


def extract_sql(text: str) -> str:
    """The SQL in a model's answer: the first ```sql block (else the first fenced block), else bare SQL."""
    if not text:
        return ""
    blocks = fenced_blocks(text)
    for language, body in blocks:
        if language in _SQL_LANGUAGES and body:
            return body
    for _, body in blocks:
        if body:
            return body
    bare = text.strip()
    if "```" in bare:
        bare = bare.replace("```", "").strip()
    for line in _SQL_KEYWORD_LINE.finditer(bare):
        if _SQL_START.match(bare, line.start()):
            return bare[line.start() :].strip()
    return ""
