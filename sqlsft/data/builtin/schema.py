"""The schema language of the builtin data set: columns with a role (label, category, number, date, ref),
tables, and domains; the loader of the domain files (`domains/*.yaml`) written in it; and the shown
schema of one row (which columns a row's CREATE TABLE prints, under which names and types).

A domain file names its tables and each table's columns, one role key per column:

    - category: city          # the column name; `pool` is its values (or the name of a shared pool)
      pool: cities
      phrase: "in {v}"        # how a question names a value ("the routes in Boston")
    - number: fare
      low: 1
      high: 4.5
      decimals: 2
      additive: false         # a SUM of it means nothing

The keys after the role are the arguments of the builders below (`_label`, `_category`, `_number`, `_date`,
`_ref`). Files load in name order, and that order is part of what the generator draws: renaming, adding or
reordering files changes the generated rows.

A domain table defines more columns than a row shows: each row prints its key, the columns its query needs
and a few others (3 to 6 in all, as gretel's tables do), in one drawn `SchemaStyle` (key `id` or
`<singular>_id`, VARCHAR or TEXT, DECIMAL or FLOAT or REAL, ...), so that a model learns to read the
schema in front of it rather than one fixed spelling of each table.
"""

import functools
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

DOMAINS_FOLDER = Path(__file__).parent / "domains"
SHARED_POOLS_FILE = "_pools.yaml"
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader when PyYAML has it
ROW_KEY = "id"  # where a generated row keeps its key, whatever name the schema shows


@dataclass(frozen=True)
class Column:
    name: str
    role: str  # id | ref | label | category | number | date
    words: str = ""  # how a question names the column
    plural: str = ""
    pool: tuple[str, ...] = ()
    low: float = 0
    high: float = 0
    decimals: int = 0
    step: int = 1
    additive: bool = True  # a SUM of it means something
    phrase: str = ""  # a noun modifier for a category value, "{v}" marks the value
    parent: str = ""  # the referenced table, for role "ref"
    sql_type: str = ""  # set on the columns a row shows


def _plural(words: str) -> str:
    if words.endswith("y") and words[-2:-1] not in "aeiou":
        return words[:-1] + "ies"
    if words.endswith(("s", "x", "sh", "ch")):
        return words + "es"
    return words + "s"


def _singular(name: str) -> str:
    if name.endswith("ies"):
        return name[:-3] + "y"
    return name[:-1] if name.endswith("s") and not name.endswith("ss") else name


def _label(name: str, pool, words: str = "name", plural: str = "") -> Column:
    return Column(name, "label", words, plural or _plural(words), tuple(pool))


def _category(name: str, pool, words: str = "", phrase: str = "", plural: str = "") -> Column:
    words = words or name.replace("_", " ")
    return Column(name, "category", words, plural or _plural(words), tuple(pool), phrase=phrase)


def _number(
    name: str,
    low: float,
    high: float,
    words: str = "",
    decimals: int = 0,
    step: int = 1,
    additive: bool = True,
) -> Column:
    words = words or name.replace("_", " ")
    return Column(name, "number", words, _plural(words), (), low, high, decimals, step, additive)


def _date(name: str, words: str = "", first: int = 2018, last: int = 2023) -> Column:
    return Column(name, "date", words or name.replace("_", " "), low=first, high=last)


def _ref(name: str, parent: str) -> Column:
    return Column(name, "ref", name.replace("_", " "), parent=parent)


def literal_function(col: Column) -> Callable[[object], str]:
    if col.role in ("label", "category", "date"):
        return quote
    return f"{{:.{col.decimals}f}}".format if col.decimals else str


def quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class Table:
    """A table: as a domain file defines it (every column, key `id`), or as one row shows it (`shown`)."""

    def __init__(
        self,
        name: str,
        singular: str,
        plural: str,
        *columns: Column,
        key: str = ROW_KEY,
        key_type: str = "INT",
    ) -> None:
        self.name, self.singular, self.plural, self.key = name, singular, plural, key
        self.columns = (Column(key, "id", "id", sql_type=key_type), *columns)
        self.label = next((c for c in columns if c.role == "label"), None)
        self.categories = tuple(c for c in columns if c.role == "category")
        self.numbers = tuple(c for c in columns if c.role == "number")
        self.additive = tuple(c for c in self.numbers if c.additive)
        self.dates = tuple(c for c in columns if c.role == "date")
        self.ref = next((c for c in columns if c.role == "ref"), None)
        self.column_list = ", ".join(c.name for c in self.columns)
        # a generated row keeps its key under ROW_KEY and every other value under the shown column name
        self.literals = tuple(
            (ROW_KEY if c.role == "id" else c.name, literal_function(c)) for c in self.columns
        )

    def has(self, needs: tuple[str, ...]) -> bool:
        present = {
            "label": self.label,
            "category": self.categories,
            "number": self.numbers,
            "additive": self.additive,
            "date": self.dates,
            "ref": self.ref,
        }
        return all(present[need] for need in needs)

    def create(self, primary_key: bool = False) -> str:
        key, *others = self.columns
        definitions = [f"{key.name} {key.sql_type}{' PRIMARY KEY' if primary_key else ''}"]
        definitions += [f"{c.name} {c.sql_type}" for c in others]
        return f"CREATE TABLE {self.name} ({', '.join(definitions)});"

    def vars(self, prefix: str = "") -> dict[str, str]:
        label = self.label
        return {
            f"{prefix}table": self.name,
            f"{prefix}singular": self.singular,
            f"{prefix}plural": self.plural,
            f"{prefix}label": label.name if label else "",
            f"{prefix}label_word": label.words if label else "",
            f"{prefix}label_words": label.plural if label else "",
        }


@dataclass(frozen=True)
class SchemaStyle:
    """How one row spells its schema; drawn once per row so that its tables agree, as gretel's do."""

    key_named_for_table: bool  # `hotel_id` rather than `id` (a child's reference then has the same name)
    primary_key: bool  # `id INT PRIMARY KEY`
    integer: str  # INT | INTEGER
    text: str  # VARCHAR | TEXT
    decimal: str  # DECIMAL | FLOAT | REAL
    label_as_name: bool  # the label column shown as plain `name`
    insert_form: str  # columns | bare | per_row | per_row_bare (one INSERT per row, when there are few rows)


def draw_style(rng: random.Random) -> SchemaStyle:
    r = rng.random
    return SchemaStyle(
        key_named_for_table=r() < 0.45,
        primary_key=r() < 0.2,
        integer="INT" if r() < 0.75 else "INTEGER",
        text="VARCHAR" if r() < 0.55 else "TEXT",
        decimal=("DECIMAL", "DECIMAL", "FLOAT", "REAL")[int(r() * 4)],
        label_as_name=r() < 0.25,
        insert_form=("columns", "columns", "columns", "bare", "bare", "bare", "per_row", "per_row_bare")[
            int(r() * 8)
        ],
    )


_VARCHAR_SIZES = {"label": (50, 50, 100, 255), "category": (20, 30, 50, 50, 50, 100, 255)}


def _sql_type(rng: random.Random, col: Column, style: SchemaStyle) -> str:
    if col.role in ("label", "category"):
        if style.text == "TEXT":
            return "TEXT"
        sizes = _VARCHAR_SIZES[col.role]
        return f"VARCHAR({sizes[int(rng.random() * len(sizes))]})"
    if col.role == "date":
        return "DATE"
    if col.role == "number" and col.decimals:
        return f"DECIMAL(10,{col.decimals})" if style.decimal == "DECIMAL" else style.decimal
    return style.integer


def key_name(table: Table, style: SchemaStyle, referenced_as: str = "") -> str:
    if not style.key_named_for_table:
        return ROW_KEY
    return referenced_as or f"{_singular(table.name)}_id"


