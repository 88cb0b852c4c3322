"""Data manipulation: INSERT, UPDATE and DELETE."""

from sqlsft.data.builtin.kinds import BASIC, SUBQUERIES, query_kind
from sqlsft.data.builtin.schema import quote
from sqlsft.data.builtin.values import (
    GREATER,
    LESS,
    draw_date,
    draw_number,
    mention,
    pick,
    sql_literal,
    threshold,
    value_phrase,
)


def _join_words(parts: list[str]) -> str:
    return ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0]


@query_kind(
    "insert",
    "dml",
    BASIC,
    (
        "Insert a new {singular} with {values}.",
        "Add a record to the {table} table with {values}.",
        "Add a new {singular} to the {table} table: {values}.",
    ),
    "This query inserts one new row into the {table} table with the given values.",
    weight=1.3,
)
def _insert(rng, data):
    ((t, rows),) = data
    used = {r[t.label.name] for r in rows} if t.label else set()
    parts, literals = [], []
    for col in t.columns:
        if col.role == "id":
            value = len(rows) + 1
        elif col.role == "label":
            value = pick(rng, [v for v in col.pool if v not in used])
        elif col.role == "category":
            value = pick(rng, col.pool)
        elif col.role == "number":
            value = draw_number(rng, col)
        elif col.role == "date":
            value = draw_date(rng, col)
        else:
            value = pick(rng, rows)[col.name]
        literal = sql_literal(col, value)
        literals.append(literal)
        parts.append(f"{col.words} {literal if col.role in ('label', 'date') else literal.strip(chr(39))}")
    sql = f"{t.insert_head}({', '.join(literals)});"
    return sql, {"values": _join_words(parts)}, ""


@query_kind(
    "update_value",
    "dml",
    BASIC,
    (
        "Update the {num_words} of {x} to {y}.",
        "Set the {num_words} of the {singular} {x} to {y}.",
        "Change the {num_words} for {x} in the {table} table to {y}.",
    ),
    "This query sets {num} to {y} in the {table} table for the row whose {label} is '{v}'.",
    needs=("label", "number"),
)
def _update_value(rng, data):
    ((t, rows),) = data
    col = pick(rng, t.numbers)
    row = pick(rng, rows)
    y = sql_literal(col, draw_number(rng, col))
    v = row[t.label.name]
    sql = f"UPDATE {t.name} SET {col.name} = {y} WHERE {t.label.name} = {quote(v)};"
    return sql, {"num": col.name, "num_words": col.words, "y": y, "v": v, "x": mention(rng, v)}, ""


