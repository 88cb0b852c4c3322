"""Run untrusted SQL safely against a schema, and compare results the way our evaluation defines it.

Every call builds a fresh in-memory SQLite database from the schema (CREATE TABLE + INSERT text,
transpiled from MySQL with sqlglot statement by statement when SQLite rejects it), then runs ONE
statement of the answer. Model output is untrusted: SQLite's authorizer refuses ATTACH/DETACH,
PRAGMA and extension loading, `SQLITE_LIMIT_ATTACHED` is 0 (so `VACUUM INTO` cannot open a file
either), temporary storage stays in memory, a progress handler enforces the time limit, and limits
cap string sizes, database pages, SQLite's heap and the rows fetched.

Comparison rules (published in the README and eval reports): results are multisets of rows; row
order matters only when the gold query orders its rows; floats compare with a tolerance; NULL equals
NULL; column names and column order are ignored; the lenient mode lets the prediction carry extra
columns as long as a projection of it matches. DML/DDL answers compare the tables after the statement.
"""

import math
import re
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import islice

# Limits for one sandboxed run. The heap limit is process-wide in SQLite (there is no per-connection
# one); it is only ever lowered to this value, never raised.
HEAP_LIMIT_BYTES = 1 << 30
MAX_VALUE_BYTES = 16 * 1024 * 1024
MAX_SQL_BYTES = 1024 * 1024
MAX_DB_PAGES = 16_384  # x 4 KiB pages = 64 MiB per database (main and temp)
PROGRESS_EVERY_OPS = 1_000

# Python raises MemoryError when SQLite hits its heap limit (SQLITE_NOMEM).
_SQL_ERRORS = (sqlite3.Error, MemoryError)

