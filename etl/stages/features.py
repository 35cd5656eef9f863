"""The stages that describe users and items: the vocabulary (ids that never change), the
features (normalisation statistics, user features, the item catalogue) and the item sampling
table (negative-sampling and in-batch probabilities)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from core.results.etl import (
    CatalogueChange,
    FeaturesResult,
    FeatureStat,
    ItemSamplingResult,
    VocabSize,
    VocabularyResult,
)
from etl import io
from etl.stages.inputs import (
    catalogue_items,
    click_positives_of,
    days_between,
    item_context,
    shift,
    users_snapshot,
    with_ds,
)

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from core.context import RunContext


def stage_vocabulary(ctx: RunContext, spark: SparkSession) -> VocabularyResult:
    """Extend the latest earlier vocabulary with the values seen for day D."""
    from pyspark.sql import functions as F

    from etl.features import latest_per_key
    from etl.vocab import (
        ITEM_VOCAB,
        USER_VOCAB,
        extend_vocabulary,
        item_feature_vocab,
        observed_values,
        user_feature_vocab,
    )

    f, ds = ctx.cfg.features, ctx.ds
    earlier = [d for d in io.output_days(ctx, "vocabulary") if d < ds]
    previous = io.read_output(spark, ctx, "vocabulary", earlier[-1]) if earlier else None
    users = io.read_raw(spark, ctx, "users", ds)
    feature_users = users_snapshot(spark, ctx)[0]
    items = latest_per_key(catalogue_items(spark, ctx), "item_id")
    positives, _ = click_positives_of(spark, ctx, ctx.window.days, "window")
    user_map = [("user_id", USER_VOCAB)] + [(c, user_feature_vocab(c)) for c in f.user_categorical]
    item_map = [("item_id", ITEM_VOCAB)] + [(c, item_feature_vocab(c)) for c in f.item_categorical]
    observed = (
        observed_values(users, user_map)
        .unionByName(observed_values(feature_users, user_map))
        .unionByName(observed_values(items, item_map))
        .unionByName(observed_values(positives, [("user_id", USER_VOCAB), ("item_id", ITEM_VOCAB)]))
    )
    vocab = extend_vocabulary(previous, observed, ds)
    io.write_partitions(with_ds(vocab, ds), ctx, "vocabulary", [ds])
    written = io.read_output(spark, ctx, "vocabulary", ds)
    sizes = written.groupBy("vocab").agg(
        F.count("*").alias("size"),
        F.sum((F.col("first_ds") == F.lit(ds).cast("date")).cast("long")).alias("new"),
        F.max("id").alias("max_id"),
    )
    per_vocab = {r["vocab"]: VocabSize(size=r["size"], new=r["new"], max_id=r["max_id"]) for r in sizes.collect()}
    return VocabularyResult(
        previous_partition=earlier[-1] if earlier else None,
        rows=sum(v.size for v in per_vocab.values()),
        vocabs=per_vocab,
    )


def stage_features(ctx: RunContext, spark: SparkSession) -> FeaturesResult:
    """feature_stats, user_features (end of training days) and item_catalogue (as of the first
    evaluation day)."""
    from pyspark.sql import functions as F

    from etl.features import (
        FRESHNESS_LOOKBACK_DAYS,
        build_item_catalogue,
        build_user_features,
        fit_stats,
        freshness_counts,
        item_day_counts,
        item_num_columns,
        raw_freshness,
        raw_item_table,
        stats_dict,
        user_history,
        user_num_columns,
    )
    from etl.vocab import ITEM_VOCAB, vocab_table

    f, win, ds = ctx.cfg.features, ctx.window, ctx.ds
    vocabulary = io.read_output(spark, ctx, "vocabulary", ds)
    users, users_day = users_snapshot(spark, ctx)
    items_latest, active, created = item_context(spark, ctx, vocabulary)
    item_ids = vocab_table(vocabulary, ITEM_VOCAB, "item_id", "item_idx")

    fresh_days = days_between(shift(win.first_eval_day, -FRESHNESS_LOOKBACK_DAYS), shift(win.first_eval_day, -1))
    fresh_pos, _ = io.read_output_days(spark, ctx, "click_positives", fresh_days)
    train_pos, _ = click_positives_of(spark, ctx, win.train_days, "training")

    # Users: stats over the snapshot's rows.
    u_num = user_num_columns(f)
    u_raw = users.select(*[F.col(c[len("u_num_") :]).alias(c) for c in u_num])
    u_stats = stats_dict(fit_stats(u_raw, u_num)) if u_num else {}
    history = user_history(train_pos, item_ids, f.history_length)
    user_features = build_user_features(vocabulary, users, history, f, u_stats)
    # What serving needs after day D: D's users snapshot (the last training day's when D has
    # none) and every click of the window in the history, normalised with the same statistics.
    window_pos, _ = click_positives_of(spark, ctx, win.days, "window")
    serving_users = io.read_raw(spark, ctx, "users", ds, required=False) or users
    serving = build_user_features(
        vocabulary, serving_users, user_history(window_pos, item_ids, f.history_length), f, u_stats
    )

    # Items: raw table + freshness as of the first evaluation day; stats over active items.
    raw_items = raw_item_table(vocabulary, items_latest, active, f).withColumn(
        "_as_of", F.lit(win.first_eval_day).cast("date")
    )
    counts = (
        freshness_counts(item_day_counts(fresh_pos), [win.first_eval_day])
        if fresh_pos is not None
        else spark.createDataFrame([], "item_id string, as_of date, clicks_1d long, clicks_7d long")
    )
    raw_items = raw_freshness(raw_items, counts, created, "_as_of").drop("_as_of").cache()
    stats = {**u_stats, **stats_dict(fit_stats(raw_items.filter(F.col("active")), item_num_columns(f)))}
    stats_df = spark.createDataFrame(
        [(k, m, sd) for k, (m, sd) in stats.items()], "feature string, mean double, std double"
    )
    catalogue = build_item_catalogue(raw_items, f, stats)

    io.write_partitions(with_ds(stats_df, ds), ctx, "feature_stats", [ds])
    io.write_partitions(with_ds(user_features.orderBy("user_idx"), ds), ctx, "user_features", [ds])
    io.write_partitions(with_ds(serving.orderBy("user_idx"), ds), ctx, "serving_user_features", [ds])
    io.write_partitions(with_ds(catalogue.orderBy("item_idx"), ds), ctx, "item_catalogue", [ds])
    raw_items.unpersist()
    cat = io.read_output(spark, ctx, "item_catalogue", ds)
    uf = io.read_output(spark, ctx, "user_features", ds)
    u = uf.agg(F.count(F.lit(1)).alias("n"), F.sum((F.size("u_hist") > 0).cast("long")).alias("h")).first()
    i = cat.agg(F.count(F.lit(1)).alias("n"), F.sum(F.col("active").cast("long")).alias("a")).first()
    return FeaturesResult(
        users=u["n"],
        users_with_history=u["h"],
        users_snapshot_day=users_day,
        items=i["n"],
        active_items=i["a"],
        catalogue=_catalogue_change(spark, ctx, cat),
        freshness_as_of=win.first_eval_day,
        feature_stats={k: FeatureStat(mean=m, std=s) for k, (m, s) in stats.items()},
    )


def _catalogue_change(spark: SparkSession, ctx: RunContext, catalogue: DataFrame) -> CatalogueChange:
    """Size of day D's live catalogue and the items added / retired since the day before."""
    from pyspark.sql import functions as F

    prev_day = shift(ctx.ds, -1)
    live = catalogue.filter(F.col("active")).select("item_id")
    change = CatalogueChange(
        rule="complete snapshot" if io.is_complete_snapshot(ctx, "items", ctx.ds) else "carried forward",
        retire_after_days=ctx.cfg.etl.retire_after_days,
        size=live.count(),
    )
    previous = io.read_output(spark, ctx, "item_catalogue", prev_day, required=False)
    if previous is None:
        return change
    before = previous.filter(F.col("active")).select("item_id")
    return dataclasses.replace(
        change,
        compared_with=prev_day,
        added=live.join(before, "item_id", "left_anti").count(),
        retired=before.join(live, "item_id", "left_anti").count(),
    )


