"""The base of every typed JSON record of the farm (farm.store.records, the model
registry's): to_json/from_json with every known field checked, unknown keys kept.

Records outlive the farm that wrote them, so `from_json` accepts files of earlier releases
(a field they lack takes its default) and of later ones (a key this farm does not know is
kept in `extra` and written back by `to_json`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import MISSING, fields
from typing import Any, ClassVar, TypeVar

from farm import atomic
from farm.store.checks import Check, RecordError, check, hints, shown

R = TypeVar("R", bound="JsonRecord")
# a JSON record bigger than this is refused, not read (a 63 MB one took 1.8 GB and 28 s);
# a pre-training's manifest of --pipelines' most (100,000) is about 15 MB
MAX_RECORD_BYTES = 16 * 2**20


def read_json(path: str | os.PathLike, follow: bool = True) -> Any:
    """The JSON at `path`, read only from a regular file of at most MAX_RECORD_BYTES
    (atomic.read_regular): OSError, ValueError (not a file, too big, not JSON) or
    RecursionError (nested thousands deep) otherwise."""
    return json.loads(atomic.read_regular(path, MAX_RECORD_BYTES, follow))


class JsonRecord:
    """to_json/from_json for a record dataclass with an `extra` field (unknown keys)."""

    # field name -> how its JSON value becomes a typed one (nested records)
    NESTED: ClassVar[Mapping[str, Callable[[Any], Any]]] = {}
    # fields left out of the JSON when None: keys that files have only when they apply
    OMIT_IF_NONE: ClassVar[tuple[str, ...]] = ()
    # field name -> what its value means beyond its type (farm.store.checks)
    CHECKS: ClassVar[Mapping[str, Check]] = {}

    def to_json(self) -> dict:
        out = dict(self.extra)  # type: ignore[attr-defined]
        for f in fields(self):  # type: ignore[arg-type]
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if value is None and f.name in self.OMIT_IF_NONE:
                out.pop(f.name, None)
                continue
            out[f.name] = _to_json(value)
        return out

    @classmethod
    def from_json(cls: type[R], data: Any) -> R:
        """The record `data` holds, each known field checked (its type, then CHECKS); a
        RecordError naming the first field that fails."""
        if not isinstance(data, Mapping):
            raise RecordError(f"is {shown(data)}, not a JSON object")
        types = hints(cls)
        every = [f for f in fields(cls) if f.name != "extra"]  # type: ignore[arg-type]
        known = {f.name for f in every}
        values, extra = {}, {}
        for key, value in data.items():
            if key not in known:
                extra[key] = value
                continue
            if value is not None and key in cls.NESTED:
                try:
                    value = cls.NESTED[key](value)
                except RecordError as e:
                    raise e.under(key) from None
            check(key, value, types[key], cls.CHECKS.get(key))
            values[key] = value
        missing = [f.name for f in every if f.name not in values
                   and f.default is MISSING and f.default_factory is MISSING]
        if missing:
            raise RecordError("is missing", missing[0])
        return cls(**values, extra=extra)  # type: ignore[call-arg]


def _to_json(value):
    if isinstance(value, JsonRecord):
        return value.to_json()
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    return value


def list_of(cls: type[R]) -> Callable[[Any], list[R]]:
    def convert(values: Any) -> list[R]:
        if not isinstance(values, list):
            raise RecordError(f"is {shown(values)}, not a list")
        return [item(cls, f"[{i}]", v) for i, v in enumerate(values)]

    return convert


def dict_of(cls: type[R]) -> Callable[[Any], dict[str, R]]:
    def convert(values: Any) -> dict[str, R]:
        if not isinstance(values, Mapping):
            raise RecordError(f"is {shown(values)}, not a JSON object")
        return {k: item(cls, f"[{shown(k)}]", v) for k, v in values.items()}

    return convert


def item(cls: type[R], where: str, value: Any) -> R:
    try:
        return cls.from_json(value)
    except RecordError as e:
        raise e.under(where) from None
