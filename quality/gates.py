"""Data-quality gates of the pipeline: ``validate_raw`` (before the ETL) and
``validate_outputs`` (after it).

Each gate reads the day's partitions, builds the suites (:mod:`quality.suites`), runs them in
one Great Expectations project (:mod:`quality.runner`), applies severities, quarantines what
it may, writes a JSON summary and Data Docs under ``Layout.dq_dir(ds)``, and raises
:class:`core.errors.QualityGateFailed` when a critical check failed (after writing the
reports, so the failure is visible). Warnings are reported, never raised.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from contracts.days import day_range, ds_str
from contracts.schemas import (
    ETL_OUTPUTS,
    ITEM_CAT_PREFIX,
    ITEM_NUM_PREFIX,
    OPTIONAL_RAW_TABLES,
    RAW_TABLE_NAMES,
    USER_CAT_PREFIX,
    USER_NUM_PREFIX,
    raw_tables,
)
from core.errors import QualityGateFailed, data_error_message
from core.spark import progress_enabled
from quality import io
from quality import suites as S
from quality.rules import REASON_COLUMN, bad_row_condition, day_bounds_micros
from storage.layout import Layout, atomic_dir

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from core.config import Config
    from quality.runner import CheckResult

log = logging.getLogger(__name__)

RAW_STAGE = "validate_raw"
OUTPUTS_STAGE = "validate_outputs"
STAGES = (RAW_STAGE, OUTPUTS_STAGE)
_PREFIXES = (USER_CAT_PREFIX, USER_NUM_PREFIX, ITEM_CAT_PREFIX, ITEM_NUM_PREFIX)
# ETL outputs that may legitimately be empty (no ranking log; no numeric features).
_MAY_BE_EMPTY = ("hard_negatives", "hard_negative_candidates", "feature_stats")


class _Gate:
    """Collects check outcomes of one stage of one day and renders the summary."""

    def __init__(self, cfg: Config, ds: str, stage: str, progress: bool = False) -> None:
        self.cfg = cfg
        # GE's progress bars: the session's decision (core.spark.progress_enabled).
        self.progress = progress
        self.ds = ds
        self.stage = stage
        self.layout = Layout(cfg.paths)
        self.entries: list[dict[str, Any]] = []
        self.tables: dict[str, dict[str, Any]] = {}
        self.quarantined: dict[str, dict[str, Any]] = {}
        # table -> rows failing at least one row rule (set by the quarantine decision)
        self.tables_bad: dict[str, int] = {}
        self.started = time.monotonic()

    @property
    def partition(self) -> str:
        return f"ds={self.ds}"

    # -- outcomes decided outside GE (missing / empty partitions) -------------------------
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
            {
                "suite": f"{self.stage}.{table}.{suite}",
                "table": table,
                "partition": partition,
                "check": name,
                "expectation": None,
                "severity": severity,
                "status": status,
                "success": status == "passed",
                "rows": rows,
                "failing_count": count,
                "failing_fraction": fraction,
                "observed": None,
                "message": message if status != "passed" else None,
                "examples": examples or [],
            }
        )

    # -- outcomes from GE ------------------------------------------------------------------
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

    def add_results(self, results: list[CheckResult], quarantine_ok: dict[str, bool] | None = None) -> None:
        for r in results:
            self.entries.append(self._entry(r, quarantine_ok or {}))

    def _entry(self, r: CheckResult, quarantine_ok: dict[str, bool]) -> dict[str, Any]:
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
        message = None
        if status != "passed":
            message = self._message(r, status)
        return {
            "suite": r.suite,
            "table": r.table,
            "partition": self.partition,
            "check": c.name,
            "expectation": type(c.expectation).__name__,
            "severity": c.severity,
            "status": status,
            "success": r.success,
            "rows": r.rows,
            "failing_count": r.failing_count,
            "failing_fraction": fraction,
            "observed": r.observed,
            "message": message,
            "examples": r.examples,
        }

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
            problem += "; " + _over_budget(self.cfg, self.tables_bad.get(r.table), r.rows)
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
    def summary(self, docs_index: Path | None) -> dict[str, Any]:
        suites: dict[str, dict[str, Any]] = {}
        for e in self.entries:
            s = suites.setdefault(
                e["suite"],
                {"suite": e["suite"], "table": e["table"], "partition": e["partition"], "rows": None, "checks": []},
            )
            s["checks"].append(e)
            if e["rows"] is not None:
                s["rows"] = e["rows"] if s["rows"] is None else max(s["rows"], e["rows"])
        for s in suites.values():
            statuses = [e["status"] for e in s["checks"]]
            s["failed"] = statuses.count("failed")
            s["warnings"] = statuses.count("warning")
            s["quarantined"] = statuses.count("quarantined")
            s["passed"] = statuses.count("passed")
            s["status"] = "failed" if s["failed"] else ("warning" if s["warnings"] or s["quarantined"] else "passed")
        failures = [e["message"] for e in self.entries if e["status"] == "failed"]
        warnings = [e["message"] for e in self.entries if e["status"] in ("warning", "quarantined")]
        status = "failed" if failures else ("warning" if warnings else "passed")
        return {
            "stage": self.stage,
            "ds": self.ds,
            "status": status,
            "critical_failures": failures,
            "warnings": warnings,
            "checks": len(self.entries),
            "checks_failed": len(failures),
            "suites": list(suites.values()),
            "tables": self.tables,
            "quarantined": self.quarantined,
            "data_docs": str(docs_index) if docs_index else None,
            "summary_path": str(io.summary_path(self.layout, self.ds, self.stage)),
            "duration_s": round(time.monotonic() - self.started, 2),
        }

    def finish(self, docs_index: Path | None) -> dict[str, Any]:
        """Write the JSON summary; raise QualityGateFailed if a critical check failed."""
        summary = self.summary(docs_index)
        io.write_summary(self.layout, self.ds, self.stage, summary)
        if summary["status"] == "failed":
            n = len(summary["critical_failures"])
            lines = "\n".join(f"  - {m}" for m in summary["critical_failures"])
            raise QualityGateFailed(
                f"{self.stage} for ds={self.ds}: {n} critical data-quality check(s) failed; nothing downstream "
                f"runs and nothing is published:\n{lines}\nData Docs: {summary['data_docs']}\n"
                f"Summary: {summary['summary_path']} (or `twotower dq show --ds {self.ds}`)"
            )
        for m in summary["warnings"]:
            log.warning("%s ds=%s: %s", self.stage, self.ds, m)
        log.info(
            "%s ds=%s: %s, %d checks, %d warnings, %.1f s; Data Docs %s",
            self.stage, self.ds, summary["status"], summary["checks"], len(summary["warnings"]),
            summary["duration_s"], summary["data_docs"],
        )
        return summary


def _disabled(cfg: Config, ds: str, stage: str) -> dict[str, Any]:
    log.warning("data quality is disabled (quality.enabled=false): %s for ds=%s skipped", stage, ds)
    return {"stage": stage, "ds": ds, "status": "skipped", "enabled": False}


def _run_in_project(gate: _Gate, run) -> Path:
    """Run ``run(project)`` in a fresh GE project swapped atomically into the day's dq folder."""
    from quality.runner import GxProject

    final = io.docs_root(gate.layout, gate.ds, gate.stage)
    with atomic_dir(final) as tmp:
        project = GxProject(tmp, example_rows=gate.cfg.quality.example_rows, progress=gate.progress)
        run(project)
        project.build_docs()
    return io.data_docs_index(final)


