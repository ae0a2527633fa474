"""Typed dataclasses from plain data: the recipe schema's machinery, independent of the recipe.

:func:`build` turns a mapping into a dataclass, checking every value against its annotation
(:func:`coerce`) and refusing unknown keys; :func:`apply_overrides` lays ``a.b=value``
strings over a mapping first. Errors are one-line :class:`SentimentError` naming the key.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import types
import typing
from collections.abc import Callable
from typing import Any

import yaml

from sentiment_hf.errors import SentimentError

_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def coerce(value: Any, tp: Any, where: str) -> Any:
    """Check ``value`` against the annotation ``tp``; int→float is the only widening."""
    if tp is Any or tp is object:
        return value
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        enums = [t for t in typing.get_args(tp) if isinstance(t, type) and issubclass(t, enum.Enum)]
        if enums and isinstance(value, str):
            # "IntervalStrategy | str" accepts any string in the annotation; only the enum's do.
            return coerce(value, enums[0], where)
        errors = []
        for option in typing.get_args(tp):
            try:
                return coerce(value, option, where)
            except SentimentError as exc:
                errors.append(exc)
        raise SentimentError(
            f"{where}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}"
        )
    if origin is typing.Literal:
        if value in typing.get_args(tp):
            return value
        raise SentimentError(f"{where}: must be one of {typing.get_args(tp)}, got {value!r}")
    if tp is type(None):
        if value is None:
            return None
    elif origin is list:
        if isinstance(value, list):
            (item_tp,) = typing.get_args(tp) or (Any,)
            return [coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
    elif origin is dict or tp is dict:
        if isinstance(value, dict):
            return value
    elif isinstance(tp, type) and issubclass(tp, enum.Enum):
        allowed = [m.value for m in tp]
        if value in allowed:
            return value
        raise SentimentError(f"{where}: must be one of {allowed}, got {value!r}")
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        # YAML 1.1 reads 3e-5 (no dot) as a string; accept it as the number it is.
        if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif dataclasses.is_dataclass(tp):
        return build(tp, value, where)
    elif isinstance(tp, type):
        if isinstance(value, tp):
            return value
    else:
        return value
    raise SentimentError(
        f"{where}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}; "
        "fix the value in the recipe or the override"
    )


def build(
    cls: type, data: Any, where: str, builders: dict[str, Callable[[Any, str], Any]] | None = None
) -> Any:
    """An instance of dataclass ``cls`` from a mapping: unknown keys and wrong types fail.

    ``builders`` replace the type check for the named fields (e.g. a free-form section).
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SentimentError(f"{where}: expected a mapping, got {type(data).__name__} {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise SentimentError(
            f"{where}: unknown key {unknown[0]!r}; allowed keys: {', '.join(names)}"
        )
    kwargs = {}
    for name in names:
        if name not in data:
            continue
        sub = f"{where}.{name}" if where else name
        if builders and name in builders:
            kwargs[name] = builders[name](data[name], sub)
        else:
            kwargs[name] = coerce(data[name], hints[name], sub)
    return cls(**kwargs)


def parse_overrides(overrides: list[str] | tuple[str, ...]) -> list[tuple[list[str], Any]]:
    """Parse ``a.b=value`` strings; values are YAML scalars (``3e-5``, ``true``, ``[a]``)."""
    parsed = []
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise SentimentError(
                f"override {item!r} has no '='; write KEY=VALUE, e.g. training.learning_rate=3e-5"
            )
        try:
            value = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError:
            value = raw
        parsed.append((key.strip().split("."), value))
    return parsed


def apply_overrides(raw: dict[str, Any], overrides: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Apply dotted overrides onto a raw recipe mapping (validated later by the schema)."""
    for path, value in parse_overrides(overrides):
        node = raw
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise SentimentError(f"override {'.'.join(path)}: {part!r} is not a section")
            node = child
        node[path[-1]] = value
    return raw
