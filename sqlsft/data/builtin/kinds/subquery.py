"""Subqueries: compared with an aggregate, IN / NOT IN a child table, correlated."""

from sqlsft.data.builtin.kinds import SUBQUERIES, query_kind
from sqlsft.data.builtin.schema import ROW_KEY, quote
from sqlsft.data.builtin.values import (
    category_vars,
    comparison,
    count_words,
    group_values,
    linked_children,
    number_vars,
    pick,
    pick_category_value,
    rand_int,
)


@query_kind(
    "compare_average",
    "subquery",
    SUBQUERIES,
    (
        "Which {plural} have {num_words} {side} the average?",
        "List the {plural} whose {num_words} is {side} the average {num_words}.",
        "Find {plural} with {num_words} {side} the average of all {plural}.",
        "Identify {plural} with a {num_words} {side} average.",
        "Show the {label_words} of {plural} whose {num_words} is {side} the mean.",
    ),
    "This query compares each row's {num} with the average from a subquery (SELECT AVG({num}) FROM {table}) and "
    "keeps the {label} of rows {side} it.",
    needs=("label", "number"),
    weight=1.5,
)
def _compare_average(rng, data):
    ((t, rows),) = data
    col = pick(rng, t.numbers)
    values = [r[col.name] for r in rows]
    if min(values) == max(values):
        return None
    above = rng.random() < 0.6
    op, side = (">", "above") if above else ("<", "below")
    sql = f"SELECT {t.label.name} FROM {t.name} WHERE {col.name} {op} (SELECT AVG({col.name}) FROM {t.name});"
    return sql, {**number_vars(col), "side": side}, ""


@query_kind(
    "equals_extreme",
    "subquery",
    SUBQUERIES,
    (
        "List all {plural} whose {num_words} equals the {extreme} {num_words} in the table, with that value.",
        "Show every {singular} that shares the {extreme} {num_words}, along with the {num_words}.",
        "Using a subquery, find the {plural} with the {extreme} {num_words} and show it.",
        "Which {plural} have the {extreme} {num_words}? Show their {num_words}.",
    ),
    "This query finds the {extreme} {num} with a subquery ({func}) and returns every {singular} with that value.",
    needs=("label", "number"),
)
def _equals_extreme(rng, data):
    ((t, _rows),) = data
    col = pick(rng, t.numbers)
    func, extreme = ("MAX", "highest") if rng.random() < 0.6 else ("MIN", "lowest")
    sql = (
        f"SELECT {t.label.name}, {col.name} FROM {t.name} "
        f"WHERE {col.name} = (SELECT {func}({col.name}) FROM {t.name});"
    )
    return sql, {**number_vars(col), "extreme": extreme, "func": func}, ""


@query_kind(
    "in_child_category",
    "subquery",
    SUBQUERIES,
    (
        "Which {p_plural} appear in the {c_table} table with {c_plural} {c_phrase}?",
        "Using a subquery, list the {p_plural} that have any {c_singular} {c_phrase}.",
        "Find the {p_label_words} of {p_plural} whose id is among the {c_plural} {c_phrase}.",
        "List the {p_plural} that have {c_plural} {c_phrase}.",
    ),
    "This query selects the {p_label} of {p_plural} whose id is IN a subquery of {c_table}.{ref} values for "
    "rows where {cat} is '{v}'.",
    needs=("label",),
    child_needs=("category",),
)
def _in_child_category(rng, data):
    (p, prows), (c, crows) = data
    picked = pick_category_value(rng, c, linked_children(prows, c, crows))
    if picked is None:
        return None
    cat, v = picked
    sql = (
        f"SELECT {p.label.name} FROM {p.name} WHERE {p.key} IN "
        f"(SELECT {c.ref.name} FROM {c.name} WHERE {cat.name} = {quote(v)});"
    )
    return sql, {**category_vars(rng, cat, v, "c_phrase"), "ref": c.ref.name}, ""


@query_kind(
    "not_in_child",
    "subquery",
    SUBQUERIES,
    (
        "Which {p_plural} have no {c_plural}?",
        "List the {p_plural} without any {c_plural}.",
        "Find the {p_plural} that do not appear in the {c_table} table.",
        "Show the {p_label_words} of {p_plural} that have no {c_plural} recorded.",
    ),
    "This query selects the {p_label} of {p_plural} whose id is NOT IN the {ref} values of the {c_table} table.",
    needs=("label",),
    child_needs=(),
)
def _not_in_child(rng, data):
    (p, prows), (c, crows) = data
    linked = {r[c.ref.name] for r in crows}
    if all(r[ROW_KEY] in linked for r in prows):
        return None
    sql = f"SELECT {p.label.name} FROM {p.name} WHERE {p.key} NOT IN (SELECT {c.ref.name} FROM {c.name});"
    return sql, {"ref": c.ref.name}, ""