# ======================================================================================
# Raw gate
# ======================================================================================


def validate_raw(cfg: Config, spark: SparkSession, ds: str) -> dict[str, Any]:
    """Validate the raw partitions of day ``ds`` and quarantine the few bad rows.

    Returns:
        The JSON summary (also written to ``Layout.dq_dir(ds)/validate_raw.json``).

    Raises:
        QualityGateFailed: a critical check failed (missing partition, empty day, contract
            violation, too many bad rows, duplicates above tolerance, volume out of bounds,
            clicks on rows that were not shown...). The message names table, partition,
            check/expectation, count and what to do.
    """
    ds = ds_str(ds)
    if not cfg.quality.enabled:
        return _disabled(cfg, ds, RAW_STAGE)
    gate = _Gate(cfg, ds, RAW_STAGE, progress=progress_enabled(spark))
    layout = gate.layout
    contracts = raw_tables(cfg.features)
    frames: dict[str, DataFrame] = {}
    for name in RAW_TABLE_NAMES:
        folder = layout.path_for(name, ds)
        if not layout.store.is_dir(folder):
            if name in OPTIONAL_RAW_TABLES:
                gate.tables[name] = {"present": False}
                gate.add_static(
                    name, "partition_exists", "warning", f"optional table absent: no partition at {folder}", None
                )
                continue
            gate.tables[name] = {"present": False}
            gate.add_static(
                name,
                "partition_exists",
                "failed",
                f"the day's partition is missing (expected {layout.store.uri(folder)})",
                "the upstream export for this day has not landed: wait for it or re-export the day, then rerun "
                "(the previous published model stays in place)",
            )
            continue
        if not layout.store.data_files(folder):
            gate.tables[name] = {"present": True, "rows": 0}
            gate.add_static(
                name,
                "non_empty",
                "failed",
                f"empty day: the partition {layout.store.uri(folder)} has no data files",
                "the day's export ran but wrote nothing: re-export the day, then rerun",
            )
            continue
        try:
            rows = io.checked_row_count(layout, name, ds)
        except io.UnreadableFile as err:
            gate.tables[name] = {"present": True, "readable": False}
            gate.add_unreadable(err)
            continue
        frames[name] = io.read_partition(spark, layout, name, ds)
        gate.tables[name] = {"present": True, "rows": rows}
    trailing = _earlier_days(gate, ds)

    def run(project) -> None:
        contract_suites = [S.contract_suite(contracts[n], df, ds, RAW_STAGE) for n, df in frames.items()]
        results = project.run(contract_suites)
        gate.add_results(results)
        ok = {n for n in frames if all(r.success for r in results if r.table == n)}
        row_suites = _raw_row_suites(cfg, spark, layout, ds, {n: frames[n] for n in ok}, contracts, trailing)
        row_results = project.run(row_suites)
        quarantine_ok = _quarantine(gate, row_suites, row_results)
        gate.add_results(row_results, quarantine_ok)
        if {"impressions", "items"} <= ok:
            _unknown_clicked_items(gate, frames["impressions"], frames["items"])

    docs = _run_in_project(gate, run)
    return gate.finish(docs)


