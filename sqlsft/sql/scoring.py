"""Scoring one text-to-SQL prediction against its gold query: pure functions, no model, no server.

The rules are published in every eval report (`SCORING_RULES`) and in the README. The execution and
comparison work is the SQL sandbox's (`sqlsft.sql.sandbox`); this module decides what each outcome
means and how the scores add up.
"""

import re
from dataclasses import asdict, dataclass

from sqlsft.sql.compare import FLOAT_ABS_TOL, FLOAT_REL_TOL, INTEGER_REL_TOL, Verdict, compare_results
from sqlsft.sql.pool import GRACE_S, SandboxFailed, SandboxStopped
from sqlsft.sql.results import DEFAULT_LIMITS, MIB, QueryResult
from sqlsft.sql.sandbox import run_in_sandbox, run_query
from sqlsft.sql.statements import extract_sql, query_orders_rows

QUERY_TIMEOUT_S = 2.0
MAX_ROWS = 1000
FLOAT_TOL = FLOAT_REL_TOL
MAX_ANSWER_BYTES = 1 * MIB  # a longer answer is not read at all

# What happened to one example. Only "correct" and "wrong" count in execution accuracy; the
# others say why no comparison could be made and are reported apart.
CORRECT, WRONG, ERROR, TIMEOUT, NO_SQL, GOLD_ERROR, REQUEST_ERROR, TOO_LARGE = (
    "correct",
    "wrong",
    "error",
    "timeout",
    "no_sql",
    "gold_error",
    "request_error",
    "too_large",
)
OUTCOMES = (CORRECT, WRONG, ERROR, TIMEOUT, NO_SQL, GOLD_ERROR, REQUEST_ERROR, TOO_LARGE)

