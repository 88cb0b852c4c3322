"""Data manipulation: INSERT, UPDATE and DELETE."""

from sqlsft.data.builtin.kinds import BASIC, SUBQUERIES, query_kind
from sqlsft.data.builtin.schema import quote
from sqlsft.data.builtin.values import (
    category_vars,
    comparison,
    draw_value,
    linked_parents,
    mention,
    number_vars,
    pick,
    pick_category_value,
    sql_literal,
    values_tuple,
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
        "Insert a record for a new {singular}: {values}.",
        "Create a new {singular} entry with {values}.",
    ),
    "This query inserts one new row into the {table} table with the given values.",
    weight=1.3,
)
def _insert(rng, data):
    ((t, rows),) = data
    used = {r[t.label.name] for r in rows} if t.label else set()
    ref_values = [r[t.ref.name] for r in rows] if t.ref else None
    row, parts = {}, []
    for col, (name, literal) in zip(t.columns, t.literals, strict=True):
        if col.role == "id":
            value = len(rows) + 1
        elif col.role == "label":
            value = pick(rng, [v for v in col.pool if v not in used])
        else:
            value = draw_value(rng, col, ref_values)
        row[name] = value
        text = literal(value)
        parts.append(f"{col.words} {text if col.role in ('label', 'date') else text.strip(chr(39))}")
    columns = "" if rng.random() < 0.2 else f"({t.column_list}) "
    sql = f"INSERT INTO {t.name} {columns}VALUES {values_tuple(t, row)};"
    return sql, {"values": _join_words(parts)}, ""


@query_kind(
    "update_value",
    "dml",
    BASIC,
    (
        "Update the {num_words} of {x} to {y}.",
        "Set the {num_words} of the {singular} {x} to {y}.",
        "Change the {num_words} for {x} in the {table} table to {y}.",
        "Update the {table} table to set the {num_words} of {x} to {y}.",
        "Modify the {num_words} of {x} to be {y}.",
    ),
    "This query sets {num} to {y} in the {table} table for the row whose {label} is '{v}'.",
    needs=("label", "number"),
)
def _update_value(rng, data):
    ((t, rows),) = data
    col = pick(rng, t.numbers)
    y = sql_literal(col, draw_value(rng, col))
    v = pick(rng, rows)[t.label.name]
    sql = f"UPDATE {t.name} SET {col.name} = {y} WHERE {t.label.name} = {quote(v)};"
    return sql, {**number_vars(col), "y": y, "v": v, "x": mention(rng, v)}, ""


@query_kind(
    "update_scale",
    "dml",
    BASIC,
    {
        "raise": (
            "Increase the {num_words} of all {plural} {phrase} by {pct}%.",
            "Raise the {num_words} by {pct} percent for {plural} {phrase}.",
            "Update the {num_words} of {plural} {phrase}, increasing it by {pct}%.",
        ),
        "cut": (
            "Decrease the {num_words} of all {plural} {phrase} by {pct}%.",
            "Reduce the {num_words} by {pct} percent for {plural} {phrase}.",
            "Lower the {num_words} of every {singular} {phrase} by {pct}%.",
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
    vars_ = {**category_vars(rng, cat, v), **number_vars(col)}
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
        "Delete all records of the {singular} {x}.",
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
        "Delete all records of {plural} with a {num_words} {cmp} {x}.",
    ),
    "This query deletes the rows of the {table} table where {num} {op} {x}.",
    needs=("number",),
)
def _delete_threshold(rng, data):
    ((t, rows),) = data
    condition = comparison(rng, pick(rng, t.numbers), rows, greater_chance=0.4)
    if condition is None:
        return None
    return f"DELETE FROM {t.name} WHERE {condition['num']} {condition['op']} {condition['x']};", condition, ""


@query_kind(
    "update_category",
    "dml",
    BASIC,
    (
        "Change the {cat_word} of {x} to {w}.",
        "Set the {cat_word} of the {singular} {x} to {w}.",
        "Update the {table} table so that {x} has {cat_word} {w}.",
        "Update the {cat_word} of {x} to '{w}'.",
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
    picked = pick_category_value(rng, p, linked_parents(p, prows, c, crows))
    if picked is None:
        return None
    cat, v = picked
    sql = (
        f"DELETE FROM {c.name} WHERE {c.ref.name} IN "
        f"(SELECT {p.key} FROM {p.name} WHERE {cat.name} = {quote(v)});"
    )
    return sql, {**category_vars(rng, cat, v, "p_phrase"), "ref": c.ref.name}, ""