def _unknown_clicked_items(gate: _Gate, impressions: DataFrame, items: DataFrame) -> None:
    """Check ``unknown_clicked_item``: clicks on items missing from the day's items snapshot.

    Such items get no catalogue row, so they are never embedded nor indexed: the published
    index cannot retrieve them. Above ``quality.unknown_item_click_max_fraction`` of the day's
    clicks (quarantined rows excluded) the day stops; below, a warning with the same counts.
    """
    from pyspark.sql import functions as F

    cfg, ds = gate.cfg, gate.ds
    clicks = impressions.filter(F.col("clicked") & ~bad_row_condition("impressions", cfg, ds)).select("item_id")
    known = (
        items.filter(~bad_row_condition("items", cfg, ds)).select("item_id").distinct().withColumn("_dq_known", F.lit(True))
    )
    joined = clicks.join(F.broadcast(known), "item_id", "left")
    unknown = F.col("_dq_known").isNull()
    row = joined.agg(
        F.count(F.lit(1)).alias("clicks"),
        F.sum(F.when(unknown, 1).otherwise(0)).alias("bad"),
        F.countDistinct(F.when(unknown, F.col("item_id"))).alias("items"),
    ).collect()[0]
    total, bad, n_items = int(row["clicks"]), int(row["bad"] or 0), int(row["items"])
    share = bad / total if total else 0.0
    limit = cfg.quality.unknown_item_click_max_fraction
    examples: list = []
    if bad:
        examples = [
            {"item_id": r["item_id"], "clicks": int(r["count"])}
            for r in joined.filter(unknown).groupBy("item_id").count().orderBy(F.desc("count"), "item_id")
            .limit(cfg.quality.example_rows).collect()
        ]
    status = "passed" if not bad else ("warning" if share <= limit else "failed")
    problem = (
        f"{n_items:,} clicked items are missing from the day's items snapshot: {bad:,} of {total:,} clicks "
        f"({share:.1%}); they get no catalogue row, so the published index could never retrieve them"
    )
    if status == "failed":
        problem += f"; above quality.unknown_item_click_max_fraction={limit:g} of the day's clicks"
    if examples:
        problem += f". Most clicked: {examples[:3]}"
    gate.add_static(
        "impressions",
        "unknown_clicked_item",
        status,
        problem,
        "the items snapshot of the day is incomplete: re-export it with every item that was shown, then rerun "
        "the day (a known, small gap: raise quality.unknown_item_click_max_fraction for this run)",
        suite="catalogue",
        severity="threshold",
        column="item_id",
        rows=total,
        count=bad,
        fraction=share,
        examples=examples,
    )


