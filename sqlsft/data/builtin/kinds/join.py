"""Single joins over a parent table and its child table."""

from sqlsft.data.builtin.kinds import SINGLE_JOIN, query_kind
from sqlsft.data.builtin.schema import Table, quote
from sqlsft.data.builtin.values import (
    aggregate_vars,
    category_vars,
    comparison,
    linked_children,
    linked_parents,
    mention,
    number_vars,
    pick,
    pick_category_value,
)


def join_on(p: Table, c: Table, how: str = "INNER JOIN") -> str:
    return f"{p.name} {how} {c.name} ON {p.name}.{p.key} = {c.name}.{c.ref.name}"


@query_kind(
    "join_list",
    "join",
    SINGLE_JOIN,
    (
        "Show the {p_label_word} of each {p_singular} {p_phrase} and the {c_num_words} of its {c_plural}.",
        "List the {c_num_words} of all {c_plural} that belong to {p_plural} {p_phrase}, with the "
        "{p_singular} {p_label_word}.",
        "For {p_plural} {p_phrase}, what is the {c_num_words} of each of their {c_plural}?",
        "What is the {c_num_words} of every {c_singular} of {p_plural} {p_phrase}? Show the {p_singular} too.",
    ),
    "This query joins {p_table} and {c_table} on the {ref} key, keeps {p_plural} whose {cat} is '{v}', and "
    "returns the {p_label} with each {c_singular}'s {num}.",
    needs=("label", "category"),
    child_needs=("number",),
)
def _join_list(rng, data):
    (p, prows), (c, crows) = data
    cat, col = pick(rng, p.categories), pick(rng, c.numbers)
    candidates = linked_parents(p, prows, c, crows)
    if not candidates:
        return None
    v = pick(rng, candidates)[cat.name]
    sql = (
        f"SELECT {p.name}.{p.label.name}, {c.name}.{col.name} FROM {join_on(p, c)} "
        f"WHERE {p.name}.{cat.name} = {quote(v)};"
    )
    return (
        sql,
        {**category_vars(rng, cat, v, "p_phrase"), **number_vars(col, "c_num_words"), "ref": c.ref.name},
        "",
    )


@query_kind(
    "join_group",
    "join",
    SINGLE_JOIN,
    (
        "What is the {agg_words} {c_num_words} of {c_plural} for each {p_singular}?",
        "Show each {p_singular} with the {agg_words} {c_num_words} of its {c_plural}.",
        "Calculate the {agg_words} {c_num_words} per {p_singular}, using the {c_table} table.",
        "List the {p_label_words} of {p_plural} and the {agg_words} {c_num_words} of their {c_plural}.",
        "For every {p_singular}, find the {agg_words} {c_num_words} of its {c_plural}.",
    ),
    "This query joins {p_table} and {c_table} on the {ref} key, groups by the {p_singular} {p_label} and "
    "computes {func}({num}) for each.",
    needs=("label",),
    child_needs=("number",),
    weight=1.3,
)
def _join_group(rng, data):
    (p, _prows), (c, _crows) = data
    agg = aggregate_vars(rng, pick(rng, c.numbers), "c_num_words")
    sql = (
        f"SELECT {p.name}.{p.label.name}, {agg['func']}({c.name}.{agg['num']}) FROM {join_on(p, c)} "
        f"GROUP BY {p.name}.{p.label.name};"
    )
    return sql, {**agg, "ref": c.ref.name}, ""


@query_kind(
    "join_count_of",
    "join",
    SINGLE_JOIN,
    (
        "How many {c_plural} does the {p_singular} {x} have?",
        "Count the {c_plural} of {x}.",
        "What is the number of {c_plural} linked to the {p_singular} {x}?",
        "How many {c_plural} are associated with {x}?",
        "Find the total number of {c_plural} for the {p_singular} {x}.",
    ),
    "This query joins {p_table} and {c_table} on the {ref} key and counts the {c_plural} of the {p_singular} "
    "whose {p_label} is '{v}'.",
    needs=("label",),
    child_needs=(),
)
def _join_count_of(rng, data):
    (p, prows), (c, crows) = data
    candidates = linked_parents(p, prows, c, crows)
    if not candidates:
        return None
    v = pick(rng, candidates)[p.label.name]
    sql = f"SELECT COUNT(*) FROM {join_on(p, c)} WHERE {p.name}.{p.label.name} = {quote(v)};"
    return sql, {"v": v, "x": mention(rng, v), "ref": c.ref.name}, ""


@query_kind(
    "join_child_filter",
    "join",
    SINGLE_JOIN,
    (
        "Which {p_plural} have {c_plural} {c_phrase}?",
        "List the {p_plural} that have at least one {c_singular} {c_phrase}.",
        "Find the {p_label_words} of {p_plural} with {c_plural} {c_phrase}.",
        "Show the distinct {p_plural} that have any {c_plural} {c_phrase}.",
    ),
    "This query joins {p_table} and {c_table} on the {ref} key and returns each distinct {p_label} that has at "
    "least one {c_singular} whose {cat} is '{v}'.",
    needs=("label",),
    child_needs=("category",),
)
def _join_child_filter(rng, data):
    (p, prows), (c, crows) = data
    picked = pick_category_value(rng, c, linked_children(prows, c, crows))
    if picked is None:
        return None
    cat, v = picked
    sql = (
        f"SELECT DISTINCT {p.name}.{p.label.name} FROM {join_on(p, c)} "
        f"WHERE {c.name}.{cat.name} = {quote(v)};"
    )
    return sql, {**category_vars(rng, cat, v, "c_phrase"), "ref": c.ref.name}, ""


