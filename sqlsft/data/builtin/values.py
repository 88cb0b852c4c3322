"""Random values and SQL literals for the builtin data set: table rows and their INSERT statements,
thresholds and bounds that split the generated rows, and the words a question uses for them; plus the small
helpers every query kind shares. Every draw goes through the row's own `rng`."""

import math
import random

from sqlsft.data.builtin.schema import ROW_KEY, Column, SchemaStyle, Table, literal_function

# a reference to a table the context does not show points at the ids of this many rows
UNSHOWN_PARENT_ROWS = (2, 2, 3, 3, 3, 4, 4, 5)
PER_ROW_INSERTS_MAX_ROWS = 3  # one INSERT per row only for a few rows in all, or the context grows long
NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}
AGGREGATES = (
    ("AVG", "average"),
    ("SUM", "total"),
    ("MAX", "maximum"),
    ("MIN", "minimum"),
    ("MAX", "highest"),
    ("MIN", "lowest"),
    ("AVG", "mean"),
)
GREATER = ("greater than", "above", "more than", "over", "higher than")
LESS = ("less than", "below", "under", "lower than", "smaller than")

TableData = tuple[Table, list[dict]]  # a table and its generated rows


def pick(rng: random.Random, options):
    """rng.choice, without its overhead (this module draws a few hundred thousand times per second)."""
    return options[int(rng.random() * len(options))]


def rand_int(rng: random.Random, low: int, high: int) -> int:
    """rng.randint(low, high), cheaper."""
    return low + int(rng.random() * (high - low + 1))


def number_text(value: float, decimals: int) -> str:
    if decimals == 0 or value == int(value):
        return str(int(value))
    return f"{value:.{decimals}f}"


def sql_literal(col: Column, value) -> str:
    return literal_function(col)(value)


