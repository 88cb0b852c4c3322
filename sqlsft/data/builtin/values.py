"""Random values and SQL literals for the builtin data set: table rows, thresholds and bounds that split
the generated rows, and the words a question uses for them. Every draw goes through the row's own `rng`."""

import math
import random

from sqlsft.data.builtin.schema import Column, Table, literal_function

ROWS_PER_TABLE = (3, 8)
NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}
AGGREGATES = (
    ("AVG", "average"),
    ("SUM", "total"),
    ("MAX", "maximum"),
    ("MIN", "minimum"),
    ("MAX", "highest"),
)
GREATER = ("greater than", "above", "more than", "over", "higher than")
LESS = ("less than", "below", "under", "lower than")

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


def fill_table(
    rng: random.Random, table: Table, parent_ids: list[int] | None = None, n: int = 0
) -> list[dict]:
    n = n or rand_int(rng, *ROWS_PER_TABLE)
    labels = rng.sample(table.label.pool, n) if table.label else None
    if table.ref and parent_ids is None:
        parent_ids = list(range(1, rand_int(rng, *ROWS_PER_TABLE) + 1))
    if parent_ids and len(parent_ids) > 2 and rng.random() < 0.5:
        parent_ids = parent_ids[: len(parent_ids) - rand_int(rng, 1, 2)]  # some parents without children
    rows = []
    for i in range(n):
        row = {}
        for col in table.columns:
            role = col.role
            if role == "id":
                row[col.name] = i + 1
            elif role == "label":
                row[col.name] = labels[i]
            elif role == "category":
                row[col.name] = pick(rng, col.pool)
            elif role == "number":
                row[col.name] = draw_number(rng, col)
            elif role == "date":
                row[col.name] = draw_date(rng, col)
            else:
                row[col.name] = pick(rng, parent_ids)
        rows.append(row)
    return rows


def insert_statements(data: list[TableData]) -> list[str]:
    """One INSERT statement per table, with all its rows."""
    return [
        table.insert_head
        + ", ".join(["(" + ", ".join([f(r[name]) for name, f in table.literals]) + ")" for r in rows])
        + ";"
        for table, rows in data
    ]


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
    if col.phrase and rng.random() < 0.75:
        return col.phrase.format(v=value)
    return f"whose {col.words} is {value}"


def mention(rng: random.Random, value: str) -> str:
    return value if rng.random() < 0.5 else f"'{value}'"


def count_words(rng: random.Random, n: int) -> str:
    return NUMBER_WORDS[n] if n in NUMBER_WORDS and rng.random() < 0.5 else str(n)


def pick_aggregate(rng: random.Random, col: Column) -> tuple[str, str]:
    options = AGGREGATES if col.additive else tuple(a for a in AGGREGATES if a[0] != "SUM")
    return pick(rng, options)


def unique_extreme(values: list[float], n: int, highest: bool) -> bool:
    """Whether the top (or bottom) n values are separated from the rest (no tie at the cut)."""
    ordered = sorted(values, reverse=highest)
    return len(ordered) > n and ordered[n - 1] != ordered[n]