def stage_item_sampling(ctx: RunContext, spark: SparkSession) -> ItemSamplingResult:
    """clicks^alpha negative-sampling table with its Vose alias table, and in-batch p_j."""
    from pyspark.sql import functions as F

    from etl.positives import item_click_counts
    from etl.sampling import popularity_sampling_table, with_alias_table

    etl_cfg, ds = ctx.cfg.etl, ctx.ds
    catalogue = io.read_output(spark, ctx, "item_catalogue", ds)
    train_pos, _ = click_positives_of(spark, ctx, ctx.window.train_days, "training")
    resampled = io.read_output(spark, ctx, "resampled_positives", ds)
    table = popularity_sampling_table(
        catalogue,
        item_click_counts(train_pos, "clicks"),
        item_click_counts(resampled, "clicks_resampled"),
        etl_cfg.alpha,
        etl_cfg.smoothing,
    )
    table = with_alias_table(spark, table)
    io.write_partitions(with_ds(table.orderBy("item_idx"), ds), ctx, "item_sampling", [ds])
    written = io.read_output(spark, ctx, "item_sampling", ds)
    agg = written.agg(
        F.count("*").alias("items"),
        F.sum("neg_prob").alias("neg_prob_sum"),
        F.sum("inbatch_prob").alias("inbatch_prob_sum"),
        F.sum((F.col("neg_prob") > 0).cast("long")).alias("samplable"),
        F.max("neg_prob").alias("max_neg_prob"),
        F.max("inbatch_prob").alias("max_inbatch_prob"),
    ).first()
    return ItemSamplingResult(**agg.asDict(), alpha=etl_cfg.alpha, smoothing=etl_cfg.smoothing)
