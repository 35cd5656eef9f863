"""The report step's result."""

from __future__ import annotations

import dataclasses

from core.results import StepResult


@dataclasses.dataclass(frozen=True)
class ReportResult(StepResult):
    """Where the run's HTML report was written."""

    report: str = ""
