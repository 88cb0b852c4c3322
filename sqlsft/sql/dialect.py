"""MySQL -> SQLite: sqlglot's transpiler plus the MySQL date idioms it leaves unsupported for SQLite."""

import logging

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel

logging.getLogger("sqlglot").setLevel(logging.ERROR)  # "falling back to a Command" is no news


def to_sqlite(sql: str, read_dialect: str = "mysql") -> str:
    """Transpile SQL to SQLite with sqlglot (plus MySQL date idioms SQLite lacks).

    Best effort: the input comes back unchanged if sqlglot cannot parse it.
    """
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


def normalize_sql(sql: str) -> str:
    """One canonical text per query for exact match: sqlglot's MySQL rendering with normalized identifiers."""
    text = (sql or "").strip().rstrip(";").strip()
    if not text:
        return ""
    try:
        trees = [t for t in sqlglot.parse(text, read="mysql") if t is not None]
        if trees:
            return ";\n".join(t.sql(dialect="mysql", normalize=True) for t in trees)
    except Exception:
        pass
    return " ".join(text.split()).lower()


_STATEMENTS = (exp.Query, exp.DML, exp.DDL, exp.Drop, exp.Alter, exp.TruncateTable, exp.Command)


def sql_parses(sql: str) -> bool:
    """sqlglot reads the text as SQL statements (not as a bare expression such as `SELEC name`)."""
    if not (sql or "").strip():
        return False
    try:
        trees = [t for t in sqlglot.parse(sql, read="mysql") if t is not None]
        return bool(trees) and all(isinstance(t, _STATEMENTS) for t in trees)
    except Exception:
        return False


def judge_text(predicted_sql: str, gold_sql: str) -> tuple[bool, bool]:
    """(exact match after normalization, the prediction parses): what scoring asks sqlglot."""
    exact = bool(predicted_sql) and normalize_sql(predicted_sql) == normalize_sql(gold_sql)
    return exact, sql_parses(predicted_sql)
