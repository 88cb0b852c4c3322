"""The schema language of the builtin data set: columns with a role (label, category, number, date, ref),
tables, and domains; and the loader of the domain files (`domains/*.yaml`) written in it.

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
"""

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

DOMAINS_FOLDER = Path(__file__).parent / "domains"
SHARED_POOLS_FILE = "_pools.yaml"
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader when PyYAML has it


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str
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


def _plural(words: str) -> str:
    if words.endswith("y") and words[-2:-1] not in "aeiou":
        return words[:-1] + "ies"
    if words.endswith(("s", "x", "sh", "ch")):
        return words + "es"
    return words + "s"


def _label(name: str, pool, words: str = "name", plural: str = "") -> Column:
    return Column(name, "VARCHAR(50)", "label", words, plural or _plural(words), tuple(pool))


def _category(name: str, pool, words: str = "", phrase: str = "", plural: str = "") -> Column:
    words = words or name.replace("_", " ")
    return Column(
        name, "VARCHAR(30)", "category", words, plural or _plural(words), tuple(pool), phrase=phrase
    )


def _number(
    name: str,
    low: float,
    high: float,
    words: str = "",
    decimals: int = 0,
    step: int = 1,
    additive: bool = True,
) -> Column:
    sql_type = "INT" if decimals == 0 else f"DECIMAL(10,{decimals})"
    words = words or name.replace("_", " ")
    return Column(name, sql_type, "number", words, _plural(words), (), low, high, decimals, step, additive)


def _date(name: str, words: str = "", first: int = 2018, last: int = 2023) -> Column:
    return Column(name, "DATE", "date", words or name.replace("_", " "), low=first, high=last)


def _ref(name: str, parent: str) -> Column:
    return Column(name, "INT", "ref", name.replace("_", " "), parent=parent)


def literal_function(col: Column) -> Callable[[object], str]:
    if col.role in ("label", "category", "date"):
        return quote
    return f"{{:.{col.decimals}f}}".format if col.decimals else str


def quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class Table:
    def __init__(self, name: str, singular: str, plural: str, *columns: Column) -> None:
        self.name, self.singular, self.plural = name, singular, plural
        self.columns = (Column("id", "INT", "id", "id"), *columns)
        self.label = next((c for c in columns if c.role == "label"), None)
        self.categories = tuple(c for c in columns if c.role == "category")
        self.numbers = tuple(c for c in columns if c.role == "number")
        self.additive = tuple(c for c in self.numbers if c.additive)
        self.dates = tuple(c for c in columns if c.role == "date")
        self.ref = next((c for c in columns if c.role == "ref"), None)
        self.create = f"CREATE TABLE {name} ({', '.join(f'{c.name} {c.sql_type}' for c in self.columns)});"
        self.insert_head = f"INSERT INTO {name} ({', '.join(c.name for c in self.columns)}) VALUES "
        self.literals = tuple((c.name, literal_function(c)) for c in self.columns)

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