@query_kind(
    "join_group_parent_category",
    "join",
    SINGLE_JOIN,
    (
        "What is the {agg_words} {c_num_words} of {c_plural}, grouped by the {cat_word} of their {p_singular}?",
        "Show the {agg_words} {c_num_words} of {c_plural} for each {p_singular} {cat_word}.",
        "For each {cat_word} of {p_plural}, calculate the {agg_words} {c_num_words} of their {c_plural}.",
        "Find the {agg_words} {c_num_words} of {c_plural} by {p_singular} {cat_word}.",
    ),
    "This query joins {p_table} and {c_table} on the {ref} key, groups by {p_table}.{cat} and computes "
    "{func}({num}).",
    needs=("category",),
    child_needs=("number",),
)
def _join_group_parent_category(rng, data):
    (p, _prows), (c, _crows) = data
    cat = pick(rng, p.categories)
    agg = aggregate_vars(rng, pick(rng, c.numbers), "c_num_words")
    sql = (
        f"SELECT {p.name}.{cat.name}, {agg['func']}({c.name}.{agg['num']}) FROM {join_on(p, c)} "
        f"GROUP BY {p.name}.{cat.name};"
    )
    return sql, {"cat": cat.name, "cat_word": cat.words, **agg, "ref": c.ref.name}, ""


@query_kind(
    "join_aggregate_filter",
    "join",
    SINGLE_JOIN,
    (
        "What is the {agg_words} {c_num_words} of {c_plural} belonging to {p_plural} {p_phrase}?",
        "Calculate the {agg_words} {c_num_words} of all {c_plural} of {p_plural} {p_phrase}.",
        "Find the {agg_words} {c_num_words} across {c_plural} whose {p_singular} is {p_phrase_short}.",
        "What is the {agg_words} {c_num_words} for {c_plural} at {p_plural} {p_phrase}?",
    ),
    "This query joins {p_table} and {c_table} on the {ref} key, keeps {p_plural} whose {cat} is '{v}' and "
    "computes {func}({num}) of their {c_plural}.",
    needs=("category",),
    child_needs=("number",),
)
def _join_aggregate_filter(rng, data):
    (p, prows), (c, crows) = data
    picked = pick_category_value(rng, p, linked_parents(p, prows, c, crows))
    if picked is None:
        return None
    cat, v = picked
    agg = aggregate_vars(rng, pick(rng, c.numbers), "c_num_words")
    sql = (
        f"SELECT {agg['func']}({c.name}.{agg['num']}) FROM {join_on(p, c)} "
        f"WHERE {p.name}.{cat.name} = {quote(v)};"
    )
    short = cat.phrase.format(v=v) if cat.phrase else f"one with {cat.words} {v}"
    return (
        sql,
        {**category_vars(rng, cat, v, "p_phrase"), "p_phrase_short": short, **agg, "ref": c.ref.name},
        "",
    )


@query_kind(
    "left_join_count",
    "join",
    SINGLE_JOIN,
    (
        "Show each {p_singular} and how many {c_plural} it has, including those with none.",
        "List every {p_singular} with its number of {c_plural}, even if it has none.",
        "How many {c_plural} does each {p_singular} have? Include {p_plural} without any.",
        "Count the {c_plural} of every {p_singular}, showing zero for {p_plural} that have none.",
    ),
    "This query left-joins {c_table} to {p_table} on the {ref} key, so {p_plural} without {c_plural} are kept, "
    "and counts the matched {c_plural} per {p_label}.",
    needs=("label",),
    child_needs=(),
    weight=0.7,
)
def _left_join_count(rng, data):
    (p, _prows), (c, _crows) = data
    sql = (
        f"SELECT {p.name}.{p.label.name}, COUNT({c.name}.{c.key}) FROM {join_on(p, c, 'LEFT JOIN')} "
        f"GROUP BY {p.name}.{p.label.name};"
    )
    return sql, {"ref": c.ref.name}, ""


@query_kind(
    "join_child_threshold",
    "join",
    SINGLE_JOIN,
    (
        "List the {p_singular} {p_label_word} and {c_num_words} for every {c_singular} with {c_num_words} "
        "{cmp} {x}.",
        "Which {p_plural} have {c_plural} with {c_num_words} {cmp} {x}? Show the {c_num_words} too.",
        "Show the {p_label_words} of {p_plural} next to the {c_num_words} of their {c_plural}, for {c_plural} "
        "with {c_num_words} {cmp} {x}.",
    ),
    "This query joins {p_table} and {c_table} on the {ref} key and returns the {p_label} and {num} of "
    "{c_plural} where {num} {op} {x}.",
    needs=("label",),
    child_needs=("number",),
)
def _join_child_threshold(rng, data):
    (p, prows), (c, crows) = data
    condition = comparison(rng, pick(rng, c.numbers), linked_children(prows, c, crows))
    if condition is None:
        return None
    num, op, x = condition["num"], condition["op"], condition["x"]
    sql = (
        f"SELECT {p.name}.{p.label.name}, {c.name}.{num} FROM {join_on(p, c)} WHERE {c.name}.{num} {op} {x};"
    )
    condition["c_num_words"] = condition.pop("num_words")
    return sql, {**condition, "ref": c.ref.name}, ""
