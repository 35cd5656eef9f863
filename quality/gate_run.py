"""One run of one gate on one day: the check outcomes it collects, their severities and
messages, the JSON summary (:class:`core.results.quality.ValidationResult`) and the verdict.

:meth:`GateRun.finish` writes the summary and raises :class:`core.errors.QualityGateFailed`
when a critical check failed (after writing, so the failure is visible); warnings are
logged, never raised.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import QualityGateFailed, data_error_message
from core.results.quality import CheckOutcome, QuarantineOutcome, SuiteOutcome, TableState, ValidationResult
from quality import io
from quality.quarantine import over_budget_text

if TYPE_CHECKING:
    from core.context import RunContext
    from quality.runner import CheckResult

# The gates log under one name (what operators filter on), whichever module writes the line.
log = logging.getLogger("quality.gates")


class GateRun:
    """Collects the check outcomes of one stage (``validate_raw`` / ``validate_outputs``) of
    one day and renders the summary.

    Args:
        ctx: the run context of the day.
        stage: the gate's name.
        progress: draw GE's progress bars (the session's decision, ``core.spark.progress_enabled``).
    """

    def __init__(self, ctx: RunContext, stage: str, progress: bool = False) -> None:
        self.ctx = ctx
        self.cfg = ctx.cfg
        self.ds = ctx.ds
        self.layout = ctx.layout
        self.stage = stage
        self.progress = progress
        self.entries: list[CheckOutcome] = []
        self.tables: dict[str, TableState] = {}
        self.quarantined: dict[str, QuarantineOutcome] = {}
        # table -> rows failing at least one row rule (set by the quarantine decision)
        self.tables_bad: dict[str, int] = {}
        self.started = time.monotonic()

    @property
    def partition(self) -> str:
        return f"ds={self.ds}"

    # -- outcomes decided outside GE (missing / empty / unreadable partitions, aggregates) ----
    def add_static(
        self,
        table: str,
        name: str,
        status: str,
        problem: str,
        fix: str | None,
        partition: str | None = None,
        *,
        suite: str = "partition",
        severity: str | None = None,
        column: str | None = None,
        rows: int | None = None,
        count: int | None = None,
        fraction: float | None = None,
        examples: list | None = None,
    ) -> None:
        severity = severity or ("critical" if status == "failed" else "warning")
        partition = partition or self.partition
        message = data_error_message(table, partition, f"{problem} (check {name})", column=column, fix=fix)
        self.entries.append(
            CheckOutcome(
                suite=f"{self.stage}.{table}.{suite}",
                table=table,
                partition=partition,
                check=name,
                expectation=None,
                severity=severity,
                status=status,
                success=status == "passed",
                rows=rows,
                failing_count=count,
                failing_fraction=fraction,
                observed=None,
                message=message if status != "passed" else None,
                examples=tuple(examples or ()),
            )
        )

    def add_unreadable(self, err: io.UnreadableFile, critical: bool = True, why: str = "") -> None:
        """A data file that is not readable Parquet (check ``readable``), from the guarded reader."""
        self.add_static(
            err.table,
            "readable",
            "failed" if critical else "warning",
            f"unreadable Parquet file {err.file} ({err.reason}){why}",
            "the file is empty or truncated (an interrupted upload?): re-export the partition "
            "(or remove the file if the rest of the partition is complete), then rerun the day",
            partition=err.partition,
        )

    # -- outcomes from GE ------------------------------------------------------------------
    def add_results(self, results: list[CheckResult], quarantine_ok: dict[str, bool] | None = None) -> None:
        for r in results:
            self.entries.append(self._entry(r, quarantine_ok or {}))

    def _entry(self, r: CheckResult, quarantine_ok: dict[str, bool]) -> CheckOutcome:
        c = r.check
        fraction = r.failing_fraction
        if r.success:
            status = "passed"
        elif c.severity == "critical":
            status = "failed"
        elif c.severity == "warning":
            status = "warning"
        elif c.severity == "threshold":
            status = "warning" if fraction is not None and fraction <= (c.max_fraction or 0.0) else "failed"
        else:  # quarantine
            status = "quarantined" if quarantine_ok.get(r.table) else "failed"
        return CheckOutcome(
            suite=r.suite,
            table=r.table,
            partition=self.partition,
            check=c.name,
            expectation=type(c.expectation).__name__,
            severity=c.severity,
            status=status,
            success=r.success,
            rows=r.rows,
            failing_count=r.failing_count,
            failing_fraction=fraction,
            observed=r.observed,
            message=self._message(r, status) if status != "passed" else None,
            examples=tuple(r.examples),
        )

    def _message(self, r: CheckResult, status: str) -> str:
        c = r.check
        problem = c.problem
        count = r.failing_count
        if c.name == "columns" and isinstance(r.observed, list):
            required = set(c.expectation.column_set)
            missing = sorted(required - set(r.observed))
            problem = f"required contract columns missing: {', '.join(missing)} (present: {', '.join(r.observed)})"
        elif c.name.startswith("type:") and r.observed is not None:
            problem = f"{c.problem}; found {r.observed}"
        elif c.name in ("volume", "non_empty"):
            problem = f"{c.problem}; the day has {r.observed:,} rows" if isinstance(r.observed, int) else c.problem
        elif c.name.startswith("sum_to_one:"):
            problem = f"{c.problem}; the sum is {r.observed!r}"
        if r.exception:
            problem += f" (GE could not evaluate the expectation: {r.exception})"
        if status == "failed" and c.severity == "quarantine":
            problem += "; " + over_budget_text(self.cfg, self.tables_bad.get(r.table), r.rows)
        elif status == "failed" and c.severity == "threshold":
            problem += f"; above the tolerated fraction {c.max_fraction:g}"
        elif status == "quarantined":
            problem += f"; rows moved to {self.layout.quarantine(r.table, self.ds)}"
        if r.examples:
            problem += f". Examples: {r.examples[:3]}"
        where_count = count if count is not None and c.name not in ("volume", "non_empty") else None
        exp = type(c.expectation).__name__
        return data_error_message(
            r.table,
            self.partition,
            f"{problem} (check {c.name}, expectation {exp})",
            column=c.column,
            count=where_count,
            fix=c.fix,
        )

    # -- summary -------------------------------------------------------------------------
    def summary(self, docs_index: Path | None) -> ValidationResult:
        by_suite: dict[str, list[CheckOutcome]] = {}
        for e in self.entries:
            by_suite.setdefault(e.suite, []).append(e)
        failures = tuple(e.message for e in self.entries if e.status == "failed")
        warnings = tuple(e.message for e in self.entries if e.status in ("warning", "quarantined"))
        return ValidationResult(
            stage=self.stage,
            ds=self.ds,
            status="failed" if failures else ("warning" if warnings else "passed"),
            critical_failures=failures,
            warnings=warnings,
            checks=len(self.entries),
            checks_failed=len(failures),
            suites=tuple(_suite_outcome(checks) for checks in by_suite.values()),
            tables=dict(self.tables),
            quarantined=dict(self.quarantined),
            data_docs=str(docs_index) if docs_index else None,
            summary_path=str(io.summary_path(self.layout, self.ds, self.stage)),
            duration_s=round(time.monotonic() - self.started, 2),
        )

    def finish(self, docs_index: Path | None) -> ValidationResult:
        """Write the JSON summary; raise QualityGateFailed if a critical check failed."""
        summary = self.summary(docs_index)
        io.write_summary(self.layout, self.ds, self.stage, summary.to_dict())
        if summary.status == "failed":
            n = len(summary.critical_failures)
            lines = "\n".join(f"  - {m}" for m in summary.critical_failures)
            raise QualityGateFailed(
                f"{self.stage} for ds={self.ds}: {n} critical data-quality check(s) failed; nothing downstream "
                f"runs and nothing is published:\n{lines}\nData Docs: {summary.data_docs}\n"
                f"Summary: {summary.summary_path} (or `twotower dq show --ds {self.ds}`)"
            )
        for m in summary.warnings:
            log.warning("%s ds=%s: %s", self.stage, self.ds, m)
        log.info(
            "%s ds=%s: %s, %d checks, %d warnings, %.1f s; Data Docs %s",
            self.stage, self.ds, summary.status, summary.checks, len(summary.warnings),
            summary.duration_s, summary.data_docs,
        )
        return summary


def _suite_outcome(checks: list[CheckOutcome]) -> SuiteOutcome:
    first = checks[0]
    rows = [e.rows for e in checks if e.rows is not None]
    statuses = [e.status for e in checks]
    failed, warnings, quarantined = statuses.count("failed"), statuses.count("warning"), statuses.count("quarantined")
    return SuiteOutcome(
        suite=first.suite,
        table=first.table,
        partition=first.partition,
        rows=max(rows) if rows else None,
        checks=tuple(checks),
        failed=failed,
        warnings=warnings,
        quarantined=quarantined,
        passed=statuses.count("passed"),
        status="failed" if failed else ("warning" if warnings or quarantined else "passed"),
    )

