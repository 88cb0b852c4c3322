"""Aggregation: COUNT, SUM, AVG, MIN, MAX, GROUP BY and HAVING over one table."""

from sqlsft.data.builtin.kinds import AGGREGATION, query_kind
from sqlsft.data.builtin.schema import quote
from sqlsft.data.builtin.values import (
    GREATER,
    aggregate_vars,
    category_vars,
    comparison,
    count_words,
    group_values,
    nice_in,
    number_text,
    number_vars,
    pick,
    rand_int,
    sum_or_average,
    unique_extreme,
)


@query_kind(
    "count_filter",
    "aggregation",
    AGGREGATION,
    (
        "How many {plural} are there {phrase}?",
        "Count the {plural} {phrase}.",
        "What is the number of {plural} {phrase}?",
        "How many {plural} {phrase} does the {table} table list?",
        "What is the total number of {plural} {phrase}?",
        "Find the number of {plural} {phrase}.",
        "How many {plural} {phrase} are recorded?",
        "Determine the count of {plural} {phrase}.",
    ),
    "This query counts the rows of the {table} table where {cat} is '{v}'.",
    needs=("category",),
    weight=1.5,
)
def _count_filter(rng, data):
    ((t, rows),) = data
    col = pick(rng, t.categories)
    v = pick(rng, rows)[col.name]
    sql = f"SELECT COUNT(*) FROM {t.name} WHERE {col.name} = {quote(v)};"
    return sql, category_vars(rng, col, v), ""


@query_kind(
    "count_all",
    "aggregation",
    AGGREGATION,
    (
        "How many {plural} are there?",
        "What is the total number of {plural}?",
        "Count all records in the {table} table.",
        "How many rows does the {table} table have?",
        "How many {plural} are in the database?",
    ),
    "This query counts all rows of the {table} table.",
    weight=0.5,
)
def _count_all(rng, data):
    ((t, _rows),) = data
    return f"SELECT COUNT(*) FROM {t.name};", {}, ""


@query_kind(
    "aggregate_filter",
    "aggregation",
    AGGREGATION,
    (
        "What is the {agg_words} {num_words} of {plural} {phrase}?",
        "Find the {agg_words} {num_words} for {plural} {phrase}.",
        "Calculate the {agg_words} {num_words} among {plural} {phrase}.",
        "Show the {agg_words} {num_words} of all {plural} {phrase}.",
        "What is the {agg_words} {num_words} for {plural} {phrase}?",
        "Determine the {agg_words} {num_words} of {plural} {phrase}.",
        "Get the {agg_words} {num_words} across {plural} {phrase}.",
    ),
    "This query computes the {agg_words} {num} ({func}) over the rows of the {table} table where {cat} is '{v}'.",
    needs=("category", "number"),
    weight=1.5,
)
def _aggregate_filter(rng, data):
    ((t, rows),) = data
    cat = pick(rng, t.categories)
    v = pick(rng, rows)[cat.name]
    agg = aggregate_vars(rng, pick(rng, t.numbers))
    sql = f"SELECT {agg['func']}({agg['num']}) FROM {t.name} WHERE {cat.name} = {quote(v)};"
    return sql, {**category_vars(rng, cat, v), **agg}, ""


@query_kind(
    "aggregate_all",
    "aggregation",
    AGGREGATION,
    (
        "What is the {agg_words} {num_words} across all {plural}?",
        "Calculate the {agg_words} {num_words} in the {table} table.",
        "What is the {agg_words} {num_words} of {plural}?",
        "Find the {agg_words} {num_words} of all {plural}.",
        "Show the {agg_words} {num_words} for every {singular} combined.",
    ),
    "This query applies {func} to the {num} column of the whole {table} table.",
    needs=("number",),
)
def _aggregate_all(rng, data):
    ((t, _rows),) = data
    agg = aggregate_vars(rng, pick(rng, t.numbers))
    return f"SELECT {agg['func']}({agg['num']}) FROM {t.name};", agg, ""


@query_kind(
    "count_number_filter",
    "aggregation",
    AGGREGATION,
    (
        "How many {plural} have {num_words} {cmp} {x}?",
        "Count the {plural} whose {num_words} is {cmp} {x}.",
        "What is the number of {plural} with {num_words} {cmp} {x}?",
        "How many {plural} have a {num_words} {cmp} {x}?",
        "Find the number of {plural} with {num_words} {cmp} {x}.",
    ),
    "This query counts the rows of the {table} table where {num} {op} {x}.",
    needs=("number",),
)
def _count_number_filter(rng, data):
    ((t, rows),) = data
    condition = comparison(rng, pick(rng, t.numbers), rows)
    if condition is None:
        return None
    sql = f"SELECT COUNT(*) FROM {t.name} WHERE {condition['num']} {condition['op']} {condition['x']};"
    return sql, condition, ""


