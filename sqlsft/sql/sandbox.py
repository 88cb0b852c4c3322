"""Run untrusted SQL safely against a schema: the one entry point, `run_query`.

Every call builds a fresh in-memory SQLite database from the schema (CREATE TABLE + INSERT text,
transpiled from MySQL with sqlglot statement by statement when SQLite rejects it), then runs ONE
statement of the answer, in a sandbox process (pool.py, worker.py, engine.py) that is killed when a
phase overruns its time limit and is capped in memory. What is refused and why is in engine.py; how
results compare is in compare.py.

Limits, all enforced whatever the input (the numbers are in `Limits`):
- time: the schema, the statement and the reading back of tables each get `timeout_s`; SQLite's
  progress handler stops the statement at the deadline, and the process is killed GRACE_S after it
  when one long function call keeps it busy. A call returns within timeout_s + GRACE_S of its phase.
- memory: SQLite's heap and the database pages are capped inside the process, the whole process by
  its address space; rows are kept only up to `max_rows` and a byte budget (the rest is counted and,
  with digest=True, hashed) so the caller never holds more than the budget.
- input: schema and SQL text over their size limits, or text that is not valid Unicode (a lone
  surrogate), are refused with a reason before anything runs.
"""

import time

from sqlsft.sql.pool import POOL, SandboxFailed, SandboxStopped
from sqlsft.sql.results import (
    DEFAULT_LIMITS,
    MIB,
    Limits,
    Phase,
    QueryJob,
    QueryResult,
    QueryStatus,
    RowDigest,
)

__all__ = [
    "DEFAULT_LIMITS",
    "Limits",
    "QueryResult",
    "QueryStatus",
    "RowDigest",
    "run_in_sandbox",
    "run_query",
]


def _text_problem(text: str, what: str, limit_bytes: int) -> str | None:
    """Why `text` cannot run (not valid Unicode, or over its size limit), or None."""
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        return (
            f"{what} holds a character that is not valid Unicode text ({exc.object[exc.start]!a} "
            f"at position {exc.start}, a lone surrogate): nothing was run."
        )
    if size > limit_bytes:
        return f"{what} is {size / MIB:.1f} MiB; at most {limit_bytes / MIB:g} MiB may run."
    return None


def run_in_sandbox(kind: str, payload, first_phase_s: float, limits: Limits = DEFAULT_LIMITS):
    """Run one job of `kind` (see worker.py) in a sandbox process; raises SandboxStopped/SandboxFailed."""
    reuse = limits == DEFAULT_LIMITS  # the heap limit can only be lowered in a process: keep defaults apart
    return POOL.call(kind, payload, first_phase_s, limits.address_space_bytes, reuse)


def run_query(
    schema: str,
    query: str,
    *,
    timeout_s: float = 2.0,
    max_rows: int = 1000,
    include_state: bool = False,
    read_dialect: str | None = "mysql",
    digest: bool = False,
    limits: Limits = DEFAULT_LIMITS,
) -> QueryResult:
    """Run ONE statement of `query` against a fresh in-memory database built from `schema`.

    The schema, the statement and (with include_state) the reading back of every table each get
    `timeout_s`. SQL that SQLite rejects is retried once transpiled from `read_dialect` (None turns
    that off). `digest=True` counts and hashes every row beyond the `max_rows` kept (for scoring: see
    compare.py). Never raises for bad SQL or bad text: the status says what happened.
    """
    started = time.perf_counter()
    schema, query = schema or "", query or ""
    problem = _text_problem(schema, "The schema", limits.schema_bytes)
    if problem:
        return QueryResult(QueryStatus.SCHEMA_ERROR, [], [], f"Schema: {problem}")
    problem = _text_problem(query, "The SQL", limits.sql_bytes)
    if problem:
        return QueryResult(QueryStatus.ERROR, [], [], problem)
    job = QueryJob(schema, query, timeout_s, max_rows, include_state, read_dialect, digest, limits)
    try:
        return run_in_sandbox("query", job, timeout_s, limits)  # elapsed_s: measured in the sandbox
    except SandboxStopped as stop:
        if stop.phase == Phase.SCHEMA:
            result = QueryResult(QueryStatus.SCHEMA_ERROR, [], [], f"Schema: {stop}")
        else:
            result = QueryResult(
                QueryStatus.TIMEOUT if stop.timed_out else QueryStatus.ERROR, [], [], str(stop)
            )
    except SandboxFailed as failure:
        result = QueryResult(QueryStatus.ERROR, [], [], f"the sandbox failed: {failure}")
    result.elapsed_s = time.perf_counter() - started
    return result
