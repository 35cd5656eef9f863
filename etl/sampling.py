"""Sampling tables for training: the popularity^alpha negative-sampling distribution (with its
alias table) and the in-batch probability p_j of each item in the resampled positive stream.

neg_prob_i = (clicks_i + smoothing)^alpha / sum_j (clicks_j + smoothing)^alpha over the
*active* catalogue (inactive items get 0: they cannot be retrieved). The additive smoothing
(default 1.0, ``etl.smoothing``) gives a never-clicked active item the mass of 1^alpha, so new
and cold items can still be drawn as negatives, and alpha = 0.75 flattens the head (word2vec).

inbatch_prob_j = clicks_resampled_j / sum: the chance that a random positive of the stream the
trainer reads is item j; the logQ correction subtracts log(p_j) from in-batch logits.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from etl.alias import vose_alias

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def popularity_sampling_table(
    catalogue: DataFrame, clicks: DataFrame, clicks_resampled: DataFrame, alpha: float, smoothing: float
) -> DataFrame:
    """Per-item counts and the two probabilities (no alias columns yet).

    Args:
        catalogue: DataFrame[item_idx, item_id, active].
        clicks: DataFrame[item_id, clicks] over the training days.
        clicks_resampled: DataFrame[item_id, clicks_resampled] in resampled_positives.
        alpha, smoothing: the distribution's exponent and additive smoothing (>= 0).

    Returns:
        DataFrame[item_idx, item_id, clicks, clicks_resampled, neg_prob, inbatch_prob].
    """
    from pyspark.sql import functions as F

    if alpha < 0 or smoothing < 0:
        raise ValueError(f"etl.alpha and etl.smoothing must be >= 0 (got {alpha}, {smoothing})")
    df = (
        catalogue.select("item_idx", "item_id", "active")
        .join(clicks, "item_id", "left")
        .join(clicks_resampled, "item_id", "left")
        .fillna({"clicks": 0, "clicks_resampled": 0})
    )
    mass = F.when(
        F.col("active"), F.pow(F.col("clicks").cast("double") + F.lit(float(smoothing)), F.lit(float(alpha)))
    ).otherwise(F.lit(0.0))
    df = df.withColumn("_mass", mass)
    # The mass depends on (active, clicks) only: its total from the distinct pairs, summed
    # exactly on the driver, is the same bits on every rerun (a Spark sum of doubles is not).
    per_value = df.groupBy("_mass").count().toPandas()
    mass_total = math.fsum(per_value["_mass"].to_numpy(dtype=float) * per_value["count"].to_numpy(dtype=float))
    totals = df.agg(F.sum("clicks_resampled").alias("_resampled_total")).withColumn(
        "_mass_total", F.lit(mass_total)
    )
    df = df.crossJoin(F.broadcast(totals))
    return df.select(
        "item_idx",
        "item_id",
        F.col("clicks").cast("long").alias("clicks"),
        F.col("clicks_resampled").cast("long").alias("clicks_resampled"),
        (F.col("_mass") / F.col("_mass_total")).alias("neg_prob"),
        F.when(
            F.col("_resampled_total") > 0,
            F.col("clicks_resampled").cast("double") / F.col("_resampled_total"),
        )
        .otherwise(F.lit(0.0))
        .alias("inbatch_prob"),
    )


def with_alias_table(spark: SparkSession, table: DataFrame) -> DataFrame:
    """Add ``alias_prob`` / ``alias_idx`` (Vose) to a :func:`popularity_sampling_table` result.

    Collects ``(item_idx, neg_prob)`` (catalogue-sized, 16 bytes per item) to the driver, builds
    the table with numpy, and joins it back by ``item_idx``. Slot i of the alias table is the
    i-th row in ``item_idx`` order; ``alias_idx`` holds an ``item_idx``.
    """
    import pandas as pd
    from pyspark.sql import functions as F

    pdf = table.select("item_idx", "neg_prob").orderBy("item_idx").toPandas()
    if pdf.empty:
        raise ValueError("item_sampling: the catalogue is empty")
    if not (pdf["neg_prob"] > 0).any():
        raise ValueError("item_sampling: no active item has positive probability (empty active catalogue?)")
    keep, alias = vose_alias(pdf["neg_prob"].to_numpy())
    idx = pdf["item_idx"].to_numpy(dtype=np.int64)
    alias_df = spark.createDataFrame(
        pd.DataFrame({"item_idx": idx, "alias_prob": keep, "alias_idx": idx[alias]})
    )
    return table.join(F.broadcast(alias_df), "item_idx").select(
        "item_idx",
        "item_id",
        "clicks",
        "clicks_resampled",
        "neg_prob",
        "alias_prob",
        "alias_idx",
        "inbatch_prob",
    )