def _earlier_days(gate: _Gate, ds: str) -> dict[str, dict[str, int]]:
    """Row counts (guarded Parquet footers) of the raw partitions of the days before ``ds``
    that the volume check or the ETL window reads: table -> {day: rows} of the days present.

    An unreadable file in a day of the ETL window is critical (the ETL of ``ds`` reads it);
    in an older day it is a warning and that day leaves the volume check's history.
    """
    q = gate.cfg.quality
    window = set(day_range(ds, gate.cfg.etl.window_days)[:-1])
    days = sorted(window | set(day_range(ds, q.volume_trailing_days + 1)[:-1]))
    out: dict[str, dict[str, int]] = {}
    for table in RAW_TABLE_NAMES:
        counts = out.setdefault(table, {})
        for d in days:
            try:
                n = io.checked_row_count(gate.layout, table, d)
            except io.UnreadableFile as err:
                in_window = d in window
                why = (
                    f"; day {d} is in the training window of {ds}, so the ETL of {ds} cannot read it"
                    if in_window
                    else f"; day {d} is left out of the volume check's trailing days"
                )
                gate.add_unreadable(err, critical=in_window, why=why)
                continue
            if n is not None:
                counts[d] = n
    return out


def _trailing_counts(trailing: dict[str, dict[str, int]], table: str, ds: str, days: int) -> dict[str, int]:
    """Row counts of the trailing ``days`` days present before ``ds`` (from :func:`_earlier_days`)."""
    wanted = set(day_range(ds, days + 1)[:-1])
    return {d: n for d, n in trailing.get(table, {}).items() if d in wanted}


def _raw_row_suites(
    cfg: Config,
    spark: SparkSession,
    layout: Layout,
    ds: str,
    frames: dict[str, DataFrame],
    contracts,
    trailing: dict[str, dict[str, int]],
) -> list[S.Suite]:
    from pyspark.sql import functions as F

    q = cfg.quality
    out: list[S.Suite] = []
    ranking = frames.get("ranking_log")
    if "impressions" in frames:
        cut = None
        if ranking is not None:
            cut = ranking.filter(~bad_row_condition("ranking_log", cfg, ds) & ~F.col("passed"))
        users = frames.get("users")
        items = frames.get("items")
        out.append(
            S.raw_rows_suite(
                contracts["impressions"],
                frames["impressions"],
                ds,
                cfg,
                trailing_counts=_trailing_counts(trailing, "impressions", ds, q.volume_trailing_days),
                ranking_cut=cut,
                known_users=users.filter(F.col("user_id").isNotNull()) if users is not None else None,
                known_items=items.filter(F.col("item_id").isNotNull()) if items is not None else None,
            )
        )
    if ranking is not None:
        suite = S.raw_rows_suite(
            contracts["ranking_log"],
            ranking,
            ds,
            cfg,
            trailing_counts=_trailing_counts(trailing, "ranking_log", ds, q.volume_trailing_days),
        )
        suite.frame, funnel = S.ranking_funnel_flags(suite.frame)
        suite.checks.extend(funnel)
        out.append(suite)
    for name in ("users", "items"):
        if name in frames:
            out.append(S.raw_rows_suite(contracts[name], frames[name], ds, cfg))
    return out