@query_kind(
    "group_count",
    "aggregation",
    AGGREGATION,
    (
        "How many {plural} are there per {cat_word}?",
        "Count the number of {plural} in each {cat_word}.",
        "Show the number of {plural} for every {cat_word}.",
        "What is the count of {plural} by {cat_word}?",
        "How many {plural} does each {cat_word} have?",
        "List each {cat_word} and its number of {plural}.",
    ),
    "This query groups the {table} table by {cat} and counts the rows in each group.",
    needs=("category",),
    weight=1.3,
)
def _group_count(rng, data):
    ((t, _rows),) = data
    col = pick(rng, t.categories)
    sql = f"SELECT {col.name}, COUNT(*) FROM {t.name} GROUP BY {col.name};"
    return sql, {"cat": col.name, "cat_word": col.words}, ""


@query_kind(
    "group_aggregate",
    "aggregation",
    AGGREGATION,
    (
        "What is the {agg_words} {num_words} of {plural} per {cat_word}?",
        "Show the {agg_words} {num_words} for each {cat_word}.",
        "Calculate the {agg_words} {num_words} of {plural} grouped by {cat_word}.",
        "For each {cat_word}, what is the {agg_words} {num_words} of {plural}?",
        "List the {agg_words} {num_words} of {plural} in each {cat_word}.",
        "Find the {agg_words} {num_words} by {cat_word}.",
    ),
    "This query groups the {table} table by {cat} and computes {func}({num}) for each group.",
    needs=("category", "number"),
    weight=1.3,
)
def _group_aggregate(rng, data):
    ((t, _rows),) = data
    cat = pick(rng, t.categories)
    agg = aggregate_vars(rng, pick(rng, t.numbers))
    sql = f"SELECT {cat.name}, {agg['func']}({agg['num']}) FROM {t.name} GROUP BY {cat.name};"
    return sql, {"cat": cat.name, "cat_word": cat.words, **agg}, ""


@query_kind(
    "having_count",
    "aggregation",
    AGGREGATION,
    {
        "names": (
            "Which {cat_words} have more than {k} {k_noun}?",
            "List the {cat_words} with more than {k} {k_noun}.",
            "Find {cat_words} that have over {k} {k_noun}.",
        ),
        "counts": (
            "Show each {cat_word} that has more than {k} {k_noun}, with the number of {plural}.",
            "For {cat_words} with more than {k} {k_noun}, how many {plural} does each have?",
        ),
    },
    "This query groups the {table} table by {cat} and keeps the groups with more than {count} rows (HAVING).",
    needs=("category",),
)
def _having_count(rng, data):
    ((t, rows),) = data
    col = pick(rng, t.categories)
    counts: dict[str, int] = {}
    for r in rows:
        counts[r[col.name]] = counts.get(r[col.name], 0) + 1
    top = max(counts.values())
    if top < 2:
        return None
    count = rand_int(rng, 1, top - 1)
    variant = pick(rng, ("names", "counts"))
    columns = col.name if variant == "names" else f"{col.name}, COUNT(*)"
    sql = f"SELECT {columns} FROM {t.name} GROUP BY {col.name} HAVING COUNT(*) > {count};"
    return (
        sql,
        {
            "cat": col.name,
            "cat_word": col.words,
            "cat_words": col.plural,
            "count": count,
            "k": count_words(rng, count),
            "k_noun": t.singular if count == 1 else t.plural,
        },
        variant,
    )


