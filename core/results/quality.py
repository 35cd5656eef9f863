"""Results of the data-quality gates (``validate_raw`` / ``validate_outputs``).

:class:`ValidationResult` is what a gate returns and writes as its JSON summary
(``Layout.dq_dir(ds)/<stage>.json``); ``dq show``, the run report and the pipeline's stage
statistics read that JSON. The sparse records (a table's state, a quarantine) leave out the
keys that do not apply, as the summaries always have.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Self

from core.results import ALL_FIELDS, StepResult


@dataclasses.dataclass(frozen=True)
class _Sparse(StepResult):
    """A record whose JSON form leaves out the fields that are None."""

    _optional: ClassVar[frozenset[str]] = ALL_FIELDS


@dataclasses.dataclass(frozen=True)
class TableState(_Sparse):
    """What a gate found of one table's partition before checking it: present or not, its
    row count (from the Parquet footers), or that a data file is not readable."""

    present: bool
    rows: int | None = None
    readable: bool | None = None


@dataclasses.dataclass(frozen=True)
class QuarantineOutcome(_Sparse):
    """Rows of one raw table failing a row rule. ``path`` is set when they were set aside;
    otherwise ``rows`` is 0 and ``failing`` counts them (too many to quarantine)."""

    rows: int
    fraction: float
    by_rule: dict[str, int]
    path: str | None = None
    failing: int | None = None


@dataclasses.dataclass(frozen=True)
class CheckOutcome(StepResult):
    """One check of one suite after the gate applied its severity.

    ``status`` is passed / warning / quarantined / failed; ``message`` (None when passed)
    names table, partition, column, count and what to do.
    """

    suite: str
    table: str
    partition: str
    check: str
    expectation: str | None
    severity: str
    status: str
    success: bool
    rows: int | None = None
    failing_count: int | None = None
    failing_fraction: float | None = None
    observed: Any = None
    message: str | None = None
    examples: tuple[dict[str, Any], ...] = ()


@dataclasses.dataclass(frozen=True)
class SuiteOutcome(StepResult):
    """The checks of one suite (``<stage>.<table>.<suite>``) with their counts by status."""

    suite: str
    table: str
    partition: str
    rows: int | None
    checks: tuple[CheckOutcome, ...]
    failed: int
    warnings: int
    quarantined: int
    passed: int
    status: str


@dataclasses.dataclass(frozen=True)
class ValidationResult(StepResult):
    """The summary of one gate of one day.

    ``status``: passed, warning (warnings or quarantined rows), failed (a critical check
    failed; the gate raised after writing this), or skipped (``quality.enabled`` false:
    then only stage, ds, status and ``enabled`` are recorded).
    """

    stage: str
    ds: str
    status: str
    enabled: bool = True
    critical_failures: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    checks: int = 0
    checks_failed: int = 0
    suites: tuple[SuiteOutcome, ...] = ()
    tables: dict[str, TableState] = dataclasses.field(default_factory=dict)
    quarantined: dict[str, QuarantineOutcome] = dataclasses.field(default_factory=dict)
    data_docs: str | None = None
    summary_path: str | None = None
    duration_s: float | None = None

    @classmethod
    def skipped(cls, stage: str, ds: str) -> ValidationResult:
        return cls(stage=stage, ds=ds, status="skipped", enabled=False)

    def to_dict(self) -> dict[str, Any]:
        if not self.enabled:
            return {"stage": self.stage, "ds": self.ds, "status": self.status, "enabled": False}
        out = super().to_dict()
        del out["enabled"]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Self:
        data = dict(data or {})
        tables = {k: TableState.from_dict(v) for k, v in (data.pop("tables", None) or {}).items()}
        quarantined = {k: QuarantineOutcome.from_dict(v) for k, v in (data.pop("quarantined", None) or {}).items()}
        base = super().from_dict(data)
        return dataclasses.replace(
            base,
            critical_failures=tuple(base.critical_failures),
            warnings=tuple(base.warnings),
            tables=tables,
            quarantined=quarantined,
        )