def quarantine_budget(cfg: Config, rows: int) -> int:
    """Most rows of a partition of ``rows`` rows that may be quarantined:
    ``max(floor(quarantine_max_fraction x rows), quarantine_min_rows)``."""
    q = cfg.quality
    return max(int(q.quarantine_max_fraction * rows), q.quarantine_min_rows)


def _over_budget(cfg: Config, bad: int | None, rows: int | None) -> str:
    q = cfg.quality
    rows = rows or 0
    budget = quarantine_budget(cfg, rows)
    what = f"{bad:,} of {rows:,} rows fail row rules" if bad is not None else "too many rows fail row rules"
    return (
        f"{what}, more than the quarantine budget of {budget:,} rows (max(quality.quarantine_max_fraction="
        f"{q.quarantine_max_fraction:g} x rows, quality.quarantine_min_rows={q.quarantine_min_rows})), so none is "
        "quarantined and the day stops"
    )


def _quarantine(gate: _Gate, row_suites: list[S.Suite], results: list[CheckResult]) -> dict[str, bool]:
    """Quarantine rows failing row rules per table when few enough; returns table -> done."""
    from pyspark.sql import functions as F

    decided: dict[str, bool] = {}
    for suite in row_suites:
        if not suite.row_rules:
            continue
        total = next((r for r in results if r.suite == suite.name and r.check.name == S.ANY_ROW_RULE), None)
        bad = (total.failing_count or 0) if total else 0
        rows = (total.rows or 0) if total else 0
        fraction = bad / rows if rows else 0.0
        by_rule = {
            r.check.name: r.failing_count
            for r in results
            if r.suite == suite.name and r.check.severity == "quarantine" and r.check.name != S.ANY_ROW_RULE
            and r.failing_count
        }
        ok = 0 < bad <= quarantine_budget(gate.cfg, rows)
        decided[suite.table] = ok
        gate.tables_bad[suite.table] = bad
        if ok:
            reasons = F.concat_ws(
                ",", *[F.when(r.condition, F.lit(r.name)) for r in suite.row_rules]
            )
            rows_df = suite.frame.filter(F.col(S.FLAG_PREFIX + S.ANY_ROW_RULE)).select(
                *suite.source_columns, reasons.alias(REASON_COLUMN)
            )
            path = io.write_quarantine(gate.layout, suite.table, gate.ds, rows_df)
            gate.quarantined[suite.table] = {"rows": bad, "fraction": fraction, "path": str(path), "by_rule": by_rule}
            log.warning(
                "quarantined %d of %d rows of %s ds=%s (%s) into %s", bad, rows, suite.table, gate.ds, by_rule, path
            )
        else:
            io.write_quarantine(gate.layout, suite.table, gate.ds, None)
            if bad:
                gate.quarantined[suite.table] = {"rows": 0, "failing": bad, "fraction": fraction, "by_rule": by_rule}
    return decided


# ======================================================================================
# Output gate
# ======================================================================================