_DENIED_ACTIONS = {
    sqlite3.SQLITE_ATTACH: "ATTACH",
    sqlite3.SQLITE_DETACH: "DETACH",
    sqlite3.SQLITE_PRAGMA: "PRAGMA",
}
_DENIED_FUNCTIONS = {"load_extension", "fts3_tokenizer", "readfile", "writefile", "edit"}
_DENIED_LEADING = re.compile(r"^\s*(ATTACH|DETACH|PRAGMA|VACUUM)\b", re.IGNORECASE)
# The start of a bare SQL statement in a model's answer: the keyword and the shape that follows it, so
# that prose such as "Delete the old rows first." or "Update: ..." is not taken for a query.
_SQL_START = re.compile(
    r"""^\s*(
        SELECT\b
      | WITH\s+(RECURSIVE\s+)?[\w"`\[\]]+(\s*\([^)]*\))?\s+AS\s*\(
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


@dataclass
class QueryResult:
    status: str  # "ok" | "error" | "timeout" | "denied" | "schema_error"
    columns: list[str]
    rows: list[tuple]
    error: str | None = None
    truncated: bool = False  # more rows than max_rows
    elapsed_s: float = 0.0
    # table -> rows after the statement (when include_state=True); for scoring DML/DDL answers
    state: dict[str, list[tuple]] | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class _Guard:
    """The authorizer and progress handler of one connection, remembering why they stopped it."""

    def __init__(self) -> None:
        self.deadline = math.inf
        self.timed_out = False
        self.denied: str | None = None

    def start(self, timeout_s: float) -> None:
        self.deadline = time.perf_counter() + timeout_s
        self.timed_out = False
        self.denied = None

    def progress(self) -> int:
        if time.perf_counter() > self.deadline:
            self.timed_out = True
            return 1
        return 0

    def authorize(self, action: int, arg1, arg2, _db, _trigger) -> int:
        if action in _DENIED_ACTIONS:
            self.denied = _DENIED_ACTIONS[action]
            return sqlite3.SQLITE_DENY
        if action == sqlite3.SQLITE_FUNCTION and arg2 and arg2.lower() in _DENIED_FUNCTIONS:
            self.denied = f"the function {arg2}()"
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK


def _connect() -> tuple[sqlite3.Connection, _Guard]:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    if hasattr(conn, "enable_load_extension"):  # absent when Python was built without extension loading
        conn.enable_load_extension(False)
    conn.execute("PRAGMA temp_store = MEMORY")
    conn.execute(f"PRAGMA max_page_count = {MAX_DB_PAGES}")
    conn.execute(f"PRAGMA temp.max_page_count = {MAX_DB_PAGES}")
    current = conn.execute("PRAGMA hard_heap_limit").fetchone()[0]
    if current == 0 or current > HEAP_LIMIT_BYTES:
        conn.execute(f"PRAGMA hard_heap_limit = {HEAP_LIMIT_BYTES}")
    conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
    conn.setlimit(sqlite3.SQLITE_LIMIT_SQL_LENGTH, MAX_SQL_BYTES)
    conn.setlimit(sqlite3.SQLITE_LIMIT_TRIGGER_DEPTH, 10)
    guard = _Guard()
    conn.set_authorizer(guard.authorize)
    conn.set_progress_handler(guard.progress, PROGRESS_EVERY_OPS)
    return conn, guard


def split_statements(sql: str) -> list[str]:
    """Split SQL text on top-level semicolons (quotes and comments respected); empty pieces dropped."""
    statements, start, i, n = [], 0, 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"`[":
            close = "]" if ch == "[" else ch
            i += 1
            while i < n:
                if sql[i] == close:
                    if close != "]" and i + 1 < n and sql[i + 1] == close:  # doubled quote escape
                        i += 2
                        continue
                    break
                i += 1
        elif ch == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end
        elif ch == "/" and sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 1
        elif ch == ";" and not _inside_trigger_body(sql[start:i]):
            statements.append(sql[start:i])
            start = i + 1
        i += 1
    statements.append(sql[start:])
    return [s.strip() for s in statements if _strip_comments(s).strip()]


_CREATE_TRIGGER = re.compile(r"^\s*CREATE\s+(TEMP\s+|TEMPORARY\s+)?TRIGGER\b", re.IGNORECASE)
_QUOTED = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|`[^`]*`|\[[^\]]*\]")


def _inside_trigger_body(piece: str) -> bool:
    """True while a CREATE TRIGGER's BEGIN ... END body is open: its inner semicolons do not end it."""
    text = _QUOTED.sub(" ", _strip_comments(piece))
    if not _CREATE_TRIGGER.match(text):
        return False
    words = [w.upper() for w in re.findall(r"\b(BEGIN|CASE|END)\b", text, re.IGNORECASE)]
    return "BEGIN" in words and words.count("BEGIN") + words.count("CASE") > words.count("END")


def _strip_comments(sql: str) -> str:
    return re.sub(r"--[^\n]*|/\*.*?(\*/|$)", " ", sql, flags=re.DOTALL)


def to_sqlite(sql: str, read_dialect: str = "mysql") -> str:
    """Transpile SQL to SQLite with sqlglot (plus MySQL date idioms SQLite lacks).

    Best effort: the input comes back unchanged if sqlglot cannot parse it.
    """
    import sqlglot
    from sqlglot.errors import ErrorLevel

    try:
        trees = sqlglot.parse(sql, read=read_dialect)
        return ";\n".join(
            tree.transform(_sqlite_idioms).sql("sqlite", unsupported_level=ErrorLevel.IGNORE)
            for tree in trees
            if tree is not None
        )
    except Exception:
        return sql


_DATE_PARTS = {"YEAR": "%Y", "MONTH": "%m", "DAY": "%d", "HOUR": "%H", "MINUTE": "%M", "SECOND": "%S"}


def _sqlite_idioms(node):
    """Rewrite date functions and INTERVAL arithmetic that sqlglot leaves unsupported for SQLite."""
    from sqlglot import exp

    def strftime_int(fmt: str, value):
        return exp.cast(
            exp.Anonymous(this="STRFTIME", expressions=[exp.Literal.string(fmt), value]), "INTEGER"
        )

    def shift(date, amount, unit, negate: bool):
        # transform() does not revisit a replaced node's children: rewrite them here (NOW() - INTERVAL ...).
        date, amount = date.transform(_sqlite_idioms), amount.transform(_sqlite_idioms)
        unit_name = (unit.name if unit is not None else "DAY").lower()
        amount = exp.Paren(this=exp.Neg(this=exp.Paren(this=amount)) if negate else amount)
        modifier = exp.DPipe(this=amount, expression=exp.Literal.string(" " + unit_name))
        func = "DATETIME" if unit_name.rstrip("s") in ("hour", "minute", "second") else "DATE"
        return exp.Anonymous(this=func, expressions=[date, modifier])

    if isinstance(node, exp.DataType) and node.this in (exp.DataType.Type.ENUM, exp.DataType.Type.SET):
        return exp.DataType.build("TEXT")
    if isinstance(node, exp.DateSub):
        return shift(node.this, node.expression, node.args.get("unit"), negate=True)
    if isinstance(node, exp.Sub | exp.Add) and isinstance(node.expression, exp.Interval):
        interval = node.expression
        return shift(node.this, interval.this, interval.args.get("unit"), negate=isinstance(node, exp.Sub))
    if isinstance(node, exp.Extract) and node.this.name.upper() in _DATE_PARTS:
        return strftime_int(_DATE_PARTS[node.this.name.upper()], node.expression)
    for kind, fmt in ((exp.Year, "%Y"), (exp.Month, "%m"), (exp.Day, "%d")):
        if isinstance(node, kind):
            return strftime_int(fmt, node.this)
    if isinstance(node, exp.Quarter):
        month = strftime_int("%m", node.this)
        plus_two = exp.Paren(this=exp.Add(this=month, expression=exp.Literal.number(2)))
        quarter = exp.Div(this=plus_two, expression=exp.Literal.number(3))
        quarter.set("typed", True)  # integer division
        return exp.Paren(this=quarter)
    if isinstance(node, exp.DayOfWeek):  # MySQL: Sunday = 1
        return exp.Paren(this=exp.Add(this=strftime_int("%w", node.this), expression=exp.Literal.number(1)))
    if isinstance(node, exp.Anonymous) and node.name.upper() in ("NOW", "SYSDATE"):
        return exp.Anonymous(this="DATETIME", expressions=[exp.Literal.string("now")])
    return node


def _build_schema(
    conn: sqlite3.Connection, guard: _Guard, schema: str, read_dialect: str | None
) -> str | None:
    """Run the schema statement by statement, transpiling those SQLite rejects. Returns an error or None."""
    for statement in split_statements(schema):
        if _DENIED_LEADING.match(statement):
            return f"the schema may not use {_DENIED_LEADING.match(statement).group(1).upper()}"
        try:
            conn.execute(statement)
            continue
        except _SQL_ERRORS as exc:
            if guard.timed_out or guard.denied:
                return _describe(exc, guard)
            error = f"{exc} in: {_shorten(statement)}"
        if read_dialect is None:
            return error
        transpiled = to_sqlite(statement, read_dialect)
        if transpiled == statement:
            return error
        try:
            for piece in split_statements(transpiled):
                conn.execute(piece)
        except _SQL_ERRORS as exc:
            return _describe(exc, guard) if (guard.timed_out or guard.denied) else error
    return None


def _describe(exc: BaseException, guard: _Guard) -> str:
    if guard.timed_out:
        return "stopped: over the time limit"
    if guard.denied:
        return f"not allowed: {guard.denied}"
    if isinstance(exc, MemoryError):
        return f"stopped: over the memory limit ({HEAP_LIMIT_BYTES >> 20} MiB)"
    if "database or disk is full" in str(exc):
        return f"stopped: the database grew over its size limit ({MAX_DB_PAGES * 4 >> 10} MiB)"
    return str(exc)


def _shorten(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _status_for(guard: _Guard) -> str:
    if guard.timed_out:
        return "timeout"
    if guard.denied:
        return "denied"
    return "error"


def _execute(conn: sqlite3.Connection, query: str, max_rows: int) -> tuple[list[str], list[tuple], bool]:
    cursor = conn.execute(query)
    columns = [d[0] for d in cursor.description] if cursor.description else []
    rows = cursor.fetchmany(max_rows + 1) if columns else []
    cursor.close()
    return columns, rows[:max_rows], len(rows) > max_rows


def _read_state(conn: sqlite3.Connection, max_rows: int) -> dict[str, list[tuple]]:
    names = conn.execute(
        "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' ORDER BY name"
    ).fetchall()
    state = {}
    for (name,) in names:
        quoted = '"' + name.replace('"', '""') + '"'
        try:
            state[name] = list(islice(conn.execute(f"SELECT * FROM {quoted}"), max_rows))
        except _SQL_ERRORS:
            continue  # a view that fails (or times out) has no state to compare
    return state


def run_query(
    schema: str,
    query: str,
    *,
    timeout_s: float = 2.0,
    max_rows: int = 1000,
    include_state: bool = False,
    read_dialect: str | None = "mysql",
) -> QueryResult:
    """Run ONE statement of `query` against a fresh in-memory database built from `schema`.

    The schema and the query each get `timeout_s`. SQL that SQLite rejects is retried once transpiled
    from `read_dialect` (None turns that off). Never raises for bad SQL: the status says what happened.
    """
    started = time.perf_counter()
    conn, guard = _connect()
    try:
        guard.start(timeout_s)
        schema_error = _build_schema(conn, guard, schema or "", read_dialect)
        if schema_error:
            return QueryResult("schema_error", [], [], f"Schema: {schema_error}", elapsed_s=_since(started))
        statements = split_statements(query or "")
        if not statements:
            return QueryResult("error", [], [], "There is no SQL to run.", elapsed_s=_since(started))
        if len(statements) > 1:
            return QueryResult(
                "error",
                [],
                [],
                "Only one SQL statement may run; the answer has several.",
                elapsed_s=_since(started),
            )
        statement = statements[0]
        denied = _DENIED_LEADING.match(statement)
        if denied:
            message = f"Not allowed: {denied.group(1).upper()} statements."
            return QueryResult("denied", [], [], message, elapsed_s=_since(started))

        guard.start(timeout_s)
        try:
            columns, rows, truncated = _execute(conn, statement, max_rows)
        except _SQL_ERRORS as exc:
            # A failed statement leaves the database as it was (SQLite statements are atomic), so the
            # transpiled retry runs on the same data.
            status, first_error = _status_for(guard), _describe(exc, guard)
            transpiled = (
                to_sqlite(statement, read_dialect) if status == "error" and read_dialect else statement
            )
            if transpiled == statement or len(split_statements(transpiled)) != 1:
                return QueryResult(status, [], [], first_error, elapsed_s=_since(started))
            guard.start(timeout_s)
            try:
                columns, rows, truncated = _execute(conn, transpiled, max_rows)
            except _SQL_ERRORS as exc2:
                status = _status_for(guard)
                message = first_error if status == "error" else _describe(exc2, guard)
                return QueryResult(status, [], [], message, elapsed_s=_since(started))
        state = None
        if include_state:
            guard.start(timeout_s)
            state = _read_state(conn, max_rows)
        return QueryResult("ok", columns, rows, None, truncated, _since(started), state)
    finally:
        conn.close()


def _since(started: float) -> float:
    return time.perf_counter() - started


# ---------------------------------------------------------------------------------------------------
# Comparing results


def _values_equal(a, b, tol: float) -> bool:
    if a is None or b is None:
        return a is None and b is None
    a_num, b_num = isinstance(a, int | float), isinstance(b, int | float)
    if a_num and b_num:
        if isinstance(a, int) and isinstance(b, int):
            return a == b
        return math.isclose(a, b, rel_tol=tol, abs_tol=tol)
    if a_num or b_num:
        return False
    return a == b


def _sort_key(value):
    if value is None:
        return (0, 0.0, "")
    if isinstance(value, int | float):
        return (1, -math.inf if value != value else float(value), "")  # NaN sorts first
    if isinstance(value, bytes):
        return (3, 0.0, value.hex())
    return (2, 0.0, str(value))


def _rows_equal(a: Sequence, b: Sequence, tol: float) -> bool:
    return len(a) == len(b) and all(_values_equal(x, y, tol) for x, y in zip(a, b, strict=True))


def _multisets_equal(gold: list[tuple], pred: list[tuple], tol: float, ordered: bool) -> bool:
    if len(gold) != len(pred):
        return False
    if ordered:
        return all(_rows_equal(g, p, tol) for g, p in zip(gold, pred, strict=True))

    def key(row):
        return tuple(_sort_key(v) for v in row)

    gold_sorted, pred_sorted = sorted(gold, key=key), sorted(pred, key=key)
    if all(_rows_equal(g, p, tol) for g, p in zip(gold_sorted, pred_sorted, strict=True)):
        return True
    has_float = any(isinstance(v, float) for row in gold for v in row)
    if not has_float or len(gold) > 2000:
        return False
    # Floats within the tolerance can sort differently on each side: match greedily instead.
    unused = list(pred_sorted)
    for row in gold_sorted:
        for i, candidate in enumerate(unused):
            if _rows_equal(row, candidate, tol):
                del unused[i]
                break
        else:
            return False
    return True


def _column(rows: list[tuple], index: int) -> list[tuple]:
    return [(row[index],) for row in rows]


def _column_mappings(
    gold: list[tuple], pred: list[tuple], n_gold: int, n_pred: int, tol: float, limit: int = 200
):
    """Injective maps gold column -> predicted column whose values agree column by column (as multisets)."""
    candidates = []
    for g in range(n_gold):
        gold_values = _column(gold, g)
        matches = [p for p in range(n_pred) if _multisets_equal(gold_values, _column(pred, p), tol, False)]
        if not matches:
            return
        candidates.append(matches)
    found = 0

    def assign(g: int, used: tuple[int, ...]):
        nonlocal found
        if found >= limit:
            return
        if g == n_gold:
            found += 1
            yield used
            return
        for p in candidates[g]:
            if p not in used:
                yield from assign(g + 1, (*used, p))

    yield from assign(0, ())


def results_match(
    gold: QueryResult,
    predicted: QueryResult,
    *,
    ordered: bool = False,
    float_tol: float = 1e-6,
    allow_extra_columns: bool = False,
) -> bool:
    """Does the predicted result equal the gold one? (multisets, tolerance, columns matched by values)

    `ordered`: compare row order too (pass `query_orders_rows(gold_sql)`). `allow_extra_columns`: the
    lenient score, where the prediction may return more columns than the gold. When both results carry
    `state`, the tables after the statement must match as well (how DML answers are scored).
    """
    if not (gold.ok and predicted.ok):
        return False
    n_gold, n_pred = len(gold.columns), len(predicted.columns)
    if n_pred < n_gold or (n_pred != n_gold and not allow_extra_columns):
        return False
    if len(gold.rows) != len(predicted.rows):
        return False
    if not _states_match(gold.state, predicted.state, float_tol):
        return False
    if n_gold == 0:
        return True
    identity = tuple(range(n_gold))
    for mapping in (identity, *_column_mappings(gold.rows, predicted.rows, n_gold, n_pred, float_tol)):
        projected = [tuple(row[i] for i in mapping) for row in predicted.rows]
        if _multisets_equal(gold.rows, projected, float_tol, ordered):
            return True
    return False


def _states_match(gold: dict | None, pred: dict | None, tol: float) -> bool:
    if gold is None or pred is None:
        return True
    gold_tables = {name.lower(): rows for name, rows in gold.items()}
    pred_tables = {name.lower(): rows for name, rows in pred.items()}
    if gold_tables.keys() != pred_tables.keys():
        return False
    return all(_multisets_equal(rows, pred_tables[name], tol, False) for name, rows in gold_tables.items())


# ---------------------------------------------------------------------------------------------------
# Reading SQL out of text


_LITERALS = re.compile(
    r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|`[^`]*`|\[[^\]]*\]|--[^\n]*|/\*.*?(?:\*/|$)", re.DOTALL
)


def query_orders_rows(sql: str) -> bool:
    """Whether the top-level query has ORDER BY (then row order matters); subqueries and OVER() don't count."""
    text = _LITERALS.sub(" ", sql)
    depth, top_level = 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        top_level.append(ch if depth == 0 and ch != ")" else " ")
    return re.search(r"\bORDER\s+BY\b", "".join(top_level), re.IGNORECASE) is not None


_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)


def extract_sql(text: str) -> str:
    """The SQL in a model's answer: the first ```sql block (else the first fenced block), else bare SQL."""
    if not text:
        return ""
    blocks = [(lang.lower(), body.strip()) for lang, body in _FENCE.findall(text)]
    for lang, body in blocks:
        if lang in ("sql", "sqlite", "mysql", "postgresql", "postgres") and body:
            return body
    for _, body in blocks:
        if body:
            return body
    bare = text.strip()
    if "```" in bare:
        bare = bare.replace("```", "").strip()
    if _SQL_START.match(bare):
        return bare
    for line_start in re.finditer(r"^", bare, re.MULTILINE):
        if _SQL_START.match(bare[line_start.start() :]):
            return bare[line_start.start() :].strip()
    return ""
