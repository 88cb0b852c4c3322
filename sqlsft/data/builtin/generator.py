"""The offline builtin data set: text-to-SQL rows shaped like gretelai/synthetic_text_to_sql.

Each row picks a query kind (by complexity bucket), a domain that has tables fit for it, fills those
tables with 3-8 random rows, and words the question with one of several phrasings. Filter values
and thresholds are drawn from the generated rows, so every analytic query returns at least one row
by construction; `verify=True` also runs each schema and query in SQLite and redraws on failure.

Every row has its own random generator seeded by (seed, id): the rows are deterministic, and a
larger `num_rows` with the same seed extends a smaller one (prefix-stable).
"""

import random
import sqlite3

from sqlsft.common.errors import SqlsftError
from sqlsft.data.builtin.kinds import (
    COMPLEXITY_DESCRIPTIONS,
    QUERY_KINDS,
    TASK_DESCRIPTIONS,
    QueryKind,
)
from sqlsft.data.builtin.schema import Domain, Table, load_domains
from sqlsft.data.builtin.values import (
    ROWS_PER_TABLE,
    TableData,
    fill_table,
    insert_statements,
    pick,
    rand_int,
)

BUILTIN_COLUMNS: tuple[str, ...] = (
    "id",
    "domain",
    "domain_description",
    "sql_complexity",
    "sql_complexity_description",
    "sql_task_type",
    "sql_task_type_description",
    "sql_prompt",
    "sql_context",
    "sql",
    "sql_explanation",
)
DEFAULT_NUM_ROWS = 12000

# Share of rows per bucket; "dml" rows are the data-manipulation ones.
BUCKET_WEIGHTS = {"basic": 0.30, "aggregation": 0.30, "join": 0.16, "subquery": 0.14, "dml": 0.10}
DISTRACTOR_TABLE_CHANCE = 0.25  # how often the context also holds an unused table of the domain
DOMAINS: tuple[Domain, ...] = load_domains()


def _candidates(kind: QueryKind) -> list[tuple[Domain, list[tuple[Table, ...]]]]:
    """Per domain, the tables (or parent/child pairs) a kind can be asked about."""
    found = []
    for domain in DOMAINS:
        if kind.child_needs is None:
            options = [(t,) for t in domain.tables if t.has(kind.needs)]
        else:
            options = [
                (domain.table(c.ref.parent), c)
                for c in domain.tables
                if c.ref and c.has(kind.child_needs) and domain.table(c.ref.parent).has(kind.needs)
            ]
        if options:
            found.append((domain, options))
    return found


_CANDIDATES = {kind.name: _candidates(kind) for kind in QUERY_KINDS}
_BUCKETS = tuple(BUCKET_WEIGHTS)
_BUCKET_CUM = tuple(sum(list(BUCKET_WEIGHTS.values())[: i + 1]) for i in range(len(_BUCKETS)))
_KINDS_BY_BUCKET = {b: [k for k in QUERY_KINDS if k.bucket == b and _CANDIDATES[k.name]] for b in _BUCKETS}
_KIND_CUM = {
    b: tuple(sum(k.weight for k in kinds[: i + 1]) for i in range(len(kinds)))
    for b, kinds in _KINDS_BY_BUCKET.items()
}


def question_template_count() -> int:
    """How many distinct question phrasings the generator knows (before filling in names and values)."""
    return sum(len(p) for kind in QUERY_KINDS for p in kind.questions.values())


def _capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]


def fill_tables(rng: random.Random, tables) -> list:
    """Rows for one table, or for a parent table and its child (whose rows refer to the parent's ids)."""
    data = [(tables[0], fill_table(rng, tables[0]))]
    if len(tables) == 2:
        data.append((tables[1], fill_table(rng, tables[1], [row["id"] for row in data[0][1]])))
    return data


def _draw(rng: random.Random, row_id: int, verifier: "_Verifier | None") -> dict:
    for _ in range(200):
        bucket = rng.choices(_BUCKETS, cum_weights=_BUCKET_CUM)[0]
        kind = rng.choices(_KINDS_BY_BUCKET[bucket], cum_weights=_KIND_CUM[bucket])[0]
        domain, options = pick(rng, _CANDIDATES[kind.name])
        tables = pick(rng, options)
        data = fill_tables(rng, tables)
        built = kind.build(rng, data)
        if built is None:
            continue
        sql, values, variant = built
        context_data = _with_distractor(rng, domain, data)
        inserts = insert_statements(context_data)
        if verifier is not None and not verifier.check(inserts, sql, kind.bucket != "dml"):
            continue
        context = _context(context_data, inserts)
        names = _question_names(tables, values)
        question = _capitalize(pick(rng, kind.questions[variant]).format(**names))
        return {
            "id": row_id,
            "domain": domain.name,
            "domain_description": domain.description,
            "sql_complexity": kind.complexity,
            "sql_complexity_description": COMPLEXITY_DESCRIPTIONS[kind.complexity],
            "sql_task_type": kind.task_type,
            "sql_task_type_description": TASK_DESCRIPTIONS[kind.task_type],
            "sql_prompt": question,
            "sql_context": context,
            "sql": sql,
            "sql_explanation": _capitalize(kind.explanations[variant].format(**names)),
        }
    raise RuntimeError(f"builtin generator: no valid query for row {row_id} after 200 draws")  # a bug


