"""Scoring one text-to-SQL prediction against its gold query: pure functions, no model, no server.

The rules are published in every eval report (`SCORING_RULES`) and in the README. The execution and
comparison work is the SQL sandbox's (`sqlsft.sql.sandbox`); this module decides what each outcome
means and how the scores add up.
"""

import logging
import re
from dataclasses import asdict, dataclass

from sqlsft.sql.sandbox import QueryResult, extract_sql, query_orders_rows, results_match, run_query

QUERY_TIMEOUT_S = 2.0
MAX_ROWS = 1000
FLOAT_TOL = 1e-6

# What happened to one example. Only "correct" and "wrong" count in execution accuracy; the
# others say why no comparison could be made and are reported apart.
CORRECT, WRONG, ERROR, TIMEOUT, NO_SQL, GOLD_ERROR, REQUEST_ERROR = (
    "correct",
    "wrong",
    "error",
    "timeout",
    "no_sql",
    "gold_error",
    "request_error",
)
OUTCOMES = (CORRECT, WRONG, ERROR, TIMEOUT, NO_SQL, GOLD_ERROR, REQUEST_ERROR)

SCORING_RULES = [
    "The predicted query is the first ```sql block of the model's answer (else its first fenced block, "
    "else bare SQL); exactly one statement may run.",
    "Gold and predicted queries each run in a fresh in-memory SQLite database built from the row's schema "
    f"(MySQL statements SQLite rejects are transpiled with sqlglot), {QUERY_TIMEOUT_S:g} s per query, "
    f"at most {MAX_ROWS} rows fetched; ATTACH, PRAGMA and extension loading are refused.",
    "Results compare as multisets of rows; row order counts only when the gold query has a top-level ORDER BY.",
    f"Floats compare with a tolerance of {FLOAT_TOL:g} (relative and absolute); integers and text exactly; "
    "NULL equals NULL; column names and column order are ignored.",
    "execution_accuracy: the prediction returns exactly the gold's columns (in any order) and rows. "
    "execution_accuracy_lenient: the prediction may return extra columns if a projection of it matches.",
    "Data-manipulation answers (INSERT, UPDATE, DELETE, ...) are scored by the database state after the "
    "statement: every table must hold the gold's rows (as multisets).",
    "Execution accuracy counts only rows whose gold query executes; rows whose gold fails are reported "
    "apart (gold_error).",
    "Errors, timeouts, refused statements, answers without SQL and failed requests are counted apart "
    "from wrong answers; all of them count as not correct.",
    "exact_match: predicted and gold SQL are equal after sqlglot normalization (parsed as MySQL, "
    "regenerated with normalized identifiers; case, whitespace, formatting and a final semicolon ignored).",
    "valid_sql: the prediction executes without error, over the rows whose schema builds.",
]


@dataclass
class ExampleScore:
    outcome: str  # one of OUTCOMES
    execution_match: bool | None  # None when there is nothing to compare against (gold fails)
    execution_match_lenient: bool | None
    exact_match: bool
    valid_sql: bool | None  # None when the schema itself does not build
    parses: bool  # sqlglot parses the prediction
    gold_executes: bool  # only these rows count in execution accuracy
    is_dml: bool  # the gold changes data: scored by the database state
    ordered: bool  # the gold orders its rows: order compared
    predicted_sql: str
    gold_status: str
    predicted_status: str
    error: str | None = None  # why the prediction (or the gold) failed

    def to_dict(self) -> dict:
        return asdict(self)


def normalize_sql(sql: str) -> str:
    """One canonical text per query for exact match: sqlglot's MySQL rendering with normalized identifiers."""
    text = (sql or "").strip().rstrip(";").strip()
    if not text:
        return ""
    try:
        import sqlglot

        logging.getLogger("sqlglot").setLevel(logging.ERROR)
        trees = [t for t in sqlglot.parse(text, read="mysql") if t is not None]
        if trees:
            return ";\n".join(t.sql(dialect="mysql", normalize=True) for t in trees)
    except Exception:
        pass
    return " ".join(text.split()).lower()


def sql_parses(sql: str) -> bool:
    """sqlglot reads the text as SQL statements (not as a bare expression such as `SELEC name`)."""
    if not (sql or "").strip():
        return False
    try:
        import sqlglot
        from sqlglot import exp

        logging.getLogger("sqlglot").setLevel(logging.ERROR)  # "falling back to a Command" is no news
        statements = (exp.Query, exp.DML, exp.DDL, exp.Drop, exp.Alter, exp.TruncateTable, exp.Command)
        trees = [t for t in sqlglot.parse(sql, read="mysql") if t is not None]
        return bool(trees) and all(isinstance(t, statements) for t in trees)
    except Exception:
        return False


_DML = re.compile(r"^\s*(INSERT|UPDATE|DELETE|REPLACE|CREATE|ALTER|DROP|TRUNCATE|MERGE)\b", re.IGNORECASE)


def _is_dml(sql: str, result: QueryResult) -> bool:
    # A statement that returns no columns changes data (INSERT ... / WITH ... DELETE ...).
    return (result.ok and not result.columns) or bool(_DML.match(sql or ""))


