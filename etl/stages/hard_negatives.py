"""The hard-negative stage: per-day candidate and shown-pair outputs (incremental), assembled
into the window's hard negatives (the outputs gate proves none was shown to its user)."""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING

from core.errors import DataError, data_error_message
from core.results.etl import HardNegativesResult
from etl import io
from etl.stages.inputs import per_day_todo, with_ds

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from core.context import RunContext

log = logging.getLogger(__name__)


def stage_hard_negatives(ctx: RunContext, spark: SparkSession) -> HardNegativesResult:
    """Hard negatives of the window's requests (empty without a ranking log): the training
    days' feed ``train_examples``, the evaluation days' feed ``final_examples`` (the training
    on day D after the gate's evaluation); evaluation never reads them.

    Incremental (docs/etl.md, "Per-day outputs and reruns"): the per-day outputs
    ``hard_negative_candidates`` and ``shown_pairs`` are computed from raw logs for day D, and
    for any window day whose partitions are missing or stale
    (:func:`etl.stages.inputs.per_day_todo`); the window's hard negatives are assembled from
    the per-day outputs (one scan each), so the raw ranking log of an unchanged earlier day is
    never re-read. The result equals :func:`etl.hard_negatives.hard_negatives_from_ranking_log`
    over the raw window."""
    from pyspark.sql import functions as F

    from contracts.outputs import HARD_NEGATIVE_CANDIDATES, HARD_NEGATIVES
    from etl.hard_negatives import (
        cap_hard_negatives,
        cut_candidates,
        excluded_pairs,
        stage_proves_hard_negatives,
    )

    etl_cfg, days, ds = ctx.cfg.etl, ctx.window.days, ctx.ds
    cand_sources = io.source_fingerprints(ctx, "hard_negative_candidates", days)
    pair_sources = io.source_fingerprints(ctx, "shown_pairs", days)
    todo, stale = per_day_todo(ctx, {"hard_negative_candidates": cand_sources, "shown_pairs": pair_sources})
    ranking_days = [d for d in days if io.has_partition(ctx, "ranking_log", d)]
    if not ranking_days:
        # Nothing to exclude from while no window day has a ranking log (e.g. an imported
        # ratings log): only D's per-day outputs (the outputs gate checks them); the other days'
        # are computed when a ranking log first appears in a window (their partitions are missing).
        todo = [ds]
    impressions, no_imp = io.read_raw_days(spark, ctx, "impressions", todo, required_days=[ds])
    # A window day without raw impressions keeps what it has (or stays without per-day outputs).
    todo = [d for d in todo if d not in no_imp]
    ranking_todo, _ = io.read_raw_days(spark, ctx, "ranking_log", todo)
    todo_pos, _ = io.read_output_days(spark, ctx, "click_positives", todo)
    day = F.date_format("event_ds", "yyyy-MM-dd").alias(io.PARTITION_COLUMN)
    if ranking_todo is not None and todo_pos is not None:
        cands = cut_candidates(ranking_todo, todo_pos.select("request_id"))
    else:  # no ranking log (or no click) on those days: empty candidate partitions
        cands = spark.createDataFrame([], HARD_NEGATIVE_CANDIDATES.spark_schema())
    io.write_partitions(cands.select("*", day), ctx, "hard_negative_candidates", todo, sources=cand_sources)
    shown = impressions.select("user_id", "item_id", "event_ds")
    clicked = todo_pos.select("user_id", "item_id", "event_ds") if todo_pos is not None else shown.limit(0)
    pairs = excluded_pairs(shown, clicked, keep=("event_ds",))
    io.write_partitions(pairs.select("user_key", "pair_key", day), ctx, "shown_pairs", todo, sources=pair_sources)

    result = HardNegativesResult(
        per_request_cap=etl_cfg.hard_negatives_per_request,
        per_day_outputs_computed=tuple(todo),
        stale_days_recomputed=tuple(d for d in todo if d in stale),
        ranking_log_present=bool(ranking_days),
        ranking_log_days_missing=tuple(d for d in days if d not in ranking_days),
    )
    if not ranking_days:
        empty = spark.createDataFrame([], HARD_NEGATIVES.spark_schema())
        io.write_partitions(empty, ctx, "hard_negatives", [ds])
        log.warning("no ranking log for the window of ds=%s: hard_negatives is empty", ds)
        return dataclasses.replace(result, rows=0, by_difficulty={}, shown_overlap_rows=0)
    candidates, _ = io.read_output_days(spark, ctx, "hard_negative_candidates", days)
    excluded, _ = io.read_output_days(spark, ctx, "shown_pairs", days)
    hard = cap_hard_negatives(candidates, excluded.select("user_key", "pair_key"), etl_cfg.hard_negatives_per_request, etl_cfg.seed)
    io.write_partitions(with_ds(hard, ds), ctx, "hard_negatives", [ds])
    written = io.read_output(spark, ctx, "hard_negatives", ds)
    agg = written.agg(
        F.count(F.lit(1)).alias("rows"),
        F.sum((F.col("difficulty") == 1).cast("long")).alias("d1"),
        F.sum((F.col("difficulty") == 2).cast("long")).alias("d2"),
        F.count_distinct("request_id").alias("requests"),
    ).first()
    result = dataclasses.replace(
        result, rows=agg["rows"], by_difficulty={"1": agg["d1"] or 0, "2": agg["d2"] or 0}, requests=agg["requests"]
    )
    if stage_proves_hard_negatives(ctx.cfg):
        return _verified(ctx, spark, written, result)
    # The outputs gate proves it (check disjoint_from_shown_or_clicked) before training reads
    # the partition: proving it here too would join the window's impressions twice a day. With
    # the gates off nothing else would, so the stage does.
    return result


def _verified(ctx: RunContext, spark: SparkSession, written: DataFrame, result: HardNegativesResult) -> HardNegativesResult:
    """``result`` with ``shown_overlap_rows`` measured on the written output, by exact string
    comparison against the raw impressions of the whole window (independent of the hashes the
    exclusion used).

    Raises:
        DataError: a hard negative was shown to its user (the partition is removed first).
    """
    from etl.hard_negatives import shown_overlap

    days, ds = ctx.window.days, ctx.ds
    shown, _ = io.read_raw_days(spark, ctx, "impressions", days, required_days=[ds])
    overlap = shown_overlap(written, shown).count()
    if overlap:
        # Never leave a partition that breaks the guarantee where training would read it.
        io.drop_partition(ctx, "hard_negatives", ds)
        raise DataError(
            data_error_message(
                "hard_negatives",
                f"ds={ds}",
                "hard negatives were shown to the same user in the window",
                count=overlap,
                fix="the partition was removed; this is an ETL bug, report it with this run's inputs",
            )
        )
    return dataclasses.replace(result, shown_overlap_rows=overlap)