_SHOWN_COLUMNS: dict[tuple[int, str, str], Column] = {}


def _shown_column(col: Column, name: str, sql_type: str) -> Column:
    """`col` under a shown name and type; cached (dataclasses.replace was a fifth of the generator's time),
    keyed by id() as the domain columns live as long as the process (load_domains is cached)."""
    key = (id(col), name, sql_type)
    shown = _SHOWN_COLUMNS.get(key)
    if shown is None:
        shown = _SHOWN_COLUMNS[key] = replace(col, name=name, sql_type=sql_type)
    return shown


def show_table(
    rng: random.Random,
    table: Table,
    needs: tuple[str, ...],
    style: SchemaStyle,
    key: str,
    keep_ref: bool,
    column_counts: tuple[int, ...],
) -> Table:
    """The table as one row shows it: its key, a column for each need, the reference when `keep_ref`, then
    others (the label first, as most real tables have a name) up to a count drawn from `column_counts`
    (the key included)."""
    chosen: list[Column] = []
    for need in needs:
        options = {
            "label": (table.label,),
            "category": table.categories,
            "number": table.numbers,
            "additive": table.additive,
            "date": table.dates,
            "ref": (table.ref,),
        }[need]
        if not any(c in chosen for c in options):
            chosen.append(options[int(rng.random() * len(options))])
    if table.ref and keep_ref and table.ref not in chosen:
        chosen.append(table.ref)
    count = column_counts[int(rng.random() * len(column_counts))] - 1
    rest = [c for c in table.columns[1:] if c not in chosen and c.role != "ref"]
    rng.shuffle(rest)
    if table.label in rest and rng.random() < 0.85:
        rest.remove(table.label)
        rest.insert(0, table.label)
    chosen += rest[: max(0, count - len(chosen))]
    order = {c.name: i for i, c in enumerate(table.columns)}
    shown = []
    for col in sorted(chosen, key=lambda c: order[c.name]):
        name = "name" if col.role == "label" and style.label_as_name else col.name
        shown.append(_shown_column(col, name, _sql_type(rng, col, style)))
    return Table(table.name, table.singular, table.plural, *shown, key=key, key_type=style.integer)


@dataclass(frozen=True)
class Domain:
    name: str
    description: str
    tables: tuple[Table, ...]

    def table(self, name: str) -> Table:
        return next(t for t in self.tables if t.name == name)


_BUILDERS = {"label": _label, "category": _category, "number": _number, "date": _date, "ref": _ref}


def _column(spec: dict, pools: dict[str, list[str]], where: str) -> Column:
    roles = [key for key in spec if key in _BUILDERS]
    if len(roles) != 1:
        raise ValueError(f"{where}: a column needs exactly one of {', '.join(_BUILDERS)}: {spec}")
    role = roles[0]
    arguments = {key: value for key, value in spec.items() if key != role}
    if isinstance(arguments.get("pool"), str):
        arguments["pool"] = pools[arguments["pool"]]
    return _BUILDERS[role](spec[role], **arguments)


def _domain(path: Path, pools: dict[str, list[str]]) -> Domain:
    spec = yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER)
    tables = tuple(
        Table(t["name"], t["singular"], t["plural"], *(_column(c, pools, path.name) for c in t["columns"]))
        for t in spec["tables"]
    )
    return Domain(spec["name"], spec["description"], tables)


@functools.cache
def load_domains(folder: Path = DOMAINS_FOLDER) -> tuple[Domain, ...]:
    """Every domain file of `folder`, in file-name order (shared value pools come from _pools.yaml)."""
    pools = yaml.load((folder / SHARED_POOLS_FILE).read_text(encoding="utf-8"), Loader=_LOADER)
    return tuple(
        _domain(path, pools) for path in sorted(folder.glob("*.yaml")) if path.name != SHARED_POOLS_FILE
    )
