"""core.results.StepResult: the JSON form of a typed step result, and reading it back."""

from __future__ import annotations

import dataclasses

import pytest

from core.results import RunInfo, StepResult


@dataclasses.dataclass(frozen=True)
class _Part(StepResult):
    rows: int = 0


@dataclasses.dataclass(frozen=True)
class _Result(StepResult):
    ds: str = ""
    part: _Part | None = None
    parts: tuple[_Part, ...] = ()
    by_table: dict[str, _Part] = dataclasses.field(default_factory=dict)
    counts: dict[str, int] = dataclasses.field(default_factory=dict)


def test_to_dict_is_plain_json():
    r = _Result(ds="2026-11-04", part=_Part(3), parts=(_Part(1), _Part(2)), by_table={"items": _Part(5)}, counts={"a": 1})
    assert r.to_dict() == {
        "ds": "2026-11-04",
        "part": {"rows": 3},
        "parts": [{"rows": 1}, {"rows": 2}],
        "by_table": {"items": {"rows": 5}},
        "counts": {"a": 1},
    }


def test_from_dict_reads_nested_results_back_and_ignores_unknown_keys():
    data = {"ds": "2026-11-04", "part": {"rows": 3}, "parts": [{"rows": 1}], "by_table": {"items": {"rows": 5}},
            "counts": {"a": 1}, "run_info": {"wall_seconds": 2.5}}
    r = _Result.from_dict(data)
    assert r == _Result(ds="2026-11-04", part=_Part(3), parts=(_Part(1),), by_table={"items": _Part(5)}, counts={"a": 1})
    assert _Result.from_dict(None) == _Result()  # missing keys take the defaults
    assert RunInfo.from_dict(data["run_info"]) == RunInfo(wall_seconds=2.5)


def test_results_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        _Result().ds = "x"  # type: ignore[misc]
