"""Typed, frozen step results: what each pipeline step returns and records.

Every step of ``twotower.pipeline`` returns a :class:`StepResult` subclass; the pipeline writes
``to_dict()`` (plus :class:`RunInfo`) to ``Layout.stage_stats(ds, step)``, and the run report,
the DAG and the CLI read them back with ``from_dict``. One module per area
(``core.results.quality``, ``.etl``, ``.training``, ``.indexing``) so the layers above never
dig values out of dicts by string keys.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from typing import Any, ClassVar, Self


@dataclasses.dataclass(frozen=True)
class StepResult:
    """Base class: ``to_dict()`` gives the JSON form, ``from_dict()`` reads it back (keys the
    class does not know are ignored; missing keys take the field defaults). Nested results,
    tuples of results and ``dict[str, Result]`` maps convert both ways.

    Three class attributes shape the JSON where a record's historical form needs it:
    ``_keys`` (field -> JSON key, for keys that are not identifiers, e.g. ``recall@50``),
    ``_optional`` (fields left out when None; :data:`ALL_FIELDS` for every field) and ``_flat``
    (nested results whose keys sit at this record's level).
    """

    _keys: ClassVar[dict[str, str]] = {}
    _optional: ClassVar[frozenset[str]] = frozenset()
    _flat: ClassVar[frozenset[str]] = frozenset()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        omit_all = self._optional is ALL_FIELDS
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None and (omit_all or f.name in self._optional):
                continue
            if f.name in self._flat:
                out.update(value.to_dict() if value is not None else {})
                continue
            out[self._keys.get(f.name, f.name)] = _plain(value)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Self:
        data = data or {}
        hints = _hints(cls)
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            hint = hints.get(f.name)
            nested, mapped = _result_class(hint), _mapped_result_class(hint)
            if f.name in cls._flat:
                if nested is not None and any(nested._keys.get(g.name, g.name) in data for g in dataclasses.fields(nested)):
                    kwargs[f.name] = nested.from_dict(data)
                continue
            key = cls._keys.get(f.name, f.name)
            if key not in data:
                continue
            value = data[key]
            if mapped is not None and isinstance(value, dict):
                value = {k: mapped.from_dict(v) if isinstance(v, dict) else v for k, v in value.items()}
            elif nested is not None and isinstance(value, dict):
                value = nested.from_dict(value)
            elif isinstance(value, list):
                value = tuple(nested.from_dict(v) if nested is not None and isinstance(v, dict) else v for v in value)
            kwargs[f.name] = value
        return cls(**kwargs)


# ``_optional = ALL_FIELDS``: a sparse record, every None field left out of its JSON.
ALL_FIELDS: frozenset[str] = frozenset({"*"})


@dataclasses.dataclass(frozen=True)
class RunInfo(StepResult):
    """When and with what a step ran (written by the pipeline beside every step's result)."""

    wall_seconds: float | None = None
    finished_at: str | None = None
    code_version: str | None = None
    config_hash: str | None = None


def _plain(value: Any) -> Any:
    if isinstance(value, StepResult):
        return value.to_dict()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _mapped_result_class(hint: Any) -> type[StepResult] | None:
    """``X`` of a ``dict[str, X]`` (or ``dict[str, X] | None``) field whose values are results."""
    for h in (hint, *typing.get_args(hint)):
        if typing.get_origin(h) is dict:
            args = typing.get_args(h)
            if len(args) == 2 and isinstance(args[1], type) and issubclass(args[1], StepResult):
                return args[1]
    return None


def _result_class(hint: Any) -> type[StepResult] | None:
    """The StepResult class inside ``X``, ``X | None`` or ``tuple[X, ...]`` (else None; a
    ``dict[str, X]`` is :func:`_mapped_result_class`'s)."""
    if _mapped_result_class(hint) is not None:
        return None
    candidates = [hint, *typing.get_args(hint)]
    for c in candidates:
        if isinstance(c, type) and issubclass(c, StepResult):
            return c
    return None