def draw_number(rng: random.Random, col: Column):
    if col.decimals:
        return round(rng.uniform(col.low, col.high), col.decimals)
    return rand_int(rng, int(col.low) // col.step, int(col.high) // col.step) * col.step


def draw_date(rng: random.Random, col: Column) -> str:
    return (
        f"{rand_int(rng, int(col.low), int(col.high))}-{rand_int(rng, 1, 12):02d}-{rand_int(rng, 1, 28):02d}"
    )


def draw_value(rng: random.Random, col: Column, parent_ids: list[int] | None = None):
    """A value for a column that is neither the key nor a label (labels are drawn without repeats)."""
    role = col.role
    if role == "category":
        return pick(rng, col.pool)
    if role == "number":
        return draw_number(rng, col)
    if role == "date":
        return draw_date(rng, col)
    return pick(rng, parent_ids)


def fill_table(rng: random.Random, table: Table, n: int, parent_ids: list[int] | None = None) -> list[dict]:
    """`n` rows keyed by the shown column names (the key under ROW_KEY); a reference takes `parent_ids`."""
    labels = rng.sample(table.label.pool, n) if table.label else None
    if table.ref and parent_ids is None:
        parent_ids = list(range(1, pick(rng, UNSHOWN_PARENT_ROWS) + 1))
    if parent_ids and len(parent_ids) > 2 and rng.random() < 0.5:
        parent_ids = parent_ids[:-1]  # a parent without children
    rows = []
    for i in range(n):
        row = {ROW_KEY: i + 1}
        for col in table.columns[1:]:
            row[col.name] = labels[i] if col.role == "label" else draw_value(rng, col, parent_ids)
        rows.append(row)
    return rows


def values_tuple(table: Table, row: dict) -> str:
    return "(" + ", ".join([f(row[name]) for name, f in table.literals]) + ")"


def insert_statements(data: list[TableData], style: SchemaStyle) -> list[list[str]]:
    """Each table's INSERT statements, in the row's insert form: one multi-row INSERT with or without the
    column list, or (when the tables hold few rows in all) one INSERT per row."""
    per_row = style.insert_form.startswith("per_row") and (
        sum(len(rows) for _, rows in data) <= PER_ROW_INSERTS_MAX_ROWS
    )
    bare = style.insert_form.endswith("bare")
    statements = []
    for table, rows in data:
        head = f"INSERT INTO {table.name} " + ("" if bare else f"({table.column_list}) ") + "VALUES "
        if per_row:
            statements.append([head + values_tuple(table, r) + ";" for r in rows])
        else:
            statements.append([head + ", ".join([values_tuple(table, r) for r in rows]) + ";"])
    return statements


def nice_in(lo: float, hi: float, decimals: int) -> float | None:
    """The roundest number x with lo <= x < hi and at most `decimals` decimals, if there is one."""
    for k in range(7, -decimals - 1, -1):
        step = 10.0**k
        x = round(math.ceil(round(lo / step, 9)) * step, decimals)
        if lo <= x < hi:
            return x
    return None


def threshold(rng: random.Random, col: Column, rows: list[dict], greater: bool) -> str | None:
    """A round threshold that some but not all rows pass (`> x` when greater, else `< x`)."""
    values = sorted({r[col.name] for r in rows})
    if len(values) < 2:
        return None
    i = rand_int(rng, 1, len(values) - 1)
    if greater:
        x = nice_in(values[i - 1], values[i], col.decimals)
    else:
        x = nice_in(-values[i], -values[i - 1], col.decimals)
        x = None if x is None else -x
    return None if x is None else number_text(x, col.decimals)


def comparison(rng: random.Random, col: Column, rows: list[dict], greater_chance: float = 0.6) -> dict | None:
    """A `num op x` condition that some but not all rows pass, with the words for it (or None)."""
    greater = rng.random() < greater_chance
    x = threshold(rng, col, rows, greater)
    if x is None:
        return None
    return {
        "num": col.name,
        "num_words": col.words,
        "x": x,
        "op": ">" if greater else "<",
        "cmp": pick(rng, GREATER if greater else LESS),
    }


def passes(value: float, condition: dict) -> bool:
    x = float(condition["x"])
    return value > x if condition["op"] == ">" else value < x


def round_bounds(col: Column, value: float) -> tuple[str, str]:
    """Round bounds a <= value <= b."""
    step = 10.0 ** max(math.floor(math.log10(value)) - 1, -col.decimals) if value > 0 else 1.0
    low = math.floor(round(value / step, 9)) * step
    high = math.ceil(round(value / step, 9)) * step
    if high == low:
        high = low + step
    return number_text(round(low, col.decimals), col.decimals), number_text(
        round(high, col.decimals), col.decimals
    )


def value_phrase(rng: random.Random, col: Column, value: str) -> str:
    if col.phrase and rng.random() < 0.8:
        return col.phrase.format(v=value)
    return pick(
        rng, (f"whose {col.words} is {value}", f"with {col.words} {value}", f"with a {col.words} of {value}")
    )


def pick_category_value(rng: random.Random, table: Table, rows: list[dict]) -> tuple[Column, str] | None:
    """One of the table's category columns and a value of it taken from `rows` (None when there are none)."""
    col = pick(rng, table.categories)
    if not rows:
        return None
    return col, pick(rng, rows)[col.name]


def category_vars(rng: random.Random, col: Column, value: str, phrase_key: str = "phrase") -> dict:
    """The names a question about `col = value` uses."""
    return {"cat": col.name, "cat_word": col.words, "v": value, phrase_key: value_phrase(rng, col, value)}


def number_vars(col: Column, words_key: str = "num_words") -> dict:
    return {"num": col.name, words_key: col.words}


def aggregate_vars(rng: random.Random, col: Column, words_key: str = "num_words") -> dict:
    func, words = pick_aggregate(rng, col)
    return {**number_vars(col, words_key), "func": func, "agg_words": words}


def mention(rng: random.Random, value: str) -> str:
    return value if rng.random() < 0.6 else f"'{value}'"


def count_words(rng: random.Random, n: int) -> str:
    return NUMBER_WORDS[n] if n in NUMBER_WORDS and rng.random() < 0.5 else str(n)


def pick_aggregate(rng: random.Random, col: Column) -> tuple[str, str]:
    options = AGGREGATES if col.additive else tuple(a for a in AGGREGATES if a[0] != "SUM")
    return pick(rng, options)


def sum_or_average(rng: random.Random, col: Column) -> tuple[str, str]:
    return ("SUM", "total") if col.additive and rng.random() < 0.6 else ("AVG", "average")


def group_values(rows: list[dict], key: str, value: str) -> dict:
    """{key value: [the `value` column of its rows]}."""
    groups: dict = {}
    for r in rows:
        groups.setdefault(r[key], []).append(r[value])
    return groups


def linked_parents(
    parent: Table, parent_rows: list[dict], child: Table, child_rows: list[dict]
) -> list[dict]:
    """The parent rows that have at least one child row."""
    linked = {r[child.ref.name] for r in child_rows}
    return [r for r in parent_rows if r[ROW_KEY] in linked]


def linked_children(parent_rows: list[dict], child: Table, child_rows: list[dict]) -> list[dict]:
    """The child rows whose parent exists."""
    ids = {r[ROW_KEY] for r in parent_rows}
    return [r for r in child_rows if r[child.ref.name] in ids]


def unique_extreme(values: list[float], n: int, highest: bool) -> bool:
    """Whether the top (or bottom) n values are separated from the rest (no tie at the cut)."""
    ordered = sorted(values, reverse=highest)
    return len(ordered) > n and ordered[n - 1] != ordered[n]
