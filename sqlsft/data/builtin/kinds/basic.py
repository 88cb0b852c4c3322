"""Basic selects: one table, filters, sorting, DISTINCT, LIKE."""

from sqlsft.data.builtin.kinds import BASIC, query_kind
from sqlsft.data.builtin.schema import quote
from sqlsft.data.builtin.values import (
    category_vars,
    comparison,
    count_words,
    mention,
    number_vars,
    passes,
    pick,
    rand_int,
    round_bounds,
    unique_extreme,
)


@query_kind(
    "filter_category",
    "basic",
    BASIC,
    (
        "List the {label_words} of all {plural} {phrase}.",
        "What are the {label_words} of the {plural} {phrase}?",
        "Show the {label_words} of {plural} {phrase}.",
        "Find all {plural} {phrase}.",
        "Identify the {plural} {phrase}.",
        "Display the {label_words} of every {singular} {phrase}.",
        "Get the {label_word} of each {singular} {phrase}.",
        "Retrieve the {label_words} of {plural} {phrase}.",
        "What {plural} are there {phrase}?",
        "Return the {label_words} for {plural} {phrase}.",
    ),
    "This query selects the {label} column from the {table} table, keeping only the rows where {cat} is '{v}'.",
    needs=("label", "category"),
    weight=1.5,
)
def _filter_category(rng, data):
    ((t, rows),) = data
    col = pick(rng, t.categories)
    v = pick(rng, rows)[col.name]
    sql = f"SELECT {t.label.name} FROM {t.name} WHERE {col.name} = {quote(v)};"
    return sql, category_vars(rng, col, v), ""


@query_kind(
    "filter_number",
    "basic",
    BASIC,
    {
        "names": (
            "Which {plural} have {num_words} {cmp} {x}?",
            "List the {plural} with {num_words} {cmp} {x}.",
            "Find the {label_words} of {plural} whose {num_words} is {cmp} {x}.",
            "Identify {plural} with a {num_words} {cmp} {x}.",
            "Show all {plural} that have {num_words} {cmp} {x}.",
            "What are the {label_words} of {plural} with {num_words} {cmp} {x}?",
        ),
        "values": (
            "Show the {label_word} and {num_words} of each {singular} whose {num_words} is {cmp} {x}.",
            "List {plural} with {num_words} {cmp} {x}, along with their {num_words}.",
            "What are the {label_words} and {num_words} of {plural} with {num_words} {cmp} {x}?",
            "Display the {num_words} of every {singular} with {num_words} {cmp} {x}, with its {label_word}.",
        ),
    },
    "This query returns {columns} from the {table} table for rows where {num} {op} {x}.",
    needs=("label", "number"),
    weight=1.5,
)
def _filter_number(rng, data):
    ((t, rows),) = data
    condition = comparison(rng, pick(rng, t.numbers), rows)
    if condition is None:
        return None
    variant = pick(rng, ("names", "values"))
    columns = t.label.name if variant == "names" else f"{t.label.name}, {condition['num']}"
    sql = f"SELECT {columns} FROM {t.name} WHERE {condition['num']} {condition['op']} {condition['x']};"
    return sql, {**condition, "columns": columns}, variant


@query_kind(
    "filter_category_and_number",
    "basic",
    BASIC,
    (
        "Which {plural} {phrase} have {num_words} {cmp} {x}?",
        "List the {plural} {phrase} with {num_words} {cmp} {x}.",
        "Find the {label_words} of {plural} {phrase} whose {num_words} is {cmp} {x}.",
        "Show {plural} {phrase} that have a {num_words} {cmp} {x}.",
        "Identify all {plural} {phrase} with {num_words} {cmp} {x}.",
        "What are the {label_words} of {plural} {phrase} with {num_words} {cmp} {x}?",
    ),
    "This query selects the {label} of {plural} in the {table} table where {cat} is '{v}' and {num} {op} {x}.",
    needs=("label", "category", "number"),
)
def _filter_category_and_number(rng, data):
    ((t, rows),) = data
    cat = pick(rng, t.categories)
    v = pick(rng, rows)[cat.name]
    condition = comparison(rng, pick(rng, t.numbers), rows)
    if condition is None or not any(passes(r[condition["num"]], condition) for r in rows if r[cat.name] == v):
        return None
    sql = (
        f"SELECT {t.label.name} FROM {t.name} WHERE {cat.name} = {quote(v)} "
        f"AND {condition['num']} {condition['op']} {condition['x']};"
    )
    return sql, {**category_vars(rng, cat, v), **condition}, ""