def validate_outputs(cfg: Config, spark: SparkSession, ds: str) -> dict[str, Any]:
    """Validate every ETL output of day ``ds`` (subset, disjointness, probability, alias,
    vocabulary-stability and id-range rules).

    Returns:
        The JSON summary (also written to ``Layout.dq_dir(ds)/validate_outputs.json``).

    Raises:
        QualityGateFailed: a critical check failed; the message names table, partition,
            check/expectation, failing count and what to do.
    """
    ds = ds_str(ds)
    if not cfg.quality.enabled:
        return _disabled(cfg, ds, OUTPUTS_STAGE)
    gate = _Gate(cfg, ds, OUTPUTS_STAGE, progress=progress_enabled(spark))
    layout = gate.layout
    frames: dict[str, DataFrame] = {}
    for name in ETL_OUTPUTS:
        folder = layout.path_for(name, ds)
        if not layout.store.is_dir(folder):
            gate.tables[name] = {"present": False}
            gate.add_static(
                name,
                "partition_exists",
                "failed",
                f"the ETL output is missing (expected {layout.store.uri(folder)})",
                "the ETL did not finish for this day: rerun `twotower etl --ds " + ds + "`",
            )
            continue
        if not layout.store.data_files(folder):
            gate.tables[name] = {"present": True, "rows": 0}
            if name not in _MAY_BE_EMPTY:
                gate.add_static(
                    name, "non_empty", "failed", f"the ETL output {layout.store.uri(folder)} has no data files", "rerun the ETL for the day"
                )
            continue
        try:
            rows = io.checked_row_count(layout, name, ds)
        except io.UnreadableFile as err:
            gate.tables[name] = {"present": True, "readable": False}
            gate.add_unreadable(err)
            continue
        frames[name] = spark.read.parquet(layout.store.uri(folder))
        gate.tables[name] = {"present": True, "rows": rows}

    def run(project) -> None:
        contract_suites = [S.contract_suite(ETL_OUTPUTS[n], df, ds, OUTPUTS_STAGE, _PREFIXES) for n, df in frames.items()]
        results = project.run(contract_suites)
        gate.add_results(results)
        ok = {n: frames[n] for n in frames if all(r.success for r in results if r.table == n)}
        try:  # the row suites also read earlier days (previous vocabulary, window positives)
            project_suites = _output_row_suites(cfg, spark, layout, ds, ok)
        except io.UnreadableFile as err:
            gate.add_unreadable(err)
            return
        gate.add_results(project.run(project_suites))

    docs = _run_in_project(gate, run)
    return gate.finish(docs)


def window_days(cfg: Config, ds: str) -> tuple[list[str], list[str]]:
    """(training days, evaluation days) of run day ``ds``'s window."""
    days = day_range(ds, cfg.etl.window_days)
    n_eval = min(cfg.etl.eval_days, len(days))
    return days[: len(days) - n_eval], days[len(days) - n_eval :]


def _vocab_sizes(vocabulary: DataFrame) -> dict[str, int]:
    from pyspark.sql import functions as F

    # One row per vocabulary: small to collect.
    return {r["vocab"]: int(r["max_id"]) for r in vocabulary.groupBy("vocab").agg(F.max("id").alias("max_id")).collect()}


