"""The one schema check for the project's YAML files (scenarios, parameter grids).

A file is read into a dataclass; :func:`from_mapping` checks every key against the dataclass's
declared fields and every value against the field's type *before* anything runs, so a typo or
a wrong type (``currency: [EUR, USD]``, ``go_min_roi: "high"``) is one message naming the key,
the value and what is valid, not a traceback halfway through a run. Plain dataclasses keep the
project free of a validation dependency; the types understood are the ones the files use.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class SchemaError(ValueError):
    """A file or mapping does not match its schema; the message names key, value and what is valid."""


def _plural(tp: Any) -> str:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join(_plural(a) for a in typing.get_args(tp))
    return {float: "numbers", int: "whole numbers", str: "strings", bool: "true/false values",
            Any: "values"}.get(tp) or f"items that are each {_describe(tp)}"


def _describe(tp: Any) -> str:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is float:
        return "a finite number"
    if tp is int:
        return "a whole number"
    if tp is str:
        return "a string"
    if tp is bool:
        return "true or false"
    if tp is Any:
        return "any value"
    if tp is type(None):
        return "null"
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin in (tuple, list):
        return f"a list of {_plural(args[0])}" if args else "a list"
    if origin is dict:
        return f"a mapping of {_plural(args[0])} to {_plural(args[1])}" if args else "a mapping"
    if dataclasses.is_dataclass(tp):
        return f"a mapping with keys {sorted(f.name for f in dataclasses.fields(tp))}"
    return getattr(tp, "__name__", str(tp))


def _fail(key: str, value: Any, tp: Any, source: str) -> SchemaError:
    return SchemaError(f"{source}: {key}={value!r} is not valid; pass {_describe(tp)}")


def check_value(value: Any, tp: Any, key: str, source: str) -> Any:
    """``value`` converted to ``tp`` (a list becomes a tuple where the type says tuple), or a
    :class:`SchemaError` naming ``key``."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if tp is type(None):
        if value is None:
            return None
        raise _fail(key, value, tp, source)
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            try:
                return check_value(value, arg, key, source)
            except SchemaError:
                continue
        raise _fail(key, value, tp, source)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _fail(key, value, tp, source)
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return value  # an int is a valid float; kept as written, so messages quote it as written
        raise _fail(key, value, tp, source)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise _fail(key, value, tp, source)
    if tp is str:
        if isinstance(value, str):
            return value
        raise _fail(key, value, tp, source)
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise _fail(key, value, tp, source)
        item = args[0] if args else Any
        items = [check_value(v, item, f"{key}[{i}]", source) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, Mapping):
            raise _fail(key, value, tp, source)
        kt, vt = args or (Any, Any)
        return {check_value(k, kt, f"{key} key", source): check_value(v, vt, f"{key}.{k}", source)
                for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return from_mapping(tp, value, source, prefix=f"{key}.")  # type: ignore[arg-type]
    raise TypeError(f"schema: no check for type {tp!r} (field {key})")


def from_mapping(cls: type[T], data: Any, source: str, *, prefix: str = "",
                 parsers: Mapping[str, Callable[[Any, str], Any]] | None = None) -> T:
    """Build dataclass ``cls`` from a YAML mapping: unknown keys, missing keys and wrong types
    are :class:`SchemaError`. ``parsers`` maps a field name to a function ``(value, key)`` that
    turns a checked string into the field's object (``"record:metric"`` to a ``KPISource``)."""
    if not isinstance(data, Mapping):
        what = f"{prefix.rstrip('.')}={data!r} is not valid" if prefix else f"holds {data!r}, not a mapping"
        raise SchemaError(f"{source}: {what}; pass {_describe(cls)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(str(k) for k in data if k not in fields)
    if unknown:
        raise SchemaError(f"{source}: unknown keys {[prefix + k for k in unknown]}; valid keys are "
                          f"{sorted(prefix + k for k in fields)}")
    required = [n for n, f in fields.items()
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing = [prefix + n for n in required if n not in data]
    if missing:
        raise SchemaError(f"{source}: missing keys {missing}")
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for name, value in data.items():
        tp = hints[name]
        parse = (parsers or {}).get(name)
        if parse is not None:
            if value is None and type(None) in typing.get_args(tp):
                values[name] = None
                continue
            values[name] = parse(check_value(value, str, prefix + name, source), prefix + name)
        else:
            values[name] = check_value(value, tp, prefix + name, source)
    return cls(**values)


def load_yaml(path: str | Path, what: str) -> Any:
    """The parsed YAML of ``path``; a missing, unreadable or malformed file is a
    :class:`SchemaError` in one line (with the line and column of a syntax error)."""
    p = Path(path)
    if not p.is_file():
        raise SchemaError(f"{what} {str(path)!r} is not a file")
    try:
        return yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise SchemaError(f"{what} {str(p)!r} cannot be read ({e.strerror})") from None
    except UnicodeDecodeError:
        raise SchemaError(f"{what} {str(p)!r} is not UTF-8 text") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or type(e).__name__
        raise SchemaError(f"{what} {str(p)!r} is not valid YAML{where}: {problem}") from None


__all__ = ["SchemaError", "check_value", "from_mapping", "load_yaml"]