@query_kind(
    "between",
    "basic",
    BASIC,
    (
        "List the {plural} with {num_words} between {a} and {b}.",
        "Which {plural} have {num_words} from {a} to {b}?",
        "Find the {label_words} of {plural} whose {num_words} is between {a} and {b}.",
        "Show all {plural} with a {num_words} in the range {a} to {b}.",
        "What are the {plural} whose {num_words} falls between {a} and {b}?",
    ),
    "This query selects the {label} of rows in the {table} table whose {num} lies between {a} and {b} (inclusive).",
    needs=("label", "number"),
)
def _between(rng, data):
    ((t, rows),) = data
    col = pick(rng, t.numbers)
    a, b = round_bounds(col, pick(rng, rows)[col.name])
    sql = f"SELECT {t.label.name} FROM {t.name} WHERE {col.name} BETWEEN {a} AND {b};"
    return sql, {**number_vars(col), "a": a, "b": b}, ""


@query_kind(
    "details",
    "basic",
    BASIC,
    (
        "Show all details of the {singular} {x}.",
        "What information does the {table} table hold about {x}?",
        "Get every column for the {singular} named {x}.",
        "Display the full record of {x}.",
        "Show me everything about {x}.",
        "Retrieve all information on the {singular} {x}.",
    ),
    "This query returns every column of the {table} table for the row whose {label} is '{v}'.",
    needs=("label",),
    weight=0.8,
)
def _details(rng, data):
    ((t, rows),) = data
    v = pick(rng, rows)[t.label.name]
    return f"SELECT * FROM {t.name} WHERE {t.label.name} = {quote(v)};", {"v": v, "x": mention(rng, v)}, ""


@query_kind(
    "distinct",
    "basic",
    BASIC,
    (
        "What are the distinct {cat_words} of {plural}?",
        "List the unique {cat_words} in the {table} table.",
        "Which {cat_words} appear among the {plural}?",
        "Show all the different {cat_words} of {plural}.",
        "List each {cat_word} that has at least one {singular}, without repeats.",
    ),
    "This query lists each distinct value of {cat} in the {table} table once.",
    needs=("category",),
    weight=0.6,
)
def _distinct(rng, data):
    ((t, _rows),) = data
    col = pick(rng, t.categories)
    sql = f"SELECT DISTINCT {col.name} FROM {t.name};"
    return sql, {"cat": col.name, "cat_word": col.words, "cat_words": col.plural}, ""


@query_kind(
    "date_filter",
    "basic",
    BASIC,
    {
        "since": (
            "List the {plural} with a {date_words} in {y} or later.",
            "Which {plural} have a {date_words} on or after January 1, {y}?",
            "Show the {label_words} of {plural} whose {date_words} is {y}-01-01 or later.",
            "Find all {plural} with a {date_words} since the start of {y}.",
        ),
        "in": (
            "Which {plural} have a {date_words} in {y}?",
            "List the {plural} with a {date_words} during {y}.",
            "Show the {label_words} of {plural} whose {date_words} falls in {y}.",
            "What {plural} had their {date_words} in {y}?",
        ),
    },
    {
        "since": "This query selects the {label} of rows in the {table} table with {date} on or after '{y}-01-01'.",
        "in": "This query selects the {label} of rows in the {table} table whose {date} lies within {y}.",
    },
    needs=("label", "date"),
)
def _date_filter(rng, data):
    ((t, rows),) = data
    col = pick(rng, t.dates)
    y = pick(rng, rows)[col.name][:4]
    if rng.random() < 0.5:
        condition, variant = f"{col.name} >= '{y}-01-01'", "since"
    else:
        condition, variant = f"{col.name} BETWEEN '{y}-01-01' AND '{y}-12-31'", "in"
    sql = f"SELECT {t.label.name} FROM {t.name} WHERE {condition};"
    return sql, {"date": col.name, "date_words": col.words, "y": y}, variant


@query_kind(
    "top_one",
    "basic",
    BASIC,
    (
        "Which {singular} has the {extreme} {num_words}?",
        "What is the {label_word} of the {singular} with the {extreme} {num_words}?",
        "Find the {singular} with the {extreme} {num_words}.",
        "Name the {singular} that has the {extreme} {num_words}.",
        "Identify the {singular} with the {extreme} {num_words}.",
        "Show the {singular} with the {extreme} {num_words}.",
    ),
    "This query orders the {table} table by {num} in {direction} order and returns the {label} of the first row.",
    needs=("label", "number"),
    weight=1.2,
)
def _top_one(rng, data):
    ((t, rows),) = data
    col = pick(rng, t.numbers)
    highest = rng.random() < 0.6
    if not unique_extreme([r[col.name] for r in rows], 1, highest):
        return None
    order = "DESC" if highest else "ASC"
    sql = f"SELECT {t.label.name} FROM {t.name} ORDER BY {col.name} {order} LIMIT 1;"
    extreme = pick(rng, ("highest", "largest")) if highest else pick(rng, ("lowest", "smallest"))
    direction = "descending" if highest else "ascending"
    return sql, {**number_vars(col), "extreme": extreme, "direction": direction}, ""


