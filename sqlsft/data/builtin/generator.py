"""The offline builtin data set: text-to-SQL rows shaped like gretelai/synthetic_text_to_sql.

Each row picks a query kind (by complexity bucket), a domain that has tables fit for it, and a schema style
(key names, column types, INSERT form); shows each table with the columns the query needs and a few others,
fills it with 2-5 random rows, and words the question with one of several phrasings. Filter values and
thresholds are drawn from the generated rows, so every analytic query returns at least one row by
construction; `verify=True` also runs each schema and query in SQLite and redraws on failure.

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
from sqlsft.data.builtin.schema import (
    ROW_KEY,
    Domain,
    SchemaStyle,
    Table,
    draw_style,
    key_name,
    load_domains,
    show_table,
)
from sqlsft.data.builtin.values import TableData, fill_table, insert_statements, pick

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
# The shape of a context, as gretel's: a table shows 3-6 columns (key included, and at least those its query
# needs) and holds 2-5 rows, fewer for the two tables of a join, fewer still for an unused (distractor) table.
# Every token costs on a CPU: through the text-to-sql template a row is p50 ~206, p95 ~289, max ~350 Gemma
# tokens (it was p50 387, p95 626 with 3-8 rows and every column).
TABLE_COLUMNS = (3, 3, 3, 3, 4, 4, 5, 6)
TABLE_ROWS = (2, 2, 2, 2, 3, 3, 3, 4, 5)
PAIR_COLUMNS = (3, 3, 3, 4)
PAIR_ROWS = (2, 2, 3, 3)
DISTRACTOR_TABLE_CHANCE = 0.08  # how often the context also holds an unused table of the domain
DISTRACTOR_COLUMNS = (3,)
DISTRACTOR_ROWS = (2,)
DOMAINS: tuple[Domain, ...] = load_domains()
# A table that another references is keyed by the reference's name when a style names keys for their table
# (`hotels.hotel_id`, as `bookings.hotel_id` refers to it): table names are unique across domains.
_REFERENCED_AS = {t.ref.parent: t.ref.name for d in DOMAINS for t in d.tables if t.ref}


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


def _key(table: Table, style: SchemaStyle) -> str:
    return key_name(table, style, _REFERENCED_AS.get(table.name, ""))


def show_tables(rng: random.Random, kind: QueryKind, tables: tuple[Table, ...], style: SchemaStyle):
    """The domain tables a kind asks about, as this row shows them."""
    if len(tables) == 1:
        (table,) = tables
        keep_ref = rng.random() < 0.3
        return (show_table(rng, table, kind.needs, style, _key(table, style), keep_ref, TABLE_COLUMNS),)
    parent, child = tables
    return (
        show_table(rng, parent, kind.needs, style, _key(parent, style), False, PAIR_COLUMNS),
        show_table(rng, child, kind.child_needs, style, _key(child, style), True, PAIR_COLUMNS),
    )


def fill_tables(rng: random.Random, tables) -> list[TableData]:
    """Rows for one table, or for a parent table and its child (whose rows refer to the parent's ids)."""
    if len(tables) == 1:
        return [(tables[0], fill_table(rng, tables[0], pick(rng, TABLE_ROWS)))]
    parent, child = tables
    parent_rows = fill_table(rng, parent, pick(rng, PAIR_ROWS))
    ids = [row[ROW_KEY] for row in parent_rows]
    return [(parent, parent_rows), (child, fill_table(rng, child, pick(rng, PAIR_ROWS), ids))]


def _draw(rng: random.Random, row_id: int, verifier: "_Verifier | None") -> dict:
    for _ in range(200):
        bucket = rng.choices(_BUCKETS, cum_weights=_BUCKET_CUM)[0]
        kind = rng.choices(_KINDS_BY_BUCKET[bucket], cum_weights=_KIND_CUM[bucket])[0]
        domain, options = pick(rng, _CANDIDATES[kind.name])
        style = draw_style(rng)
        tables = show_tables(rng, kind, pick(rng, options), style)
        data = fill_tables(rng, tables)
        built = kind.build(rng, data)
        if built is None:
            continue
        sql, values, variant = built
        context_data = _with_distractor(rng, domain, data, style)
        inserts = insert_statements(context_data, style)
        creates = [table.create(style.primary_key) for table, _ in context_data]
        if verifier is not None and not verifier.check(creates, inserts, sql, kind.bucket != "dml"):
            continue
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
            "sql_context": context(creates, inserts),
            "sql": sql,
            "sql_explanation": _capitalize(kind.explanations[variant].format(**names)),
        }
    raise RuntimeError(f"builtin generator: no valid query for row {row_id} after 200 draws")  # a bug


def context(creates: list[str], inserts: list[list[str]]) -> str:
    """gretel's sql_context: each table's CREATE TABLE then its INSERTs, on one line."""
    return " ".join(
        part
        for create, table_inserts in zip(creates, inserts, strict=True)
        for part in (create, *table_inserts)
    )


def _question_names(tables: tuple[Table, ...], values: dict) -> dict:
    """The fields a question or explanation may name: the table's words (p_/c_ for a parent and child)."""
    names = tables[0].vars() if len(tables) == 1 else {**tables[0].vars("p_"), **tables[1].vars("c_")}
    names.update(values)
    return names


def _with_distractor(
    rng: random.Random, domain: Domain, data: list[TableData], style: SchemaStyle
) -> list[TableData]:
    """Sometimes add a short unused table of the domain, as real schemas hold more than the query needs."""
    used = {t.name for t, _ in data}
    spare = [t for t in domain.tables if t.name not in used]
    if not spare or rng.random() >= DISTRACTOR_TABLE_CHANCE:
        return data
    extra = pick(rng, spare)
    rows_by_name = {t.name: rows for t, rows in data}
    parent_rows = rows_by_name.get(extra.ref.parent) if extra.ref else None
    shown = show_table(rng, extra, (), style, _key(extra, style), parent_rows is not None, DISTRACTOR_COLUMNS)
    # an added parent holds at least the ids its child rows point to
    referenced = [r[t.ref.name] for t, rows in data if t.ref and t.ref.parent == extra.name for r in rows]
    parent_ids = [r[ROW_KEY] for r in parent_rows] if parent_rows else None
    n = max([*referenced, pick(rng, DISTRACTOR_ROWS)])
    rows_by_name[extra.name] = fill_table(rng, shown, n, parent_ids)
    shown_by_name = {t.name: t for t, _ in data} | {extra.name: shown}
    return [(shown_by_name[t.name], rows_by_name[t.name]) for t in domain.tables if t.name in rows_by_name]


class _Verifier:
    """Runs each row's schema, INSERTs and gold query in one in-memory SQLite database, in a transaction
    rolled back after each check (SQLite's DDL is transactional): no database per row to open and close."""

    def __init__(self) -> None:
        self.connection = sqlite3.connect(":memory:", isolation_level=None)

    def check(self, creates: list[str], inserts: list[list[str]], sql: str, analytic: bool) -> bool:
        connection = self.connection
        try:
            connection.execute("BEGIN")
            for create, table_inserts in zip(creates, inserts, strict=True):
                connection.execute(create)
                for insert in table_inserts:
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
