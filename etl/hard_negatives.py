"""Hard negatives from the ranking funnel (pure transforms) and the check that proves them safe.

An item is a hard negative of a request when it reached the request's retrieval stage and was
then cut: at ``pre_rank`` (difficulty 1, hard) or at ``rank`` (difficulty 2, harder: it
survived pre-ranking). By the ranking-log contract every item with a ``pre_rank``/``rank`` row
also has a ``retrieval`` row with passed=true, so "a pre_rank or rank row with passed=false" is
exactly "reached retrieval, then cut" (data quality checks the funnel).

Exclusions (a hard negative must never be something the user showed interest in or saw):
anything shown to the same *user* (not only in the same request) on any day of the window, and
anything the user clicked in the window (clicks are shown rows, so the shown set already holds
them; both are excluded explicitly). The anti-join runs on a 64-bit hash of (user_id, item_id)
and the deduplication on one of (request_id, item_id): a hash collision can only remove a
valid negative, never keep a shown item.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from core.spark import shuffle_partitions
from etl.positives import hash_uniform

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

    from core.config import Config

CUT_STAGES = {"pre_rank": 1, "rank": 2}


def _pair_key() -> Column:
    from pyspark.sql import functions as F

    return F.xxhash64(F.col("user_id"), F.col("item_id"))


def _user_key() -> Column:
    """``_u``: the 64-bit hash of ``user_id`` the rows are partitioned by."""
    from pyspark.sql import functions as F

    return F.xxhash64(F.col("user_id")).alias("_u")


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

    The same result as the ETL's incremental path: :func:`cut_candidates` and
    :func:`excluded_pairs` per day, :func:`cap_hard_negatives` over the window's union.
    """
    return cap_hard_negatives(
        cut_candidates(ranking_log, clicked_requests), excluded_pairs(shown, clicked), per_request, seed
    )


def cut_candidates(ranking_log: DataFrame, clicked_requests: DataFrame | None) -> DataFrame:
    """The ranking log's cut rows (pre_rank or rank, passed = false) of the requests with a click.

    Depends on one day's ranking log and clicks only, so the ETL stores it per day
    (``hard_negative_candidates``) and a window reads it instead of the raw ranking log.

    Returns:
        DataFrame[request_id, user_id, item_id, event_ds, stage_cut, difficulty].
    """
    from pyspark.sql import functions as F

    cuts = ranking_log.filter(F.col("stage").isin(*CUT_STAGES) & ~F.col("passed"))
    if clicked_requests is not None:
        # Small (one row per clicked request): Spark broadcasts it when it fits.
        cuts = cuts.join(clicked_requests.select("request_id").distinct(), "request_id", "left_semi")
    return cuts.select(
        "request_id",
        "user_id",
        "item_id",
        "event_ds",
        F.col("stage").alias("stage_cut"),
        F.when(F.col("stage") == "pre_rank", F.lit(1)).otherwise(F.lit(2)).cast("int").alias("difficulty"),
    )


def excluded_pairs(shown: DataFrame, clicked: DataFrame, keep: Sequence[str] = ()) -> DataFrame:
    """DataFrame[user_key, pair_key, *keep]: 64-bit hashes of ``user_id`` and of (user_id,
    item_id) of everything shown or clicked (distinct). Per day (``keep=("event_ds",)``) it is
    what the ETL stores as ``shown_pairs``; the window's exclusion is the union of its days."""
    from pyspark.sql import functions as F

    cols = [F.xxhash64(F.col("user_id")).alias("user_key"), _pair_key().alias("pair_key"), *keep]
    return shown.select(*cols).unionByName(clicked.select(*cols)).distinct()


