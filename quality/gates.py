"""The data-quality gates of the pipeline: :func:`validate_raw` (before the ETL) and
:func:`validate_outputs` (after it).

Each gate reads the day's partitions (:mod:`quality.io`), builds the suites (contract suites,
then rows suites: :mod:`quality.raw_suites`, and for the outputs the declared checks of
:mod:`quality.output_checks` through :mod:`quality.output_engine`), runs them in one Great
Expectations project (:mod:`quality.runner`), applies severities (:mod:`quality.gate_run`),
quarantines what it may (:mod:`quality.quarantine`), writes a JSON summary and Data Docs under
``Layout.dq_dir(ds)``, and raises :class:`core.errors.QualityGateFailed` when a critical check
failed (after writing the reports, so the failure is visible). Warnings are reported, never
raised.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from contracts.outputs import ETL_OUTPUTS
from contracts.schemas import OPTIONAL_RAW_TABLES, RAW_TABLE_NAMES, raw_tables
from core.results.quality import TableState, ValidationResult
from core.spark import progress_enabled
from quality import io
from quality.catalogue_check import unknown_clicked_items
from quality.contract_suites import FEATURE_PREFIXES, contract_suite
from quality.gate_run import GateRun
from quality.output_checks import MAY_BE_EMPTY
from quality.output_engine import output_row_suites
from quality.quarantine import quarantine
from quality.raw_suites import raw_row_suites, trailing_days
from storage.layout import atomic_dir

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from core.context import RunContext
    from quality.runner import GxProject

log = logging.getLogger(__name__)

RAW_STAGE = "validate_raw"
OUTPUTS_STAGE = "validate_outputs"


def validate_raw(ctx: RunContext, spark: SparkSession) -> ValidationResult:
    """Validate the raw partitions of day ``ctx.ds`` and quarantine the few bad rows.

    Returns:
        The summary (also written to ``Layout.dq_dir(ds)/validate_raw.json``).

    Raises:
        QualityGateFailed: a critical check failed (missing partition, empty day, contract
            violation, too many bad rows, duplicates above tolerance, volume out of bounds,
            clicks on rows that were not shown...). The message names table, partition,
            check/expectation, count and what to do.
    """
    if not ctx.cfg.quality.enabled:
        return _disabled(ctx, RAW_STAGE)
    cfg, ds, store = ctx.cfg, ctx.ds, ctx.layout.store
    gate = GateRun(ctx, RAW_STAGE, progress=progress_enabled(spark))

    def missing(name: str, folder: Path) -> None:
        if name in OPTIONAL_RAW_TABLES:
            gate.add_static(name, "partition_exists", "warning", f"optional table absent: no partition at {folder}", None)
            return
        gate.add_static(
            name,
            "partition_exists",
            "failed",
            f"the day's partition is missing (expected {store.uri(folder)})",
            "the upstream export for this day has not landed: wait for it or re-export the day, then rerun "
            "(the previous published model stays in place)",
        )

    def empty(name: str, folder: Path) -> None:
        gate.add_static(
            name,
            "non_empty",
            "failed",
            f"empty day: the partition {store.uri(folder)} has no data files",
            "the day's export ran but wrote nothing: re-export the day, then rerun",
        )

    contracts = raw_tables(cfg.features)
    frames = _read_day(gate, spark, RAW_TABLE_NAMES, missing, empty)
    earlier = _earlier_day_counts(gate)

    def run(project: GxProject) -> None:
        results = project.run([contract_suite(contracts[n], df, ds, RAW_STAGE) for n, df in frames.items()])
        gate.add_results(results)
        ok = {n: df for n, df in frames.items() if all(r.success for r in results if r.table == n)}
        row_suites = raw_row_suites(cfg, ds, ok, contracts, earlier)
        row_results = project.run(row_suites)
        quarantine_ok = quarantine(gate, row_suites, row_results)
        gate.add_results(row_results, quarantine_ok)
        if {"impressions", "items"} <= set(ok):
            unknown_clicked_items(gate, frames["impressions"], frames["items"])

    return gate.finish(_run_in_project(gate, run))


def validate_outputs(ctx: RunContext, spark: SparkSession) -> ValidationResult:
    """Validate every ETL output of day ``ctx.ds``: its contract, then the row checks declared
    in :data:`quality.output_checks.OUTPUT_CHECKS`.

    Returns:
        The summary (also written to ``Layout.dq_dir(ds)/validate_outputs.json``).

    Raises:
        QualityGateFailed: a critical check failed; the message names table, partition,
            check/expectation, failing count and what to do.
    """
    if not ctx.cfg.quality.enabled:
        return _disabled(ctx, OUTPUTS_STAGE)
    ds, store = ctx.ds, ctx.layout.store
    gate = GateRun(ctx, OUTPUTS_STAGE, progress=progress_enabled(spark))

    def missing(name: str, folder: Path) -> None:
        gate.add_static(
            name,
            "partition_exists",
            "failed",
            f"the ETL output is missing (expected {store.uri(folder)})",
            "the ETL did not finish for this day: rerun `twotower etl --ds " + ds + "`",
        )

    def empty(name: str, folder: Path) -> None:
        if name not in MAY_BE_EMPTY:
            gate.add_static(
                name, "non_empty", "failed", f"the ETL output {store.uri(folder)} has no data files", "rerun the ETL for the day"
            )

    frames = _read_day(gate, spark, ETL_OUTPUTS, missing, empty)

    def run(project: GxProject) -> None:
        contract_suites = [contract_suite(ETL_OUTPUTS[n], df, ds, OUTPUTS_STAGE, FEATURE_PREFIXES) for n, df in frames.items()]
        results = project.run(contract_suites)
        gate.add_results(results)
        ok = {n: df for n, df in frames.items() if all(r.success for r in results if r.table == n)}
        try:  # the row suites also read earlier days (previous vocabulary, window positives)
            row_suites = output_row_suites(ctx, spark, ok)
        except io.UnreadableFile as err:
            gate.add_unreadable(err)
            return
        gate.add_results(project.run(row_suites))

    return gate.finish(_run_in_project(gate, run))


def _disabled(ctx: RunContext, stage: str) -> ValidationResult:
    log.warning("data quality is disabled (quality.enabled=false): %s for ds=%s skipped", stage, ctx.ds)
    return ValidationResult.skipped(stage, ctx.ds)


def _read_day(
    gate: GateRun,
    spark: SparkSession,
    names: Iterable[str],
    missing: Callable[[str, Path], None],
    empty: Callable[[str, Path], None],
) -> dict[str, DataFrame]:
    """The day's partitions of ``names`` that can be checked; the others are recorded in
    ``gate.tables`` and reported through ``missing`` / ``empty`` (or as unreadable)."""
    layout, ds = gate.layout, gate.ds
    frames: dict[str, DataFrame] = {}
    for name in names:
        folder = layout.path_for(name, ds)
        if not layout.store.is_dir(folder):
            gate.tables[name] = TableState(present=False)
            missing(name, folder)
            continue
        if not layout.store.data_files(folder):
            gate.tables[name] = TableState(present=True, rows=0)
            empty(name, folder)
            continue
        try:
            rows, frames[name] = io.read_counted_partition(spark, layout, name, ds)
        except io.UnreadableFile as err:
            gate.tables[name] = TableState(present=True, readable=False)
            gate.add_unreadable(err)
            continue
        gate.tables[name] = TableState(present=True, rows=rows)
    return frames


def _earlier_day_counts(gate: GateRun) -> dict[str, dict[str, int]]:
    """Row counts (guarded Parquet footers) of the raw partitions of the days before the run
    day that the volume check or the ETL window reads: table -> {day: rows} of the days present.

    An unreadable file in a day of the ETL window is critical (the ETL of the day reads it);
    in an older day it is a warning and that day leaves the volume check's history.
    """
    ds = gate.ds
    window = set(gate.ctx.window.days) - {ds}
    days = sorted(window | set(trailing_days(ds, gate.cfg.quality.volume_trailing_days)))
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


def _run_in_project(gate: GateRun, run: Callable[[GxProject], None]) -> Path:
    """Run ``run(project)`` in a fresh GE project swapped atomically into the day's dq folder."""
    from quality.runner import GxProject

    final = io.docs_root(gate.layout, gate.ds, gate.stage)
    with atomic_dir(final) as tmp:
        project = GxProject(tmp, example_rows=gate.cfg.quality.example_rows, progress=gate.progress)
        run(project)
        project.build_docs()
    return io.data_docs_index(final)