def run_gold(schema: str, gold_sql: str, *, timeout_s: float = QUERY_TIMEOUT_S) -> QueryResult:
    """The gold query's result; for data-manipulation queries with the tables after the statement."""
    result = run_query(schema, gold_sql, timeout_s=timeout_s, max_rows=MAX_ROWS, include_state=True)
    if not _is_dml(gold_sql, result):
        result.state = None  # SELECTs compare by rows only
    return result


def score_prediction(
    schema: str,
    gold_sql: str,
    predicted_sql: str,
    *,
    gold: QueryResult | None = None,
    timeout_s: float = QUERY_TIMEOUT_S,
    float_tol: float = FLOAT_TOL,
) -> ExampleScore:
    """Score a predicted query (already extracted from the answer) against the gold one on `schema`.

    `gold` may carry an earlier `run_gold` result, so comparing two models runs the gold only once.
    """
    gold = gold if gold is not None else run_gold(schema, gold_sql, timeout_s=timeout_s)
    predicted_sql = (predicted_sql or "").strip()
    is_dml = _is_dml(gold_sql, gold)
    ordered = (not is_dml) and query_orders_rows(gold_sql)
    exact = bool(predicted_sql) and normalize_sql(predicted_sql) == normalize_sql(gold_sql)
    parses = sql_parses(predicted_sql)

    common = {
        "exact_match": exact,
        "parses": parses,
        "gold_executes": gold.ok,
        "is_dml": is_dml,
        "ordered": ordered,
    }
    if not predicted_sql:
        predicted = QueryResult("no_sql", [], [], "The answer holds no SQL.")
    else:
        predicted = run_query(
            schema, predicted_sql, timeout_s=timeout_s, max_rows=MAX_ROWS, include_state=is_dml
        )
    schema_builds = predicted.status != "schema_error" and gold.status != "schema_error"
    valid = predicted.ok if schema_builds else None

    if not gold.ok:
        return ExampleScore(
            outcome=GOLD_ERROR,
            execution_match=None,
            execution_match_lenient=None,
            valid_sql=valid,
            predicted_sql=predicted_sql,
            gold_status=gold.status,
            predicted_status=predicted.status,
            error=f"gold: {gold.error or gold.status}",
            **common,
        )
    if not predicted.ok:
        outcome = {"no_sql": NO_SQL, "timeout": TIMEOUT}.get(predicted.status, ERROR)
        return ExampleScore(
            outcome=outcome,
            execution_match=False,
            execution_match_lenient=False,
            valid_sql=valid,
            predicted_sql=predicted_sql,
            gold_status=gold.status,
            predicted_status=predicted.status,
            error=predicted.error or predicted.status,
            **common,
        )
    strict = results_match(gold, predicted, ordered=ordered, float_tol=float_tol)
    lenient = strict or results_match(
        gold, predicted, ordered=ordered, float_tol=float_tol, allow_extra_columns=True
    )
    return ExampleScore(
        outcome=CORRECT if strict else WRONG,
        execution_match=strict,
        execution_match_lenient=lenient,
        valid_sql=valid,
        predicted_sql=predicted_sql,
        gold_status=gold.status,
        predicted_status=predicted.status,
        **common,
    )


def score_answer(schema: str, gold_sql: str, answer: str, **kwargs) -> ExampleScore:
    """Score a model's whole answer text: the SQL is read out of it first (see `extract_sql`)."""
    return score_prediction(schema, gold_sql, extract_sql(answer or ""), **kwargs)


def request_failed(gold_sql: str, gold: QueryResult, error: str) -> ExampleScore:
    """The score of an example whose request to the model failed: no answer, so not correct."""
    return ExampleScore(
        outcome=REQUEST_ERROR,
        execution_match=False if gold.ok else None,
        execution_match_lenient=False if gold.ok else None,
        exact_match=False,
        valid_sql=None,
        parses=False,
        gold_executes=gold.ok,
        is_dml=_is_dml(gold_sql, gold),
        ordered=query_orders_rows(gold_sql),
        predicted_sql="",
        gold_status=gold.status,
        predicted_status="request_error",
        error=error,
    )


def _share(hits: int, total: int) -> float | None:
    return round(hits / total, 4) if total else None


def summarize(scores: list[ExampleScore]) -> dict:
    """Totals over many examples: accuracies (with their denominators) and the count of each outcome."""
    executable = [s for s in scores if s.gold_executes]
    with_schema = [s for s in scores if s.valid_sql is not None]
    counts = {outcome: sum(1 for s in scores if s.outcome == outcome) for outcome in OUTCOMES}
    return {
        "examples": len(scores),
        "gold_executes": len(executable),
        "execution_accuracy": _share(sum(1 for s in executable if s.execution_match), len(executable)),
        "execution_accuracy_lenient": _share(
            sum(1 for s in executable if s.execution_match_lenient), len(executable)
        ),
        "exact_match": _share(sum(1 for s in scores if s.exact_match), len(scores)),
        "valid_sql": _share(sum(1 for s in with_schema if s.valid_sql), len(with_schema)),
        "schema_builds": len(with_schema),
        "parses": _share(sum(1 for s in scores if s.parses), len(scores)),
        "outcomes": counts,
    }
