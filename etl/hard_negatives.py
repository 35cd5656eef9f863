"""Hard negatives from the ranking funnel (pure transforms) and the check that proves them safe.

An item is a hard negative of a request when it reached the request's retrieval stage and was
then cut: at ``pre_rank`` (difficulty 1, hard) or at ``rank`` (difficulty 2, harder: it
survived pre-ranking). By the ranking-log contract every item with a ``pre_rank``/``rank`` row
also has a ``retrieval`` row with passed=true, so "a pre_rank or rank row with passed=false" is
exactly "reached retrieval, then cut" (data quality checks the funnel).

Exclusions (a hard negative must never be something the user showed interest in or saw):
anything shown to the same *user* (not only in the same request) on any day of the window, and
anything the user clicked in the window (clicks are shown rows, so the shown set already holds
them; both are excluded explicitly). The anti-join runs on a 64-bit hash of (user_id, item_id):
a hash collision can only remove a valid negative, never keep a shown item.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from etl.positives import hash_uniform

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

CUT_STAGES = {"pre_rank": 1, "rank": 2}


def _pair_key() -> Column:
    from pyspark.sql import functions as F

    return F.xxhash64(F.col("user_id"), F.col("item_id"))


def hard_negatives_from_ranking_log(
    ranking_log: DataFrame,
    shown: DataFrame,
    clicked: DataFrame,
    clicked_requests: DataFrame | None,
    per_request: int,
    seed: int,
) -> DataFrame:
    """Hard negatives of the training days' requests, excluding shown and clicked items.

    Args:
        ranking_log: ranking-log rows of the training days (contract columns + ``event_ds``).
        shown: impressions of the whole window (needs ``user_id``, ``item_id``).
        clicked: click positives of the whole window (``user_id``, ``item_id``).
        clicked_requests: DataFrame[request_id] of requests with a training positive; hard
            negatives are only kept for them (training attaches them per request), or None.
        per_request: cap per request (difficulties interleaved, harder first, seeded order).
        seed: etl.seed.

    Returns:
        DataFrame[request_id, user_id, item_id, event_ds, stage_cut, difficulty] (contract
        ``hard_negatives`` minus ``ds``).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if per_request < 0:
        raise ValueError(f"etl.hard_negatives_per_request must be >= 0, got {per_request}")
    cuts = ranking_log.filter(F.col("stage").isin(*CUT_STAGES) & ~F.col("passed"))
    if clicked_requests is not None:
        cuts = cuts.join(clicked_requests.select("request_id").distinct(), "request_id", "left_semi")
    cuts = cuts.select(
        "request_id",
        "user_id",
        "item_id",
        "event_ds",
        F.col("stage").alias("stage_cut"),
        F.when(F.col("stage") == "pre_rank", F.lit(1)).otherwise(F.lit(2)).cast("int").alias("difficulty"),
        _pair_key().alias("_pair"),
    )
    excluded = shown.select(_pair_key().alias("_pair")).unionByName(
        clicked.select(_pair_key().alias("_pair"))
    )
    # Shuffled hash join: each partition of the excluded pairs becomes a hash table, so neither
    # side is sorted (a sort-merge anti-join sorted ~10M keys per medium day: ~30% of the stage).
    kept = cuts.join(excluded.hint("shuffle_hash"), "_pair", "left_anti")
    # One row per (request, item) (the earlier cut wins on contract-violating logs), then the cap.
    # Both windows partition by request_id, so Spark shuffles once for the two of them.
    by_item = Window.partitionBy("request_id").orderBy(F.col("item_id"), F.col("difficulty").asc())
    dedup = kept.withColumn("_prev", F.lag("item_id").over(by_item)).filter(
        F.col("_prev").isNull() | (F.col("_prev") != F.col("item_id"))
    )
    # The cap interleaves difficulties (rank-cut, pre_rank-cut, rank-cut, ...), each in a seeded
    # hash order: a request has ~2x more pre_rank cuts than rank cuts, and "harder first" alone
    # would keep almost no difficulty-1 negatives. Every window partitions by request_id, so the
    # three of them share one shuffle.
    within = Window.partitionBy("request_id", "difficulty").orderBy(
        hash_uniform(seed, "request_id", "item_id"), F.col("item_id")
    )
    rank = Window.partitionBy("request_id").orderBy(F.col("_k"), F.col("difficulty").desc())
    capped = (
        dedup.withColumn("_k", F.row_number().over(within))
        .withColumn("_rank", F.row_number().over(rank))
        .filter(F.col("_rank") <= per_request)
    )
    return capped.select("request_id", "user_id", "item_id", "event_ds", "stage_cut", "difficulty")


def shown_overlap(hard_negatives: DataFrame, impressions: DataFrame) -> DataFrame:
    """Hard negatives that were shown to the same user (must be empty).

    Exact string comparison on (user_id, item_id), independent of the hash used by the
    transform, so it is a real check of the output. The (small) set of hard-negative pairs is
    the build side, so the impressions are streamed once without a shuffle.

    Args:
        hard_negatives: rows with ``user_id``, ``item_id``.
        impressions: impressions of the window (clicked or not).

    Returns:
        The offending hard-negative rows.
    """
    keys = hard_negatives.select("user_id", "item_id").distinct()
    shown = (
        impressions.select("user_id", "item_id").join(keys, ["user_id", "item_id"], "left_semi").distinct()
    )
    return hard_negatives.join(shown, ["user_id", "item_id"], "left_semi")


def clicked_overlap(hard_negatives: DataFrame, positives: DataFrame) -> DataFrame:
    """Hard negatives the same user clicked in the window (must be empty)."""
    return hard_negatives.join(
        positives.select("user_id", "item_id").distinct(), ["user_id", "item_id"], "left_semi"
    )
