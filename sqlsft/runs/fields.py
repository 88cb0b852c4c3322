"""Dataclasses read back from JSON that another process (or a person) wrote: every field is checked
against its annotation, and a value of the wrong type becomes the field's default plus a named problem,
so one damaged file never stops a command that lists many of them."""

import dataclasses
import enum
import json
import math
import types
import typing
from pathlib import Path
from typing import Any


def _accepts(kind: Any, value: Any) -> tuple[bool, Any]:
    """Whether `value` fits the annotation `kind`, and the value converted to it (enum member, int from 3.0)."""
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        for member in typing.get_args(kind):
            ok, converted = _accepts(member, value)
            if ok:
                return True, converted
        return False, value
    if kind is Any:
        return True, value
    if kind is type(None):
        return value is None, value
    base = origin or kind
    if isinstance(base, type) and issubclass(base, enum.Enum):
        try:
            return True, base(value)
        except ValueError:
            return False, value
    if isinstance(value, bool):  # JSON true/false is never a number
        return base is bool, value
    if base is int:
        if isinstance(value, float) and value.is_integer():
            return True, int(value)
        return isinstance(value, int), value
    if base is float:
        ok = isinstance(value, int | float) and not (isinstance(value, float) and math.isnan(value))
        return ok, float(value) if ok else value
    return isinstance(value, base), value


def record_from_json(cls: type, data: Any, source: str) -> tuple[Any, list[str]]:
    """An instance of the dataclass `cls` from a JSON object, and the problems met (wrong types, not an object).

    Unknown keys are ignored (older and newer sqlsft versions write more or fewer of them)."""
    if not isinstance(data, dict):
        return cls(), [f"{source} is not a JSON object"]
    hints = typing.get_type_hints(cls)
    values, problems = {}, []
    for field in dataclasses.fields(cls):
        if not field.init or field.name not in data:
            continue
        ok, value = _accepts(hints[field.name], data[field.name])
        if ok:
            values[field.name] = value
        else:
            problems.append(f"{field.name} is {data[field.name]!r}")
    return cls(**values), problems


def read_record(cls: type, path: Path) -> tuple[Any, list[str]]:
    """The dataclass `cls` read from the JSON file at path, and its problems (missing, damaged, wrong types)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return cls(), [f"{Path(path).name} is missing"]
    except (OSError, ValueError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        reason = getattr(exc, "strerror", None) or "not valid JSON"
        return cls(), [f"{Path(path).name} cannot be read ({reason})"]
    return record_from_json(cls, data, Path(path).name)
