"""Run :class:`quality.checks.Suite` objects with Great Expectations and build Data Docs.

One file-backed GE context per validation call (not per expectation), created in a temp dir
and moved into place atomically, so a rerun of a day replaces that day's Data Docs. Each
suite's frame is cached for the duration of its validation: GE then answers all of the
suite's aggregate metrics from memory.

Every validation is stored under the run name of the day (``RunIdentifier(run_name=ds)``) on a
data asset named after the table; :func:`quality.docs.finish_site` then makes the site work
offline and adds the example offending rows of failed checks to their pages. GE's progress
bars follow ``progress`` (decided once, where the Spark session is built:
:func:`core.spark.console_progress`); one INFO line per suite either way.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from quality import docs, io
from quality.checks import Check, Suite

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
    """Silence GE's chatty loggers (idempotent); its progress bars are set per project."""
    for name in _NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


class GxProject:
    """One file-backed GE context for one validation call (suites, results, Data Docs).

    Args:
        project_dir: an empty folder; the GE project and its Data Docs are written below it.
        example_rows: failing rows fetched per failing flag check (a small ``limit`` query).
        progress: draw GE's progress bars (a terminal); off in Airflow task logs and CI.
    """

    def __init__(self, project_dir: Path, example_rows: int = 5, progress: bool = False) -> None:
        quiet_ge()  # before the import: GE logs its API registry at INFO while importing
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self._gx = gx
        self.example_rows = example_rows
        self.project_dir = Path(project_dir)
        self.results: list[CheckResult] = []
        # One run time for every suite of this project, under the run name of the day.
        self.run_time = dt.datetime.now(dt.UTC)
        self.context = gx.get_context(mode="file", project_root_dir=str(project_dir))
        self.context.enable_analytics(False)
        self.context.variables.progress_bars = ProgressBarsConfig(globally=progress, metric_calculations=progress)
        self.context.variables.save()
        self.source = self.context.data_sources.add_spark(name="spark")
        self.result_format = {"result_format": "BASIC", "partial_unexpected_count": 0}

    def run(self, suites: list[Suite]) -> list[CheckResult]:
        """Validate each suite on its (cached) frame; one :class:`CheckResult` per check, in order."""
        from great_expectations.core.run_identifier import RunIdentifier

        gx = self._gx
        out: list[CheckResult] = []
        todo = [s for s in suites if s.checks]
        for i, suite in enumerate(todo, 1):
            key = f"{suite.name}.ds={suite.ds}"
            # The data asset is the table (its contract and rows suites share it).
            if suite.table in self.source.get_asset_names():
                asset = self.source.get_asset(suite.table)
            else:
                asset = self.source.add_dataframe_asset(name=suite.table)
            batch_def = asset.add_batch_definition_whole_dataframe(key)
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
            run_id = RunIdentifier(run_name=suite.ds, run_time=self.run_time)
            try:
                cp_result = checkpoint.run(batch_parameters={"dataframe": frame}, run_id=run_id)
                self._name_asset(cp_result, suite.table)
                got = _collect(suite, cp_result, frame, self.example_rows)
            finally:
                frame.unpersist()
            out.extend(got)
            rows = max((r.rows for r in got if r.rows is not None), default=None)
            log.info(
                "suite %d/%d %s: %s rows, %d checks, %d failed, %.1f s",
                i,
                len(todo),
                key,
                f"{rows:,}" if rows is not None else "?",
                len(suite.checks),
                sum(not r.success for r in got),
                time.monotonic() - started,
            )
        self.results.extend(out)
        return out

    def _name_asset(self, cp_result: Any, table: str) -> None:
        """Store the table as the batch's data asset in each result: the page's "Data asset"
        comes from the batch spec, which for an in-memory DataFrame names none."""
        store = self.context.validation_results_store
        for key, vr in cp_result.run_results.items():
            vr.meta.setdefault("batch_spec", {})["data_asset_name"] = table
            store.set(key, vr)

    @property
    def site_dir(self) -> Path:
        """The Data Docs site (the folder of its ``index.html``)."""
        return io.data_docs_index(self.project_dir).parent

    def build_docs(self) -> None:
        """Build the Data Docs, then make them work offline and add example offending rows."""
        self.context.build_data_docs()
        docs.finish_site(self.site_dir, self.results)


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
