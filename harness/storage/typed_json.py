"""Dataclasses to JSON values and back, checked against their type hints.

result.json's format is written down once, as the dataclasses of harness/storage/result_schema.py; this
module is what turns them into JSON and back, so that those types are the whole format. Reading
checks every value against its field's type and fails on the first bad one with its dotted path
(``metrics.per_epoch[2].epoch``), which the report turns into one line naming the file.

The rules, no more than the schema needs:

- a field without a default must be present; a field with one may be absent (an older file);
- ``int`` refuses ``true``/``false`` (a count or a step is never a boolean); ``float`` takes
  integers as they are (``2`` is written back as ``2``); ``X | None`` takes null; ``list[X]``,
  ``dict[str, X]``, ``tuple[X, Y]`` (a JSON list of exactly that length) and ``Any``;
- a key that a dataclass does not declare is ignored (a file from newer code still reads), unless
  the class has a field made with ``rest()``: such keys are kept there, checked against its value
  type, and written back in that field's place, so a record can carry keys nobody declared;
- after a dataclass is read, its ``check()`` method, if it has one, raises ``FieldError`` for
  the rules a type cannot say (a list that must not be empty).
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any, TypeVar

T = TypeVar("T")

_REST = "typed_json.rest"
_NAMES = {int: "integer", float: "number", str: "string", bool: "boolean", type(None): "null"}


class FieldError(ValueError):
    """A value that does not fit its field; ``field`` is the dotted path from the document's root."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"field '{field}' {problem}")

    def under(self, prefix: str) -> FieldError:
        """The same error, for a document that holds this one at ``prefix``."""
        return FieldError(_join(prefix, self.field), self.problem)


def rest() -> Any:
    """A ``dict[str, X]`` field that holds the keys its class does not declare (see the module's doc)."""
    return dataclasses.field(default_factory=dict, metadata={_REST: True})


def is_rest(f: dataclasses.Field) -> bool:
    return bool(f.metadata.get(_REST))


def to_json(value: Any) -> Any:
    """Dataclasses as objects (keys in field order, a ``rest()`` field's keys in its place), tuples
    as lists; everything else as it is (NaN and numpy scalars are left to the writer)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            if is_rest(f):
                out.update((key, to_json(v)) for key, v in item.items())
            else:
                out[f.name] = to_json(item)
        return out
    if isinstance(value, dict):
        return {key: to_json(v) for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    return value


def from_json(tp: type[T], value: Any, path: str = "") -> T:
    """``value`` (parsed JSON) as a ``tp``; raises FieldError naming the first value that does not fit."""
    if tp is Any:
        return value
    if _is_union(tp):
        if value is None and type(None) in typing.get_args(tp):
            return None  # type: ignore[return-value]
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]  # the schema has only X | None
        if not _kind_fits(inner, value):
            raise _mismatch(value, tp, path)
        return from_json(inner, value, path)
    if not _kind_fits(tp, value):
        raise _mismatch(value, tp, path)
    if dataclasses.is_dataclass(tp):
        return _read_dataclass(tp, value, path)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is list:
        return [from_json(args[0], v, f"{path}[{i}]") for i, v in enumerate(value)]  # type: ignore[return-value]
    if origin is tuple:
        if len(value) != len(args):
            raise FieldError(path, f"has {len(value)} items (expected {len(args)}: {', '.join(map(describe, args))})")
        pairs = zip(args, value, strict=True)
        return tuple(from_json(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(pairs))  # type: ignore[return-value]
    if origin is dict:
        return {key: from_json(args[1], v, _join(path, key)) for key, v in value.items()}  # type: ignore[return-value]
    return value


def describe(tp: Any) -> str:
    """A type as a reader of the JSON file would name it: ``number or null``."""
    if tp is Any:
        return "any value"
    if _is_union(tp):
        return " or ".join(describe(a) for a in typing.get_args(tp))
    if dataclasses.is_dataclass(tp) or typing.get_origin(tp) is dict:
        return "object"
    if typing.get_origin(tp) in (list, tuple):
        return "list"
    return _NAMES.get(tp, getattr(tp, "__name__", str(tp)))


def _read_dataclass(cls: type[T], value: dict[str, Any], path: str) -> T:
    hints = _hints(cls)
    fields = dataclasses.fields(cls)
    kwargs: dict[str, Any] = {}
    for f in fields:
        if is_rest(f) or not f.init:
            continue
        name = _join(path, f.name)
        if f.name in value:
            kwargs[f.name] = from_json(hints[f.name], value[f.name], name)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise FieldError(name, f"is missing (expected {describe(hints[f.name])})")
    rest_field = next((f for f in fields if is_rest(f)), None)
    if rest_field is not None:
        item_type = typing.get_args(hints[rest_field.name])[1]
        declared = {f.name for f in fields}
        kwargs[rest_field.name] = {
            key: from_json(item_type, v, _join(path, key)) for key, v in value.items() if key not in declared
        }
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if callable(check):
        try:
            check()
        except FieldError as err:
            raise err.under(path) from None
    return obj


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _kind_fits(tp: Any, value: Any) -> bool:
    """Whether ``value`` is the JSON kind ``tp`` is read from (its contents are checked after)."""
    if tp is Any:
        return True
    if dataclasses.is_dataclass(tp) or typing.get_origin(tp) is dict:
        return isinstance(value, dict)
    if typing.get_origin(tp) in (list, tuple):
        return isinstance(value, list)
    if isinstance(value, bool):  # bool is an int subclass in Python; JSON keeps them apart
        return tp is bool
    if tp is float:
        return isinstance(value, (int, float))
    return isinstance(value, tp)


def _mismatch(value: Any, tp: Any, path: str) -> FieldError:
    return FieldError(path, f"has type {type(value).__name__} (expected {describe(tp)})")


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name
