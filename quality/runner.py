"""Run :class:`quality.suites.Suite` objects with Great Expectations and build Data Docs.

One file-backed GE context per validation call (not per expectation), created in a temp dir
and moved into place atomically, so a rerun of a day replaces that day's Data Docs. Each
suite's frame is cached for the duration of its validation: GE then answers all of the
suite's aggregate metrics from memory.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quality.suites import Check, Suite

log = logging.getLogger(__name__)

# GE logs each metric resolution and a few deprecations at INFO/WARNING: keep our logs readable.
_NOISY_LOGGERS = ("great_expectations", "great_expectations.core", "great_expectations.data_context")


@dataclass
class CheckResult:
    """Outcome of one check, before the gate applies severities and thresholds."""

    check: Check
    suite: str
    table: str
    ds: str
    success: bool
    rows: int | None
    failing_count: int | None
    observed: Any
    exception: str | None = None
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def failing_fraction(self) -> float | None:
        if self.failing_count is None or not self.rows:
            return None
        return self.failing_count / self.rows


def quiet_ge() -> None:
    """Silence GE's progress bars and chatty loggers (idempotent)."""
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


class GxProject:
    """One file-backed GE context for one validation call (suites, results, Data Docs).

    Args:
        project_dir: an empty folder; the GE project and its Data Docs are written below it.
        example_rows: failing rows fetched per failing flag check (a small ``limit`` query).
    """

    def __init__(self, project_dir: Path, example_rows: int = 5) -> None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        quiet_ge()
        self._gx = gx
        self.example_rows = example_rows
        self.context = gx.get_context(mode="file", project_root_dir=str(project_dir))
        self.context.enable_analytics(False)
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        self.context.variables.save()
        self.source = self.context.data_sources.add_spark(name="spark")
        self.result_format = {"result_format": "BASIC", "partial_unexpected_count": 0}

    def run(self, suites: list[Suite]) -> list[CheckResult]:
        """Validate each suite on its (cached) frame; one :class:`CheckResult` per check, in order."""
        gx = self._gx
        out: list[CheckResult] = []
        for suite in suites:
            if not suite.checks:
                continue
            key = f"{suite.name}.ds={suite.ds}"
            batch_def = self.source.add_dataframe_asset(name=suite.name).add_batch_definition_whole_dataframe(key)
            gx_suite = self.context.suites.add(
                gx.ExpectationSuite(
                    name=suite.name,
                    expectations=[copy.copy(c.expectation) for c in suite.checks],
                    meta={"table": suite.table, "partition": f"ds={suite.ds}"},
                )
            )
            definition = self.context.validation_definitions.add(
                gx.ValidationDefinition(name=key, data=batch_def, suite=gx_suite)
            )
            # A checkpoint (not a bare validation definition) so the result is stored for Data Docs.
            checkpoint = self.context.checkpoints.add(
                gx.Checkpoint(name=key, validation_definitions=[definition], actions=[], result_format=self.result_format)
            )
            started = time.monotonic()
            frame = suite.frame.cache()
            try:
                cp_result = checkpoint.run(batch_parameters={"dataframe": frame})
                out.extend(_collect(suite, cp_result, frame, self.example_rows))
            finally:
                frame.unpersist()
            log.info("suite %s (%d checks) validated in %.1f s", key, len(suite.checks), time.monotonic() - started)
        return out

    def build_docs(self) -> None:
        self.context.build_data_docs()


def _collect(suite: Suite, cp_result: Any, frame: Any, example_rows: int) -> list[CheckResult]:
    by_name = {c.name: c for c in suite.checks}
    results: dict[str, CheckResult] = {}
    for vr in cp_result.run_results.values():
        for r in vr.results:
            name = (r.expectation_config.meta or {}).get("check")
            check = by_name.get(name)
            if check is None:
                continue
            res = r.result or {}
            exc = r.exception_info or {}
            raised = exc.get("raised_exception") if isinstance(exc, dict) else False
            rows = res.get("element_count")
            failing = res.get("unexpected_count")
            results[name] = CheckResult(
                check=check,
                suite=suite.name,
                table=suite.table,
                ds=suite.ds,
                success=bool(r.success),
                rows=rows,
                failing_count=failing,
                observed=res.get("observed_value"),
                exception=exc.get("exception_message") if raised else None,
                examples=[{"value": v} for v in (res.get("partial_unexpected_list") or [])]
                if not check.flag
                else [],
            )
    ordered = []
    for check in suite.checks:
        cr = results.get(check.name)
        if cr is None:  # GE returned nothing for it: report as failed rather than hide it
            cr = CheckResult(check, suite.name, suite.table, suite.ds, False, None, None, None, "no result from GE")
        if not cr.success and check.flag and cr.failing_count:
            # The table's own columns (plus the ones a join added for the check, e.g. previous_id).
            cols = [c for c in suite.example_columns if c in frame.columns and not c.startswith(("_dq_", "dq_"))]
            rows = frame.filter(frame[check.flag]).select(*cols).limit(example_rows).collect()
            cr.examples = [_jsonable_row(r.asDict()) for r in rows]
        elif not cr.success and check.key and cr.failing_count:
            from pyspark.sql import functions as F

            dup = frame.groupBy(*check.key).agg(F.count(F.lit(1)).alias("copies")).filter(F.col("copies") > 1)
            cr.examples = [_jsonable_row(r.asDict()) for r in dup.limit(example_rows).collect()]
        ordered.append(cr)
    return ordered


def _jsonable_row(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in row.items():
        out[k] = v if isinstance(v, str | int | float | bool | type(None)) else str(v)
    return out