@query_kind(
    "category_above_average",
    "subquery",
    SUBQUERIES,
    (
        "Which {plural} {phrase} have {num_words} above the overall average?",
        "List the {plural} {phrase} whose {num_words} exceeds the average {num_words} of all {plural}.",
        "Find {plural} {phrase} with {num_words} greater than the average for the whole table.",
    ),
    "This query keeps rows of the {table} table where {cat} is '{v}' and {num} is greater than the overall "
    "average computed by a subquery.",
    needs=("label", "category", "number"),
)
def _category_above_average(rng, data):
    ((t, rows),) = data
    cat, col = pick(rng, t.categories), pick(rng, t.numbers)
    average = sum(r[col.name] for r in rows) / len(rows)
    above = [r for r in rows if r[col.name] > average + 1e-9]
    if not above:
        return None
    v = pick(rng, above)[cat.name]
    sql = (
        f"SELECT {t.label.name} FROM {t.name} WHERE {cat.name} = {quote(v)} "
        f"AND {col.name} > (SELECT AVG({col.name}) FROM {t.name});"
    )
    return sql, {**category_vars(rng, cat, v), **number_vars(col)}, ""


@query_kind(
    "in_child_threshold",
    "subquery",
    SUBQUERIES,
    (
        "Which {p_plural} have at least one {c_singular} with {c_num_words} {cmp} {x}?",
        "List the {p_plural} that have {c_plural} with {c_num_words} {cmp} {x}.",
        "Using a subquery, find {p_plural} with any {c_singular} whose {c_num_words} is {cmp} {x}.",
    ),
    "This query selects {p_plural} whose id is IN a subquery of {c_table} rows with {num} {op} {x}.",
    needs=("label",),
    child_needs=("number",),
)
def _in_child_threshold(rng, data):
    (p, prows), (c, crows) = data
    condition = comparison(rng, pick(rng, c.numbers), linked_children(prows, c, crows))
    if condition is None:
        return None
    sql = (
        f"SELECT {p.label.name} FROM {p.name} WHERE {p.key} IN "
        f"(SELECT {c.ref.name} FROM {c.name} WHERE {condition['num']} {condition['op']} {condition['x']});"
    )
    condition["c_num_words"] = condition.pop("num_words")
    return sql, condition, ""


@query_kind(
    "above_group_average",
    "subquery",
    SUBQUERIES,
    (
        "Which {plural} have {num_words} above the average for their {cat_word}?",
        "List the {plural} whose {num_words} is higher than the average {num_words} of their {cat_word}.",
        "Find {plural} that beat the average {num_words} of {plural} with the same {cat_word}.",
    ),
    "This correlated subquery compares each {singular}'s {num} with the average {num} of rows sharing its {cat}.",
    needs=("label", "category", "number"),
)
def _above_group_average(rng, data):
    ((t, rows),) = data
    cat, col = pick(rng, t.categories), pick(rng, t.numbers)
    if all(min(g) == max(g) for g in group_values(rows, cat.name, col.name).values()):
        return None
    sql = (
        f"SELECT t1.{t.label.name} FROM {t.name} AS t1 WHERE t1.{col.name} > "
        f"(SELECT AVG(t2.{col.name}) FROM {t.name} AS t2 WHERE t2.{cat.name} = t1.{cat.name});"
    )
    return sql, {"cat": cat.name, "cat_word": cat.words, **number_vars(col)}, ""


@query_kind(
    "child_count_above",
    "subquery",
    SUBQUERIES,
    {
        "any": (
            "Which {p_plural} have at least one {c_singular}?",
            "List the {p_plural} that have {c_plural}.",
        ),
        "more": (
            "Which {p_plural} have more than {k} {k_noun}?",
            "List the {p_plural} with more than {k} {k_noun}.",
            "Find {p_plural} that have over {k} {k_noun}.",
        ),
    },
    "This query uses a correlated subquery to count each {p_singular}'s {c_plural} and keeps those with more "
    "than {count}.",
    needs=("label",),
    child_needs=(),
)
def _child_count_above(rng, data):
    (p, prows), (c, crows) = data
    counts: dict[int, int] = {}
    for r in linked_children(prows, c, crows):
        counts[r[c.ref.name]] = counts.get(r[c.ref.name], 0) + 1
    if not counts:
        return None
    count = rand_int(rng, 0, max(counts.values()) - 1)
    sql = (
        f"SELECT {p.label.name} FROM {p.name} WHERE "
        f"(SELECT COUNT(*) FROM {c.name} WHERE {c.name}.{c.ref.name} = {p.name}.{p.key}) > {count};"
    )
    noun = c.singular if count == 1 else c.plural
    variant = "any" if count == 0 else "more"
    return sql, {"count": count, "k": count_words(rng, count), "k_noun": noun}, variant
