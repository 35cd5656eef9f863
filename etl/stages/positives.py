"""The positive stages: click positives (per day, incremental) and their hot/cold resampling
over the training days."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.results.etl import ClickPositivesResult, DistributionStats, ResampledPositivesResult, ResampleRule
from etl import io
from etl.stages.inputs import click_positives_of, days_between, per_day_todo, shift, with_ds

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from core.context import RunContext


def stage_click_positives(ctx: RunContext, spark: SparkSession) -> ClickPositivesResult:
    """Click positives of day D, and of any earlier day of the window (+ the 7-day freshness
    lookback) whose partition is missing or stale (derived from raw impressions that have
    changed since: :func:`etl.stages.inputs.per_day_todo`) and whose raw impressions exist."""
    from pyspark.sql import functions as F

    from etl.features import FRESHNESS_LOOKBACK_DAYS
    from etl.positives import build_click_positives

    cfg, win = ctx.cfg, ctx.window
    wanted = days_between(shift(win.days[0], -FRESHNESS_LOOKBACK_DAYS), ctx.ds)
    sources = io.source_fingerprints(ctx, "click_positives", wanted, {"positive_weight": cfg.etl.positive_weight})
    todo, stale = per_day_todo(ctx, {"click_positives": sources})
    impressions, no_raw = io.read_raw_days(spark, ctx, "impressions", todo, required_days=[ctx.ds])
    todo = [d for d in todo if d not in no_raw]
    positives = build_click_positives(impressions, cfg.etl.positive_weight)
    out = positives.withColumn(io.PARTITION_COLUMN, F.date_format("event_ds", "yyyy-MM-dd")).drop("event_ds")
    io.write_partitions(out, ctx, "click_positives", todo, sources=sources)
    # One job for every written day (a first run of a long window writes hundreds).
    written, _ = io.read_output_days(spark, ctx, "click_positives", todo)
    per_day = {str(r["event_ds"]): r["n"] for r in written.groupBy("event_ds").agg(F.count(F.lit(1)).alias("n")).collect()}
    rows = {d: per_day.get(d, 0) for d in todo}
    return ClickPositivesResult(
        rows=rows[ctx.ds],
        rows_by_day=rows,
        days_written=tuple(todo),
        stale_days_recomputed=tuple(d for d in todo if d in stale),
        window_days_without_impressions=tuple(d for d in win.days if d in no_raw),
        lookback_days_without_impressions=tuple(d for d in no_raw if d not in win.days),
    )


def stage_resampled_positives(ctx: RunContext, spark: SparkSession) -> ResampledPositivesResult:
    """Hot/cold resampling of the training days' click positives."""
    from pyspark.sql import functions as F

    from etl.positives import distribution_stats, item_click_counts, resample_positives

    etl_cfg = ctx.cfg.etl
    positives, missing = click_positives_of(spark, ctx, ctx.window.train_days, "training")
    resampled = resample_positives(positives, etl_cfg)
    io.write_partitions(with_ds(resampled, ctx.ds), ctx, "resampled_positives", [ctx.ds])
    written = io.read_output(spark, ctx, "resampled_positives", ctx.ds)
    after = written.groupBy("item_id").agg(
        F.count(F.lit(1)).alias("after"), F.sum((F.col("replica") > 0).cast("long")).alias("upsampled")
    )
    # One frame of the clicked items (catalogue-sized at most) for every statistic: one Spark job.
    per_item = (
        item_click_counts(positives, "before")
        .join(after, "item_id", "left")
        .fillna({"after": 0, "upsampled": 0})
        .select("before", "after", "upsampled")
        .toPandas()
    )
    return ResampledPositivesResult(
        rows_before=int(per_item["before"].sum()),
        rows=int(per_item["after"].sum()),
        upsampled_rows=int(per_item["upsampled"].sum()),
        train_days_missing=tuple(missing),
        distribution_before=DistributionStats(**distribution_stats(per_item["before"].to_numpy())),
        distribution_after=DistributionStats(**distribution_stats(per_item["after"].to_numpy())),
        rule=ResampleRule(
            hot_threshold=etl_cfg.hot_threshold,
            cold_threshold=etl_cfg.cold_threshold,
            max_upsample=etl_cfg.max_upsample,
            seed=etl_cfg.seed,
        ),
    )