def _context(data: list[TableData], inserts: list[str]) -> str:
    """gretel's sql_context: each table's CREATE TABLE then its INSERT, on one line."""
    return " ".join(
        part for (table, _), insert in zip(data, inserts, strict=True) for part in (table.create, insert)
    )


def _question_names(tables: tuple[Table, ...], values: dict) -> dict:
    """The fields a question or explanation may name: the table's words (p_/c_ for a parent and child)."""
    names = tables[0].vars() if len(tables) == 1 else {**tables[0].vars("p_"), **tables[1].vars("c_")}
    names.update(values)
    return names


def _with_distractor(rng: random.Random, domain: Domain, data: list[TableData]) -> list[TableData]:
    """Sometimes add an unused table of the domain, as real schemas hold more than the query needs."""
    used = {t.name for t, _ in data}
    spare = [t for t in domain.tables if t.name not in used]
    if not spare or rng.random() >= DISTRACTOR_TABLE_CHANCE:
        return data
    extra = pick(rng, spare)
    rows_by_name = {t.name: rows for t, rows in data}
    parent_rows = rows_by_name.get(extra.ref.parent) if extra.ref else None
    # an added parent holds at least the ids its child rows point to
    referenced = [r[t.ref.name] for t, rows in data if t.ref and t.ref.parent == extra.name for r in rows]
    parent_ids = [r["id"] for r in parent_rows] if parent_rows else None
    n = max([*referenced, rand_int(rng, *ROWS_PER_TABLE)])
    rows_by_name[extra.name] = fill_table(rng, extra, parent_ids, n=n)
    return [(t, rows_by_name[t.name]) for t in domain.tables if t.name in rows_by_name]


class _Verifier:
    """Runs each row's INSERTs and gold query in one in-memory SQLite database, rolled back after each check.

    Every table's CREATE statement is fixed, so all of them run once up front (table names are unique
    across domains, or this fails at once); a check then costs a transaction, not a schema change:
    about 3x faster.
    """

    def __init__(self) -> None:
        self.connection = sqlite3.connect(":memory:", isolation_level=None)
        for domain in DOMAINS:
            for table in domain.tables:
                self.connection.execute(table.create)

    def check(self, inserts: list[str], sql: str, analytic: bool) -> bool:
        connection = self.connection
        try:
            connection.execute("BEGIN")
            for insert in inserts:
                connection.execute(insert)
            cursor = connection.execute(sql)
            if analytic:
                first = cursor.fetchone()
                return first is not None and any(value is not None for value in first)
            return cursor.rowcount >= 1
        except sqlite3.Error:
            return False
        finally:
            if connection.in_transaction:
                connection.execute("ROLLBACK")

    def close(self) -> None:
        self.connection.close()


def generate_builtin_rows(
    num_rows: int = DEFAULT_NUM_ROWS, seed: int = 42, verify: bool = True
) -> list[dict]:
    """`num_rows` text-to-SQL rows with ids 1..num_rows and gretel's columns (BUILTIN_COLUMNS).

    Deterministic for (num_rows, seed), and prefix-stable: more rows with the same seed extend fewer.
    With `verify`, every schema and gold query is run in SQLite (analytic queries must return a row,
    data-manipulation ones must touch one) and a failing draw is replaced.
    """
    if not 0 < num_rows < 2**32:
        raise SqlsftError(
            f"The builtin data set needs a positive number of rows, not {num_rows}.",
            f"Pass --num-rows N with N >= 1 (default {DEFAULT_NUM_ROWS}).",
        )
    verifier = _Verifier() if verify else None
    try:
        base = (seed % 2**64) << 32  # one generator per row: prefix-stable, and cheap to seed from an int
        return [_draw(random.Random(base | i), i, verifier) for i in range(1, num_rows + 1)]
    finally:
        if verifier is not None:
            verifier.close()
