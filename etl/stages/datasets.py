"""The dataset stage: the training examples (shuffled Parquet shards), the evaluation days'
examples for the training after the gate, the per-day item features sampled negatives take,
and the held-out evaluation set."""

from __future__ import annotations

import datetime as dt
import math
from typing import TYPE_CHECKING

from core.errors import DataError, data_error_message
from core.results.etl import DatasetsResult
from etl import io
from etl.stages.inputs import click_positives_of, days_between, item_context, shift, with_ds

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from core.context import RunContext


def stage_datasets(ctx: RunContext, spark: SparkSession) -> DatasetsResult:
    """train_examples (shuffled Parquet shards), final_examples (the evaluation days' clicks,
    for the training after the gate) and eval_examples (held-out days)."""
    from pyspark.sql import functions as F

    from etl.datasets import (
        build_eval_examples,
        build_train_examples,
        example_history,
        request_hard_negatives,
    )
    from etl.features import (
        FRESHNESS_FEATURES,
        FRESHNESS_LOOKBACK_DAYS,
        freshness_counts,
        item_cat_columns,
        item_day_counts,
        normalise,
        raw_freshness,
        stats_dict,
        user_cat_columns,
        user_num_columns,
    )
    from etl.vocab import ITEM_VOCAB, vocab_table

    cfg, win, ds = ctx.cfg, ctx.window, ctx.ds
    f = cfg.features
    vocabulary = io.read_output(spark, ctx, "vocabulary", ds)
    item_ids = vocab_table(vocabulary, ITEM_VOCAB, "item_id", "item_idx")
    users = io.read_output(spark, ctx, "user_features", ds)
    catalogue = io.read_output(spark, ctx, "item_catalogue", ds)
    stats = stats_dict(io.read_output(spark, ctx, "feature_stats", ds))
    resampled = io.read_output(spark, ctx, "resampled_positives", ds)
    hard = io.read_output(spark, ctx, "hard_negatives", ds)
    train_pos, _ = click_positives_of(spark, ctx, win.train_days, "training")
    eval_pos, eval_missing = io.read_output_days(spark, ctx, "click_positives", list(win.eval_days))
    if eval_pos is None or ds in eval_missing:
        raise DataError(
            data_error_message(
                "click_positives",
                f"ds={ds}",
                "the evaluation day's click positives are missing",
                fix="run the click_positives stage first",
            )
        )

    window_pos = train_pos.unionByName(eval_pos.select(*train_pos.columns))

    # Freshness as of each day of the window (start of day: the day's own clicks never count).
    _, _, created = item_context(spark, ctx, vocabulary)
    fresh_days = days_between(shift(win.days[0], -FRESHNESS_LOOKBACK_DAYS), shift(win.days[-1], -1))
    fresh_pos, _ = io.read_output_days(spark, ctx, "click_positives", fresh_days)
    day_items = window_pos.select("item_id", "event_ds").distinct()
    counts = (
        freshness_counts(item_day_counts(fresh_pos), list(win.days))
        if fresh_pos is not None
        else spark.createDataFrame([], "item_id string, as_of date, clicks_1d long, clicks_7d long")
    )
    freshness = normalise(raw_freshness(day_items, counts, created, "event_ds"), stats)
    freshness = freshness.join(F.broadcast(item_ids), "item_id").drop("item_id")
    # The same features for every catalogue item on every training day: what a sampled negative
    # of an example of day t looks like on day t (training reads it; see ITEM_DAY_FEATURES).
    train_dates = spark.createDataFrame([(dt.date.fromisoformat(d),) for d in win.train_days], "event_ds date")
    every_day = catalogue.select("item_id", "item_idx").crossJoin(F.broadcast(train_dates))
    item_days = normalise(raw_freshness(every_day, counts, created, "event_ds"), stats).drop("item_id")

    u_cols = user_cat_columns(f) + user_num_columns(f)
    i_static = item_cat_columns(f) + [
        c for c in catalogue.columns if c.startswith("i_num_") and c not in FRESHNESS_FEATURES
    ]
    # Histories look back only, so the evaluation days' clicks never reach a training day's row.
    history = example_history(window_pos, item_ids, f.history_length)
    hard_by_request = request_hard_negatives(hard, item_ids)

    def examples(positives: DataFrame) -> DataFrame:
        return build_train_examples(
            positives,
            history,
            users,
            catalogue,
            freshness,
            hard_by_request,
            u_cols,
            i_static,
            list(FRESHNESS_FEATURES),
            cfg.etl.seed,
        )

    def shuffled(df: DataFrame, rows: int) -> tuple[DataFrame, int]:
        files = max(1, math.ceil(rows / max(1, cfg.etl.shard_rows)))
        # Hash-partition on the seeded order key, then sort each shard by it: a deterministic shuffle.
        return df.repartition(files, "_order").sortWithinPartitions("_order").drop("_order"), files

    rows = io.output_rows(ctx, "resampled_positives", [ds])  # the whole partition: its footers' count
    train, files = shuffled(examples(resampled), rows)
    io.write_partitions(train, ctx, "train_examples", [ds])
    # The evaluation days' clicks as they are (no resampling: one copy, the positive weight).
    final_pos = eval_pos.select(*train_pos.columns).withColumn("replica", F.lit(0).cast("int"))
    final, _ = shuffled(examples(final_pos), io.output_rows(ctx, "click_positives", win.eval_days))
    io.write_partitions(final, ctx, "final_examples", [ds])
    io.write_partitions(with_ds(item_days.orderBy("event_ds", "item_idx"), ds), ctx, "item_day_features", [ds])

    evals = build_eval_examples(eval_pos, train_pos, item_ids, users, u_cols)
    io.write_partitions(evals.orderBy("user_idx"), ctx, "eval_examples", [ds])

    written = io.read_output(spark, ctx, "train_examples", ds)
    ev = io.read_output(spark, ctx, "eval_examples", ds)
    t = written.agg(
        F.count("*").alias("rows"),
        F.sum((F.size("hard_neg_idx") > 0).cast("long")).alias("with_hard_negatives"),
        F.sum((F.size("u_hist") > 0).cast("long")).alias("with_history"),
        F.min("event_ds").alias("first_day"),
        F.max("event_ds").alias("last_day"),
    ).first()
    fin = io.read_output(spark, ctx, "final_examples", ds).agg(
        F.count("*").alias("rows"), F.sum((F.size("u_hist") > 0).cast("long")).alias("with_history")
    ).first()
    e = ev.agg(
        F.count("*").alias("users"),
        F.sum(F.size("target_idx")).alias("targets"),
        F.sum(F.size("exclude_idx")).alias("excluded"),
    ).first()
    return DatasetsResult(
        train_rows=t["rows"],
        train_files=files,
        train_with_hard_negatives=t["with_hard_negatives"],
        train_with_history=t["with_history"],
        train_event_days=(str(t["first_day"]), str(t["last_day"])),
        final_rows=fin["rows"],
        final_with_history=fin["with_history"],
        eval_users=e["users"],
        eval_targets=e["targets"] or 0,
        eval_excluded=e["excluded"] or 0,
        train_days=win.train_days,
        eval_days=win.eval_days,
    )