@query_kind(
    "having_aggregate",
    "aggregation",
    AGGREGATION,
    {
        "names": (
            "Which {cat_words} have {a_agg_words} {num_words} {cmp} {x}?",
            "List the {cat_words} whose {agg_words} {num_words} is {cmp} {x}.",
            "Find {cat_words} where the {agg_words} {num_words} of {plural} is {cmp} {x}.",
        ),
        "values": (
            "Show the {agg_words} {num_words} per {cat_word}, only for {cat_words} where it is {cmp} {x}.",
            "For each {cat_word} with {a_agg_words} {num_words} {cmp} {x}, show that {agg_words}.",
        ),
    },
    "This query groups the {table} table by {cat}, computes {func}({num}) and keeps groups above {x} with HAVING.",
    needs=("category", "number"),
)
def _having_aggregate(rng, data):
    ((t, rows),) = data
    cat, col = pick(rng, t.categories), pick(rng, t.numbers)
    func, words = sum_or_average(rng, col)
    groups = group_values(rows, cat.name, col.name)
    if len(groups) < 2:
        return None
    totals = sorted(sum(g) if func == "SUM" else sum(g) / len(g) for g in groups.values())
    if totals[-2] == totals[-1]:
        return None
    x = nice_in(totals[-2], totals[-1], col.decimals)
    if x is None:
        return None
    x = number_text(x, col.decimals)
    variant = pick(rng, ("names", "values"))
    columns = cat.name if variant == "names" else f"{cat.name}, {func}({col.name})"
    sql = f"SELECT {columns} FROM {t.name} GROUP BY {cat.name} HAVING {func}({col.name}) > {x};"
    return (
        sql,
        {
            "cat": cat.name,
            "cat_word": cat.words,
            "cat_words": cat.plural,
            **number_vars(col),
            "agg_words": words,
            "a_agg_words": ("an " if words[0] in "aeiou" else "a ") + words,
            "func": func,
            "x": x,
            "cmp": pick(rng, GREATER),
        },
        variant,
    )


@query_kind(
    "count_distinct",
    "aggregation",
    AGGREGATION,
    (
        "How many different {cat_words} are there in the {table} table?",
        "Count the distinct {cat_words} among {plural}.",
        "How many unique {cat_words} do the {plural} have?",
        "What is the number of distinct {cat_words} of {plural}?",
    ),
    "This query counts the distinct values of {cat} in the {table} table.",
    needs=("category",),
    weight=0.6,
)
def _count_distinct(rng, data):
    ((t, _rows),) = data
    col = pick(rng, t.categories)
    return f"SELECT COUNT(DISTINCT {col.name}) FROM {t.name};", {"cat": col.name, "cat_words": col.plural}, ""


@query_kind(
    "group_top",
    "aggregation",
    AGGREGATION,
    (
        "Which {cat_word} has the {extreme} {agg_words} {num_words}?",
        "Find the {cat_word} with the {extreme} {agg_words} {num_words} of {plural}.",
        "Among all {cat_words}, which one has the {extreme} {agg_words} {num_words}?",
        "Identify the {cat_word} with the {extreme} {agg_words} {num_words}.",
    ),
    "This query groups the {table} table by {cat}, orders the groups by {func}({num}) {order} and keeps the first.",
    needs=("category", "number"),
)
def _group_top(rng, data):
    ((t, rows),) = data
    cat, col = pick(rng, t.categories), pick(rng, t.numbers)
    func, words = sum_or_average(rng, col)
    highest = rng.random() < 0.7
    totals = [
        sum(g) if func == "SUM" else sum(g) / len(g) for g in group_values(rows, cat.name, col.name).values()
    ]
    if not unique_extreme(totals, 1, highest):
        return None
    order = "DESC" if highest else "ASC"
    sql = f"SELECT {cat.name} FROM {t.name} GROUP BY {cat.name} ORDER BY {func}({col.name}) {order} LIMIT 1;"
    return (
        sql,
        {
            "cat": cat.name,
            "cat_word": cat.words,
            "cat_words": cat.plural,
            **number_vars(col),
            "agg_words": words,
            "func": func,
            "order": order,
            "extreme": "highest" if highest else "lowest",
        },
        "",
    )


@query_kind(
    "aggregate_year",
    "aggregation",
    AGGREGATION,
    (
        "What was the {agg_words} {num_words} of {plural} with a {date_words} in {y}?",
        "Calculate the {agg_words} {num_words} for {plural} whose {date_words} falls in {y}.",
        "Show the {agg_words} {num_words} of all {plural} from {y}.",
        "What was the {agg_words} {num_words} in {y}?",
    ),
    "This query computes {func}({num}) over the rows of the {table} table whose {date} lies within {y}.",
    needs=("number", "date"),
)
def _aggregate_year(rng, data):
    ((t, rows),) = data
    agg, date = aggregate_vars(rng, pick(rng, t.numbers)), pick(rng, t.dates)
    y = pick(rng, rows)[date.name][:4]
    sql = (
        f"SELECT {agg['func']}({agg['num']}) FROM {t.name} "
        f"WHERE {date.name} BETWEEN '{y}-01-01' AND '{y}-12-31';"
    )
    return sql, {**agg, "date": date.name, "date_words": date.words, "y": y}, ""