def _output_row_suites(
    cfg: Config, spark: SparkSession, layout: Layout, ds: str, frames: dict[str, DataFrame]
) -> list[S.Suite]:
    from pyspark.sql import functions as F

    train_days, eval_days = window_days(cfg, ds)
    all_days = day_range(ds, cfg.etl.window_days)
    tol = cfg.quality.probability_tolerance
    sizes = _vocab_sizes(frames["vocabulary"]) if "vocabulary" in frames else {}
    out: list[S.Suite] = []
    T = ETL_OUTPUTS

    def not_null(cols: list[str]) -> tuple[dict, list]:
        flags, checks = {}, []
        for c in cols:
            flags[f"{S.FLAG_PREFIX}null_{c}"] = F.col(c).isNull()
            checks.append(S.flag_check(f"null_{c}", "critical", f"{c} is null", S._RERUN_ETL, column=c))
        return flags, checks

    if "click_positives" in frames:
        cp = frames["click_positives"]
        raw = io.read_partition(spark, layout, "impressions", ds)
        flags, checks = not_null(["request_id", "user_id", "item_id"])
        lo, hi = day_bounds_micros(ds)
        micros = F.unix_micros(F.col("ts"))
        flags[S.FLAG_PREFIX + "ts_in_day"] = S._safe(F.col("ts").isNull() | (micros < lo) | (micros >= hi))
        checks.append(S.flag_check("ts_in_day", "critical", f"ts is outside the event day {ds}", S._RERUN_ETL, column="ts"))
        flags[S.FLAG_PREFIX + "weight_positive"] = S._safe(S._not_finite(F.col("weight")) | (F.col("weight") <= 0))
        checks.append(S.flag_check("weight_positive", "critical", "weight is not a positive finite number", S._RERUN_ETL, column="weight"))
        frame = cp
        if raw is not None and set(("request_id", "item_id", "user_id", "clicked")) <= set(raw.columns):
            cond = bad_row_condition("impressions", cfg, ds)
            good = raw.filter(F.col("clicked") & ~cond)
            frame, chk = S.subset_flag(
                cp,
                good,
                ["request_id", "item_id", "user_id"],
                "subset_of_shown_clicked",
                "the positive is not a shown-and-clicked impression of the day (a shown-but-not-clicked or "
                "quarantined row became a positive)",
                "positives must come only from clicked impressions: fix etl positives, then rerun the ETL",
                column="item_id",
            )
            checks.append(chk)
        out.append(S.output_rows_suite(T["click_positives"], frame, ds, flags, checks))

    if "resampled_positives" in frames:
        rp = frames["resampled_positives"]
        flags, checks = S.days_flag("event_ds_in_training_days", "event_ds", train_days, "the training days")
        f2, c2 = not_null(["request_id", "user_id", "item_id"])
        flags.update(f2)
        checks.extend(c2)
        flags[S.FLAG_PREFIX + "weight_positive"] = S._safe(S._not_finite(F.col("weight")) | (F.col("weight") <= 0))
        checks.append(S.flag_check("weight_positive", "critical", "weight is not a positive finite number", S._RERUN_ETL, column="weight"))
        flags[S.FLAG_PREFIX + "replica_non_negative"] = S._safe(F.col("replica").isNull() | (F.col("replica") < 0))
        checks.append(S.flag_check("replica_non_negative", "critical", "replica is negative", S._RERUN_ETL, column="replica"))
        frame = rp
        positives = io.read_partitions(spark, layout, "click_positives", train_days)
        if positives is not None:
            frame, chk = S.subset_flag(
                rp,
                positives,
                ["request_id", "item_id"],
                "subset_of_click_positives",
                "the resampled positive is not a click positive of the training days",
                "resampling must only copy or drop click positives: " + S._RERUN_ETL,
                column="item_id",
            )
            checks.append(chk)
        out.append(S.output_rows_suite(T["resampled_positives"], frame, ds, flags, checks))

    if "hard_negatives" in frames:
        hn = frames["hard_negatives"]
        flags, checks = not_null(["request_id", "user_id", "item_id"])
        flags[S.FLAG_PREFIX + "stage_cut_valid"] = S._safe(
            ~(
                ((F.col("stage_cut") == "pre_rank") & (F.col("difficulty") == 1))
                | ((F.col("stage_cut") == "rank") & (F.col("difficulty") == 2))
            )
        )
        checks.append(
            S.flag_check(
                "stage_cut_valid",
                "critical",
                "stage_cut/difficulty is not (pre_rank, 1) or (rank, 2)",
                S._RERUN_ETL,
                column="stage_cut",
            )
        )
        # The evaluation days' hard negatives feed final_examples only (never the evaluation).
        f2, c2 = S.days_flag("event_ds_in_window_days", "event_ds", all_days, "the window's days")
        flags.update(f2)
        checks.extend(c2)
        frame = hn
        shown = io.read_partitions(spark, layout, "impressions", all_days)
        if shown is not None:
            shown = shown.filter(F.col("user_id").isNotNull() & F.col("item_id").isNotNull())
            frame, chk = S.overlap_flag(
                hn,
                shown,
                ["user_id", "item_id"],
                "disjoint_from_shown_or_clicked",
                "the hard negative was shown to (or clicked by) the same user in the window: it is not a negative",
                "hard negatives must exclude every item shown or clicked by the user in the window: fix the "
                "anti-join in etl hard negatives, then rerun the ETL",
                column="item_id",
            )
            checks.append(chk)
        out.append(S.output_rows_suite(T["hard_negatives"], frame, ds, flags, checks, allow_empty=True))

    if "item_sampling" in frames:
        frame, checks = S.alias_frame(frames["item_sampling"], tol, cfg.etl.smoothing, frames.get("item_catalogue"))
        checks.append(S.sum_to_one_check("inbatch_prob", tol))
        flags, c2 = S.idx_range_flags(["item_idx"], sizes, cfg)
        checks.extend(c2)
        out.append(S.output_rows_suite(T["item_sampling"], frame, ds, flags, checks))

    if "vocabulary" in frames:
        voc = frames["vocabulary"]
        flags = {S.FLAG_PREFIX + "id_non_negative": S._safe(F.col("id").isNull() | (F.col("id") < 0))}
        checks = [
            S.flag_check("id_non_negative", "critical", "id is null or negative", S._RERUN_ETL, column="id"),
            S.unique_check(("vocab", "id"), "critical", None, "two values share one id: " + S._RERUN_ETL),
        ]
        out.append(S.output_rows_suite(T["vocabulary"], voc, ds, flags, checks))
        previous = [d for d in layout.partitions("vocabulary") if d < ds]
        prev = io.read_partition(spark, layout, "vocabulary", previous[-1]) if previous else None
        if prev is not None:
            out.append(S.vocabulary_stability_suite(voc, prev, ds, previous[-1]))

    if "feature_stats" in frames:
        fs = frames["feature_stats"]
        flags = {
            S.FLAG_PREFIX + "stats_finite": S._safe(
                S._not_finite(F.col("mean")) | S._not_finite(F.col("std")) | (F.col("std") <= 0)
            )
        }
        checks = [S.flag_check("stats_finite", "critical", "mean/std is not finite or std <= 0", S._RERUN_ETL, column="std")]
        out.append(S.output_rows_suite(T["feature_stats"], fs, ds, flags, checks, allow_empty=True))

    for name in (
        "user_features",
        "serving_user_features",
        "item_catalogue",
        "item_day_features",
        "train_examples",
        "final_examples",
        "eval_examples",
    ):
        if name not in frames:
            continue
        df = frames[name]
        flags, checks = S.idx_range_flags(df.columns, sizes, cfg)
        frame = df
        if name in ("train_examples", "final_examples"):
            rule, days, what = (
                ("event_ds_in_training_days", train_days, "the training days")
                if name == "train_examples"
                else ("event_ds_in_evaluation_days", eval_days, "the evaluation days")
            )
            f2, c2 = S.days_flag(rule, "event_ds", days, what)
            flags.update(f2)
            checks.extend(c2)
            flags[S.FLAG_PREFIX + "weight_positive"] = S._safe(S._not_finite(F.col("weight")) | (F.col("weight") <= 0))
            checks.append(S.flag_check("weight_positive", "critical", "weight is not a positive finite number", S._RERUN_ETL, column="weight"))
            flags[S.FLAG_PREFIX + "label_liked_binary"] = S._safe(~F.col("label_liked").isin(0.0, 1.0))
            checks.append(S.flag_check("label_liked_binary", "critical", "label_liked is not 0 or 1", S._RERUN_ETL, column="label_liked"))
        if name == "item_day_features":
            f2, c2 = S.days_flag("event_ds_in_training_days", "event_ds", train_days, "the training days")
            flags.update(f2)
            checks.extend(c2)
        if name == "eval_examples":
            flags[S.FLAG_PREFIX + "has_targets"] = S._safe(F.coalesce(F.size("target_idx"), F.lit(0)) <= 0)
            checks.append(S.flag_check("has_targets", "critical", "an evaluation user has no target item", S._RERUN_ETL, column="target_idx"))
        # Encoded ids must agree with the persisted vocabulary (id -> value).
        id_cols = {
            "item_catalogue": ("item_id", "item_idx"),
            "user_features": ("user_id", "user_idx"),
            "serving_user_features": ("user_id", "user_idx"),
        }.get(name)
        if id_cols and "vocabulary" in frames:
            id_col, idx_col = id_cols
            ref = frames["vocabulary"].filter(F.col("vocab") == id_col).select(
                F.col("id").alias(idx_col), F.col("value").alias(id_col)
            )
            frame, chk = S.subset_flag(
                df, ref, [idx_col, id_col], "idx_matches_vocabulary",
                f"({idx_col}, {id_col}) disagrees with the {id_col} vocabulary", S._RERUN_ETL, column=idx_col,
            )
            checks.append(chk)
        out.append(S.output_rows_suite(T[name], frame, ds, flags, checks))
    return out