_LIMITS = DEFAULT_LIMITS
SCORING_RULES = [
    "The predicted query is the first ```sql block of the model's answer (else its first fenced block, "
    f"else bare SQL); exactly one statement may run. Answers over {MAX_ANSWER_BYTES // MIB} MiB are not read.",
    "Gold and predicted queries each run in a fresh in-memory SQLite database built from the row's schema "
    "(MySQL statements SQLite rejects are transpiled with sqlglot), in a separate sandbox process; "
    "ATTACH, PRAGMA, VACUUM and extension loading are refused.",
    f"Time: the schema, the query and the reading back of tables each get {QUERY_TIMEOUT_S:g} s; SQLite's "
    f"progress handler stops a query at its deadline, and the sandbox process is killed {GRACE_S:g} s after "
    "it when one long function call keeps it busy (timeout).",
    f"Memory: SQLite's heap is capped at {_LIMITS.heap_bytes // MIB} MiB, each database at "
    f"{_LIMITS.db_pages * 4 // 1024} MiB, one value at {_LIMITS.value_bytes // MIB} MiB, the sandbox process "
    f"at {_LIMITS.address_space_bytes // MIB} MiB of address space; SQL over {_LIMITS.sql_bytes // MIB} MiB, "
    f"a schema over {_LIMITS.schema_bytes // MIB} MiB, or text that is not valid Unicode is refused.",
    f"Rows: at most {MAX_ROWS} rows and {_LIMITS.result_bytes // MIB} MiB of values are kept per query; every "
    "further row is counted and hashed. A result cut that way is equal only if the full row counts agree "
    "and the hashes of all rows do; where floats or several possible column orders leave that open, the "
    "example is reported apart (too_large) and counts as not correct.",
    "Results compare as multisets of rows; row order counts only when the gold query has a top-level ORDER BY.",
    f"Numbers compare within a relative tolerance of {FLOAT_TOL:g} (absolute {FLOAT_ABS_TOL:g} near zero), "
    f"which absorbs float rounding noise only; an integer against a float within {INTEGER_REL_TOL:g}; two "
    "integers exactly; text exactly; NULL equals NULL; column names and column order are ignored.",
    "execution_accuracy: the prediction returns exactly the gold's columns (in any order) and rows. "
    "execution_accuracy_lenient: the prediction may return extra columns if a projection of it matches.",
    "Data-manipulation answers (INSERT, UPDATE, DELETE, ...) are scored by the database state after the "
    "statement: every table must hold the gold's rows (as multisets).",
    "Execution accuracy counts only rows whose gold query executes; rows whose gold fails are reported "
    "apart (gold_error).",
    "Errors, timeouts, refused statements, answers without SQL, results too large to compare and failed "
    "requests are counted apart from wrong answers; all of them count as not correct.",
    "exact_match: predicted and gold SQL are equal after sqlglot normalization (parsed as MySQL, "
    "regenerated with normalized identifiers; case, whitespace, formatting and a final semicolon ignored); "
    f"sqlglot also runs in the sandbox, within {QUERY_TIMEOUT_S:g} s (over it: no exact match, does not parse).",
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


_DML = re.compile(r"^\s*(INSERT|UPDATE|DELETE|REPLACE|CREATE|ALTER|DROP|TRUNCATE|MERGE)\b", re.IGNORECASE)


def _is_dml(sql: str, result: QueryResult) -> bool:
    # A statement that returns no columns changes data (INSERT ... / WITH ... DELETE ...).
    return (result.ok and not result.columns) or bool(_DML.match(sql or ""))


def run_gold(schema: str, gold_sql: str, *, timeout_s: float = QUERY_TIMEOUT_S) -> QueryResult:
    """The gold query's result; for data-manipulation queries with the tables after the statement."""

    def run(include_state: bool) -> QueryResult:
        return run_query(
            schema, gold_sql, timeout_s=timeout_s, max_rows=MAX_ROWS, include_state=include_state, digest=True
        )

    # SELECTs compare by rows only: reading every table back for them would only cost time.
    result = run(include_state=bool(_DML.match(gold_sql or "")))
    if result.state is None and _is_dml(
        gold_sql, result
    ):  # e.g. WITH ... DELETE: no rows, so it changes data
        result = run(include_state=True)
    return result


def _judge_text(predicted_sql: str, gold_sql: str, timeout_s: float) -> tuple[bool, bool]:
    """(exact match, parses), by sqlglot in the sandbox: parsing untrusted text gets a time limit too."""
    if (
        not predicted_sql or len(predicted_sql) > DEFAULT_LIMITS.sql_bytes
    ):  # too long to run: not judged either
        return False, False
    try:
        return run_in_sandbox("judge_text", (predicted_sql, gold_sql, timeout_s), timeout_s)
    except (SandboxStopped, SandboxFailed):
        return False, False


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
    exact, parses = _judge_text(predicted_sql, gold_sql, timeout_s)

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
            schema,
            predicted_sql,
            timeout_s=timeout_s,
            max_rows=MAX_ROWS,
            include_state=is_dml,
            digest=True,
        )
    schema_builds = predicted.status != "schema_error" and gold.status != "schema_error"
    valid = predicted.ok if schema_builds else None
    statuses = {
        "predicted_sql": predicted_sql,
        "gold_status": gold.status,
        "predicted_status": predicted.status,
    }

    if not gold.ok:
        return ExampleScore(
            outcome=GOLD_ERROR,
            execution_match=None,
            execution_match_lenient=None,
            valid_sql=valid,
            error=f"gold: {gold.error or gold.status}",
            **statuses,
            **common,
        )
    if not predicted.ok:
        outcome = {"no_sql": NO_SQL, "timeout": TIMEOUT}.get(predicted.status, ERROR)
        return ExampleScore(
            outcome=outcome,
            execution_match=False,
            execution_match_lenient=False,
            valid_sql=valid,
            error=predicted.error or predicted.status,
            **statuses,
            **common,
        )
    strict = compare_results(gold, predicted, ordered=ordered, float_tol=float_tol)
    lenient = strict
    if strict != Verdict.MATCH:
        lenient = compare_results(
            gold, predicted, ordered=ordered, float_tol=float_tol, allow_extra_columns=True
        )
    outcome = {Verdict.MATCH: CORRECT, Verdict.MISMATCH: WRONG, Verdict.UNDECIDED: TOO_LARGE}[strict]
    error = None
    if outcome == TOO_LARGE:
        error = (
            f"cannot score: a result was cut at {MAX_ROWS} rows or {DEFAULT_LIMITS.result_bytes // MIB} MiB "
            "and the hashes of all its rows cannot tell (floats, or several possible column orders)"
        )
    return ExampleScore(
        outcome=outcome,
        execution_match=strict == Verdict.MATCH,
        execution_match_lenient=lenient == Verdict.MATCH,
        valid_sql=valid,
        error=error,
        **statuses,
        **common,
    )


def score_answer(schema: str, gold_sql: str, answer: str, **kwargs) -> ExampleScore:
    """Score a model's whole answer text: the SQL is read out of it first (see `extract_sql`)."""
    answer = answer or ""
    if len(answer) > MAX_ANSWER_BYTES:  # characters: at least as many bytes
        gold = kwargs.get("gold") or run_gold(
            schema, gold_sql, timeout_s=kwargs.get("timeout_s", QUERY_TIMEOUT_S)
        )
        return _refused(
            gold_sql,
            gold,
            f"the answer is {len(answer) / MIB:.1f} MiB: over {MAX_ANSWER_BYTES // MIB} MiB, not read",
        )
    return score_prediction(schema, gold_sql, extract_sql(answer), **kwargs)


def request_failed(gold_sql: str, gold: QueryResult, error: str) -> ExampleScore:
    """The score of an example whose request to the model failed: no answer, so not correct."""
    return _refused(gold_sql, gold, error, REQUEST_ERROR)


def _refused(gold_sql: str, gold: QueryResult, error: str, outcome: str = ERROR) -> ExampleScore:
    """The score of an example with no prediction to run: not correct."""
    return ExampleScore(
        outcome=outcome,
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
        predicted_status=outcome,
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