def cap_hard_negatives(candidates: DataFrame, excluded: DataFrame, per_request: int, seed: int) -> DataFrame:
    """Deduplicate the candidates, drop every excluded (user, item) pair, cap per request.

    Args:
        candidates: :func:`cut_candidates` rows (one or several days).
        excluded: :func:`excluded_pairs` rows of the whole window (duplicates allowed).

    Returns:
        DataFrame[request_id, user_id, item_id, event_ds, stage_cut, difficulty].

    Plan: the cuts and the excluded pairs are each shuffled once, by a hash of ``user_id`` (a
    request is one user's page and the exclusions are per user); the deduplication, the
    anti-join and the cap then run inside those partitions, sorting on 64-bit keys. Spark
    keeps the anti-join inside the partitions when ``spark.sql.requireAllClusterKeysForCoPartition``
    is false (``core.spark.BASE_CONF``); otherwise the result is the same, with two more
    shuffles.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if per_request < 0:
        raise ValueError(f"etl.hard_negatives_per_request must be >= 0, got {per_request}")
    n = shuffle_partitions(candidates.sparkSession)
    cuts = candidates.select(
        _user_key(),
        "request_id",
        "user_id",
        "item_id",
        "event_ds",
        "stage_cut",
        "difficulty",
        _pair_key().alias("_pair"),
        F.xxhash64("request_id").alias("_r"),
        F.xxhash64("request_id", "item_id").alias("_ri"),
    ).repartition(n, "_u")
    # One row per (request, item); the earlier cut wins on contract-violating logs. Before the
    # exclusion, which removes all or none of a (request, item)'s rows (same user, same item).
    by_item = Window.partitionBy("_u", "_r").orderBy(F.col("_ri"), F.col("difficulty"))
    dedup = cuts.withColumn("_prev", F.lag("_ri").over(by_item)).filter(
        F.col("_prev").isNull() | (F.col("_prev") != F.col("_ri"))
    )
    excluded = excluded.select(F.col("user_key").alias("_u"), F.col("pair_key").alias("_pair")).repartition(n, "_u")
    # No join hint: when every partition of the excluded pairs is small enough to become an
    # in-memory hash table, AQE picks a shuffled hash join (neither side sorted on the pair;
    # spark.sql.adaptive.maxShuffledHashJoinLocalMapThreshold in core.spark.BASE_CONF),
    # otherwise a sort-merge join, which spills. Forcing the hash join runs out of memory once a
    # partition holds more pairs than fit in one hash table.
    kept = dedup.join(excluded, ["_u", "_pair"], "left_anti")
    # The cap interleaves difficulties (rank-cut, pre_rank-cut, rank-cut, ...), each in a seeded
    # hash order: a request has more pre_rank cuts than rank cuts, and "harder first" alone
    # would keep almost no difficulty-1 negatives. With k the row's place in its difficulty's
    # order and n_d the request's count of difficulty d, its place in the interleaved order
    # (k asc, difficulty desc) is k + min(k - 1, n1) for difficulty 2 and k + min(k, n2) for
    # difficulty 1, so one sort serves both windows.
    order = (hash_uniform(seed, "request_id", "item_id"), F.col("item_id"))
    within = Window.partitionBy("_u", "_r", "difficulty").orderBy(*order)
    # The request's counts over the same order (the whole request as the frame): both windows
    # then need one sort of the rows, (_u, _r, difficulty, order), instead of one each.
    request = (
        Window.partitionBy("_u", "_r")
        .orderBy(F.col("difficulty"), *order)
        .rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
    )
    k = F.row_number().over(within)
    n1 = F.sum((F.col("difficulty") == 1).cast("int")).over(request)
    n2 = F.sum((F.col("difficulty") == 2).cast("int")).over(request)
    place = F.when(F.col("difficulty") == 2, k + F.least(k - 1, n1)).otherwise(k + F.least(k, n2))
    capped = kept.withColumn("_place", place).filter(F.col("_place") <= per_request)
    return capped.select("request_id", "user_id", "item_id", "event_ds", "stage_cut", "difficulty")


def stage_proves_hard_negatives(cfg: Config) -> bool:
    """Whether the stage itself proves no hard negative was shown to its user: when asked
    (``etl.verify_hard_negatives``), or when no outputs gate runs to prove it (``quality.enabled``
    false)."""
    return cfg.etl.verify_hard_negatives or not cfg.quality.enabled


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
