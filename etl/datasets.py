"""Training and evaluation sets (pure transforms).

Evaluation protocol (strict split by time): the window's last ``etl.eval_days`` days are held
out. ``eval_examples`` holds, per user with clicks on those days, the clicked items (targets);
the items the user clicked on the training days (``exclude_idx``: not ranked, and removed from
the targets, since re-clicks measure memory, not retrieval); and the user's features and
history as of the end of the training days. Nothing of the evaluation days reaches
``train_examples``, ``user_features`` or the catalogue's freshness features.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.spark import shuffle_partitions

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def example_history(positives: DataFrame, item_ids: DataFrame, length: int) -> DataFrame:
    """Per click, the user's previous ``length`` clicked items (newest first), never the click
    itself or a later one.

    Args:
        positives: click positives of the training days.
        item_ids: DataFrame[item_id, item_idx].

    Returns:
        DataFrame[user_id, request_id, item_id, u_hist array<long>] (partitioned by ``user_id``).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    enc = positives.select("user_id", "request_id", "item_id", "ts").join(F.broadcast(item_ids), "item_id")
    if length <= 0:
        return enc.select("user_id", "request_id", "item_id", F.array().cast("array<bigint>").alias("u_hist"))
    w = Window.partitionBy("user_id").orderBy("ts", "request_id", "item_id").rowsBetween(-length, -1)
    return enc.select(
        "user_id", "request_id", "item_id", F.reverse(F.collect_list("item_idx").over(w)).alias("u_hist")
    )


def request_hard_negatives(hard_negatives: DataFrame, item_ids: DataFrame) -> DataFrame:
    """DataFrame[user_id, request_id, hard_neg_idx array<long>] (sorted; items outside the
    vocabulary dropped; partitioned by ``user_id``)."""
    from pyspark.sql import functions as F

    by_user = hard_negatives.repartition(shuffle_partitions(hard_negatives.sparkSession), "user_id")
    enc = by_user.join(F.broadcast(item_ids), "item_id")
    return enc.groupBy("user_id", "request_id").agg(
        F.array_sort(F.collect_list("item_idx")).alias("hard_neg_idx")
    )


def build_train_examples(
    resampled: DataFrame,
    history: DataFrame,
    users: DataFrame,
    items: DataFrame,
    item_freshness: DataFrame,
    hard_negs: DataFrame,
    user_columns: list[str],
    item_static_columns: list[str],
    item_fresh_columns: list[str],
    seed: int,
) -> DataFrame:
    """Encoded training examples, rows in a seeded pseudo-random order key ``_order``.

    Args:
        resampled: resampled positives of the training days.
        history: :func:`example_history`.
        users: user_features (user_id, user_idx and ``user_columns``).
        items: item_catalogue (item_id, item_idx and ``item_static_columns``).
        item_freshness: DataFrame[item_idx, event_ds, <item_fresh_columns>] (as of each day).
        hard_negs: :func:`request_hard_negatives`.

    Returns:
        DataFrame[user_idx, item_idx, weight float, event_ds, label_liked float, hard_neg_idx,
        u_hist, user_columns..., item columns..., _order long].

    The positives are partitioned by ``user_id`` once; the history and the hard negatives
    arrive partitioned the same way and every join key starts with ``user_id`` (a request is
    one user's page), so Spark joins them without shuffling again (with
    ``spark.sql.requireAllClusterKeysForCoPartition`` false, ``core.spark.BASE_CONF``).
    """
    from pyspark.sql import functions as F

    empty = F.array().cast("array<bigint>")
    df = resampled.repartition(shuffle_partitions(resampled.sparkSession), "user_id")
    df = df.join(F.broadcast(items.select("item_id", "item_idx", *item_static_columns)), "item_id")
    df = df.join(F.broadcast(item_freshness), ["item_idx", "event_ds"], "left")
    df = df.join(users.select("user_id", "user_idx", *user_columns), "user_id")
    df = df.join(history, ["user_id", "request_id", "item_id"], "left")
    df = df.join(hard_negs, ["user_id", "request_id"], "left")
    return df.select(
        "user_idx",
        "item_idx",
        F.col("weight").cast("float").alias("weight"),
        "event_ds",
        F.coalesce(F.col("liked").cast("float"), F.lit(0.0).cast("float")).alias("label_liked"),
        F.coalesce(F.col("hard_neg_idx"), empty).alias("hard_neg_idx"),
        F.coalesce(F.col("u_hist"), empty).alias("u_hist"),
        *user_columns,
        *item_static_columns,
        *[F.coalesce(F.col(c), F.lit(0.0)).cast("float").alias(c) for c in item_fresh_columns],
        F.xxhash64(F.lit(seed), "request_id", "item_id", "replica").alias("_order"),
    )


def build_eval_examples(
    eval_positives: DataFrame,
    train_positives: DataFrame,
    item_ids: DataFrame,
    users: DataFrame,
    user_columns: list[str],
) -> DataFrame:
    """Held-out evaluation rows, one per user with a new click on the evaluation days.

    Args:
        eval_positives: click positives of the evaluation days.
        train_positives: click positives of the training days.
        item_ids: DataFrame[item_id, item_idx].
        users: user_features (user_id, user_idx, u_hist and ``user_columns``).

    Returns:
        DataFrame[user_idx, user_id, target_idx, exclude_idx, u_hist, user_columns...]; arrays
        sorted; ``target_idx`` never intersects ``exclude_idx`` and is never empty.
    """
    from pyspark.sql import functions as F

    empty = F.array().cast("array<bigint>")
    targets = (
        eval_positives.join(F.broadcast(item_ids), "item_id")
        .groupBy("user_id")
        .agg(F.array_sort(F.collect_set("item_idx")).alias("_t"))
    )
    seen = (
        train_positives.join(F.broadcast(item_ids), "item_id")
        .groupBy("user_id")
        .agg(F.array_sort(F.collect_set("item_idx")).alias("exclude_idx"))
    )
    df = targets.join(seen, "user_id", "left").withColumn(
        "exclude_idx", F.coalesce(F.col("exclude_idx"), empty)
    )
    df = df.withColumn("target_idx", F.array_sort(F.array_except("_t", "exclude_idx"))).filter(
        F.size("target_idx") > 0
    )
    df = df.join(users.select("user_id", "user_idx", "u_hist", *user_columns), "user_id")
    return df.select("user_idx", "user_id", "target_idx", "exclude_idx", "u_hist", *user_columns)