@query_kind(
    "update_scale",
    "dml",
    BASIC,
    {
        "raise": (
            "Increase the {num_words} of all {plural} {phrase} by {pct}%.",
            "Raise the {num_words} by {pct} percent for {plural} {phrase}.",
        ),
        "cut": (
            "Decrease the {num_words} of all {plural} {phrase} by {pct}%.",
            "Reduce the {num_words} by {pct} percent for {plural} {phrase}.",
        ),
        "add": (
            "Add {k} to the {num_words} of every {singular} {phrase}.",
            "Increase the {num_words} of {plural} {phrase} by {k}.",
        ),
    },
    "This query updates {num} ({change}) for the rows of the {table} table where {cat} is '{v}'.",
    needs=("category", "number"),
)
def _update_scale(rng, data):
    ((t, rows),) = data
    cat, col = pick(rng, t.categories), pick(rng, t.numbers)
    v = pick(rng, rows)[cat.name]
    vars_ = {
        "cat": cat.name,
        "v": v,
        "phrase": value_phrase(rng, cat, v),
        "num": col.name,
        "num_words": col.words,
    }
    if col.decimals:
        pct = pick(rng, (5, 10, 15, 20, 25))
        variant = pick(rng, ("raise", "cut"))
        factor = f"{1 + pct / 100:.2f}" if variant == "raise" else f"{1 - pct / 100:.2f}"
        change = f"{col.name} * {factor}"
        vars_.update(pct=pct)
    else:
        k = max(col.step, pick(rng, (1, 2, 5, 10, 100, 1000)) * col.step)
        k = min(k, max(col.step, int(col.high - col.low) // 10 // col.step * col.step))
        variant, change = "add", f"{col.name} + {k}"
        vars_.update(k=k)
    vars_["change"] = change
    return f"UPDATE {t.name} SET {col.name} = {change} WHERE {cat.name} = {quote(v)};", vars_, variant


@query_kind(
    "delete_by_label",
    "dml",
    BASIC,
    (
        "Delete the {singular} {x}.",
        "Remove {x} from the {table} table.",
        "Delete the record of {x} in the {table} table.",
    ),
    "This query deletes the row of the {table} table whose {label} is '{v}'.",
    needs=("label",),
)
def _delete_by_label(rng, data):
    ((t, rows),) = data
    v = pick(rng, rows)[t.label.name]
    return f"DELETE FROM {t.name} WHERE {t.label.name} = {quote(v)};", {"v": v, "x": mention(rng, v)}, ""


@query_kind(
    "delete_threshold",
    "dml",
    BASIC,
    (
        "Delete all {plural} with {num_words} {cmp} {x}.",
        "Remove the {plural} whose {num_words} is {cmp} {x}.",
        "Delete records from the {table} table where the {num_words} is {cmp} {x}.",
    ),
    "This query deletes the rows of the {table} table where {num} {op} {x}.",
    needs=("number",),
)
def _delete_threshold(rng, data):
    ((t, rows),) = data
    col = pick(rng, t.numbers)
    greater = rng.random() < 0.4
    x = threshold(rng, col, rows, greater)
    if x is None:
        return None
    op = ">" if greater else "<"
    cmp = pick(rng, GREATER if greater else LESS)
    return (
        f"DELETE FROM {t.name} WHERE {col.name} {op} {x};",
        {"num": col.name, "num_words": col.words, "x": x, "op": op, "cmp": cmp},
        "",
    )


@query_kind(
    "update_category",
    "dml",
    BASIC,
    (
        "Change the {cat_word} of {x} to {w}.",
        "Set the {cat_word} of the {singular} {x} to {w}.",
        "Update the {table} table so that {x} has {cat_word} {w}.",
    ),
    "This query sets {cat} to '{w}' for the row of the {table} table whose {label} is '{v}'.",
    needs=("label", "category"),
)
def _update_category(rng, data):
    ((t, rows),) = data
    col = pick(rng, t.categories)
    row = pick(rng, rows)
    w = pick(rng, [p for p in col.pool if p != row[col.name]])
    v = row[t.label.name]
    sql = f"UPDATE {t.name} SET {col.name} = {quote(w)} WHERE {t.label.name} = {quote(v)};"
    return sql, {"cat": col.name, "cat_word": col.words, "w": w, "v": v, "x": mention(rng, v)}, ""


@query_kind(
    "delete_before_date",
    "dml",
    BASIC,
    (
        "Delete {plural} with a {date_words} before {y}.",
        "Remove all {plural} whose {date_words} is earlier than January 1, {y}.",
        "Delete records from the {table} table with a {date_words} before {y}-01-01.",
    ),
    "This query deletes the rows of the {table} table whose {date} is before '{y}-01-01'.",
    needs=("date",),
)
def _delete_before_date(rng, data):
    ((t, rows),) = data
    col = pick(rng, t.dates)
    years = sorted({r[col.name][:4] for r in rows})
    if len(years) < 2:
        return None
    y = pick(rng, years[1:])
    sql = f"DELETE FROM {t.name} WHERE {col.name} < '{y}-01-01';"
    return sql, {"date": col.name, "date_words": col.words, "y": y}, ""


@query_kind(
    "delete_by_parent",
    "dml",
    SUBQUERIES,
    (
        "Delete all {c_plural} belonging to {p_plural} {p_phrase}.",
        "Remove the {c_plural} of every {p_singular} {p_phrase}.",
    ),
    "This query deletes the {c_table} rows whose {ref} is IN a subquery of {p_table} ids where {cat} is '{v}'.",
    needs=("category",),
    child_needs=(),
    weight=0.6,
)
def _delete_by_parent(rng, data):
    (p, prows), (c, crows) = data
    cat = pick(rng, p.categories)
    linked = {r[c.ref.name] for r in crows}
    candidates = [r for r in prows if r["id"] in linked]
    if not candidates:
        return None
    v = pick(rng, candidates)[cat.name]
    sql = (
        f"DELETE FROM {c.name} WHERE {c.ref.name} IN (SELECT id FROM {p.name} WHERE {cat.name} = {quote(v)});"
    )
    return sql, {"cat": cat.name, "v": v, "p_phrase": value_phrase(rng, cat, v), "ref": c.ref.name}, ""