@query_kind(
    "top_n",
    "basic",
    BASIC,
    {
        "high": (
            "What are the {n} {plural} with the highest {num_words}?",
            "List the {n} {plural} with the highest {num_words}, with their {num_words}.",
            "Show the top {n} {plural} by {num_words}.",
            "Identify the top {n} {plural} with the most {num_words}.",
        ),
        "low": (
            "What are the {n} {plural} with the lowest {num_words}?",
            "List the {n} {plural} with the lowest {num_words}, with their {num_words}.",
            "Show the bottom {n} {plural} by {num_words}, lowest first.",
        ),
    },
    "This query sorts the {table} table by {num} in {direction} order and returns the first {count} rows.",
    needs=("label", "number"),
)
def _top_n(rng, data):
    ((t, rows),) = data
    col = pick(rng, t.numbers)
    if len(rows) < 3:
        return None
    count = rand_int(rng, 2, min(4, len(rows) - 1))
    highest = rng.random() < 0.65
    if not unique_extreme([r[col.name] for r in rows], count, highest):
        return None
    order = "DESC" if highest else "ASC"
    sql = f"SELECT {t.label.name}, {col.name} FROM {t.name} ORDER BY {col.name} {order} LIMIT {count};"
    return (
        sql,
        {
            **number_vars(col),
            "n": count_words(rng, count),
            "count": count,
            "direction": "descending" if highest else "ascending",
        },
        "high" if highest else "low",
    )


@query_kind(
    "sorted_filter",
    "basic",
    BASIC,
    (
        "List the {label_words} and {num_words} of {plural} {phrase}, sorted by {num_words} in {direction} order.",
        "Show {plural} {phrase} with their {num_words}, from {range_words}.",
        "Sort the {plural} {phrase} by {num_words} ({direction}) and show their {label_words} and {num_words}.",
        "Display the {num_words} of each {singular} {phrase}, ordered from {range_words}.",
    ),
    "This query selects {label} and {num} from the {table} table where {cat} is '{v}', ordered by {num} {order}.",
    needs=("label", "category", "number"),
)
def _sorted_filter(rng, data):
    ((t, rows),) = data
    cat, col = pick(rng, t.categories), pick(rng, t.numbers)
    v = pick(rng, rows)[cat.name]
    highest = rng.random() < 0.5
    order = "DESC" if highest else "ASC"
    sql = (
        f"SELECT {t.label.name}, {col.name} FROM {t.name} WHERE {cat.name} = {quote(v)} "
        f"ORDER BY {col.name} {order};"
    )
    return (
        sql,
        {
            **category_vars(rng, cat, v),
            **number_vars(col),
            "order": order,
            "direction": "descending" if highest else "ascending",
            "range_words": "highest to lowest" if highest else "lowest to highest",
        },
        "",
    )


@query_kind(
    "not_equal",
    "basic",
    BASIC,
    (
        "Which {plural} have a {cat_word} other than {v}?",
        "List the {label_words} of {plural} whose {cat_word} is not {v}.",
        "Find all {plural} except those whose {cat_word} is {v}.",
        "Show the {label_words} of all {plural} with a {cat_word} different from {v}.",
    ),
    "This query selects the {label} of rows in the {table} table whose {cat} is anything but '{v}'.",
    needs=("label", "category"),
    weight=0.7,
)
def _not_equal(rng, data):
    ((t, rows),) = data
    col = pick(rng, t.categories)
    v = pick(rng, rows)[col.name]
    if all(r[col.name] == v for r in rows):
        return None
    sql = f"SELECT {t.label.name} FROM {t.name} WHERE {col.name} != {quote(v)};"
    return sql, category_vars(rng, col, v), ""


@query_kind(
    "like_prefix",
    "basic",
    BASIC,
    (
        "Which {plural} have a {label_word} starting with '{p}'?",
        "List the {plural} whose {label_word} begins with {p}.",
        "Find all {plural} with a {label_word} that starts with the letter {p}.",
        "Show {plural} whose {label_word} starts with '{p}'.",
    ),
    "This query uses LIKE '{p}%' to select the {plural} in the {table} table whose {label} starts with '{p}'.",
    needs=("label",),
    weight=0.6,
)
def _like_prefix(rng, data):
    ((t, rows),) = data
    p = pick(rng, rows)[t.label.name][0]
    return f"SELECT {t.label.name} FROM {t.name} WHERE {t.label.name} LIKE '{p}%';", {"p": p}, ""
