"""User and item features: vocabulary encoding, numeric normalisation, freshness, history.

Numeric features are standardised, ``z = (x - mean) / std`` (std 0 -> 1), with statistics fitted
on the rows of the day's table (users of the snapshot, active catalogue items) and stored in
``feature_stats``; a missing value becomes 0 (= the mean). Counts and ages are heavy-tailed, so
the freshness features are ``log1p``-transformed before standardising:

* ``i_num_age_days``: log1p(days from the item's creation to the as-of day) (``created_at``
  of the snapshot, else the first day its id entered the vocabulary);
* ``i_num_clicks_1d`` / ``i_num_clicks_7d``: log1p(clicks on the day before / the 7 days
  before the as-of day).

"As of day t" means at the start of t: nothing of day t itself is used, so a training example
of day t never sees its own click, and the catalogue's features (as of the first evaluation
day) never see the held-out clicks.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from contracts.outputs import (
    FRESHNESS_FEATURES,
    ITEM_CAT_PREFIX,
    ITEM_NUM_PREFIX,
    USER_CAT_PREFIX,
    USER_NUM_PREFIX,
)
from etl.vocab import ITEM_VOCAB, USER_VOCAB, encode, item_feature_vocab, user_feature_vocab, vocab_table

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from core.config import FeaturesConfig

AGE, CLICKS_1D, CLICKS_7D = FRESHNESS_FEATURES
FRESHNESS_LOOKBACK_DAYS = 7


def user_cat_columns(features: FeaturesConfig) -> list[str]:
    return [USER_CAT_PREFIX + n for n in features.user_categorical]


def user_num_columns(features: FeaturesConfig) -> list[str]:
    return [USER_NUM_PREFIX + n for n in features.user_numeric]


def item_cat_columns(features: FeaturesConfig) -> list[str]:
    return [ITEM_CAT_PREFIX + n for n in features.item_categorical]


def item_num_columns(features: FeaturesConfig) -> list[str]:
    """Static numeric item features first, then the freshness features."""
    return [ITEM_NUM_PREFIX + n for n in features.item_numeric] + list(FRESHNESS_FEATURES)


def latest_per_key(snapshots: DataFrame, key: str) -> DataFrame:
    """The most recent row (largest ``event_ds``) per ``key`` of a union of daily snapshots."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    w = Window.partitionBy(key).orderBy(F.col("event_ds").desc())
    return snapshots.withColumn("_r", F.row_number().over(w)).filter(F.col("_r") == 1).drop("_r")


def live_items(snapshots: DataFrame, clicked: DataFrame | None, first_live_day: str) -> DataFrame:
    """DataFrame[item_id]: items in a snapshot or clicked (``event_ds``) on ``first_live_day``
    or later: the carried-forward catalogue when snapshots are partial."""
    from pyspark.sql import functions as F

    seen = snapshots.select("item_id", "event_ds")
    if clicked is not None:
        seen = seen.unionByName(clicked.select("item_id", "event_ds"))
    return seen.filter(F.col("event_ds") >= F.lit(first_live_day).cast("date")).select("item_id").distinct()


# -- numeric statistics -----------------------------------------------------------------


def fit_stats(df: DataFrame, columns: Sequence[str]) -> DataFrame:
    """DataFrame[feature, mean, std] of raw numeric ``columns`` (population std; nulls ignored).

    Bit-identical on every rerun: Spark's ``avg``/``stddev`` add doubles in whatever order the
    partitions arrive, so the last bits vary. Here one Spark job counts each distinct
    (feature, value); the driver sums ``value * count`` with ``math.fsum`` (exactly rounded,
    so independent of order). The collected table is as large as the number of distinct values.
    """
    from pyspark.sql import functions as F

    if not columns:
        raise ValueError("fit_stats needs at least one column")
    pairs = F.array(*[F.struct(F.lit(c).alias("feature"), F.col(c).cast("double").alias("value")) for c in columns])
    counts = (
        df.select(F.explode(pairs).alias("p"))
        .select("p.feature", "p.value")
        .filter(F.col("value").isNotNull())
        .groupBy("feature", "value")
        .count()
        .toPandas()
    )
    rows = []
    for c in columns:
        sub = counts[counts["feature"] == c]
        rows.append((c, *exact_mean_std(sub["value"].to_numpy(dtype=float), sub["count"].to_numpy(dtype=float))))
    return df.sparkSession.createDataFrame(rows, "feature string, mean double, std double")


def exact_mean_std(values: np.ndarray, counts: np.ndarray) -> tuple[float, float]:
    """(mean, population std) of ``values`` repeated ``counts`` times, each sum exactly rounded
    (``math.fsum``), so the result does not depend on the order of the values. No value: (0, 1);
    a constant feature gets std 1 so z stays finite."""
    n = math.fsum(counts)
    if n <= 0:
        return 0.0, 1.0
    mean = math.fsum(values * counts) / n
    var = math.fsum(counts * (values - mean) ** 2) / n
    return mean, (math.sqrt(var) if var > 0 else 1.0)


def stats_dict(stats: DataFrame) -> dict[str, tuple[float, float]]:
    """Collect the (tiny) statistics table: feature -> (mean, std)."""
    return {r["feature"]: (float(r["mean"]), float(r["std"])) for r in stats.collect()}


def normalise(df: DataFrame, stats: dict[str, tuple[float, float]]) -> DataFrame:
    """Standardise the raw columns named in ``stats`` in place (float32; null -> 0)."""
    from pyspark.sql import functions as F

    for c, (mean, std) in stats.items():
        if c in df.columns:
            z = (F.col(c).cast("double") - F.lit(mean)) / F.lit(std)
            df = df.withColumn(c, F.coalesce(z, F.lit(0.0)).cast("float"))
    return df


# -- freshness --------------------------------------------------------------------------


def item_day_counts(positives: DataFrame) -> DataFrame:
    """DataFrame[item_id, event_ds, n long]: clicks per item and day."""
    from pyspark.sql import functions as F

    return positives.groupBy("item_id", "event_ds").agg(F.count(F.lit(1)).cast("long").alias("n"))


def freshness_counts(day_counts: DataFrame, as_of_days: Sequence[str]) -> DataFrame:
    """Clicks in the 1 and 7 days before each as-of day.

    Args:
        day_counts: DataFrame[item_id, event_ds, n] (:func:`item_day_counts`).
        as_of_days: the days to compute (``YYYY-MM-DD``).

    Returns:
        DataFrame[item_id, as_of date, clicks_1d long, clicks_7d long], only rows with a click
        (a missing (item, day) means 0, 0).
    """
    from pyspark.sql import functions as F

    # Each count contributes to the 7 as-of days after it: t = day + k, k = 1..7.
    spread = day_counts.select(
        "item_id", "n", "event_ds", F.explode(F.sequence(F.lit(1), F.lit(FRESHNESS_LOOKBACK_DAYS))).alias("k")
    ).withColumn("as_of", F.date_add(F.col("event_ds"), F.col("k")))
    spread = spread.filter(F.col("as_of").isin([dt.date.fromisoformat(d) for d in as_of_days]))
    return spread.groupBy("item_id", "as_of").agg(
        F.sum(F.when(F.col("k") == 1, F.col("n")).otherwise(F.lit(0))).cast("long").alias("clicks_1d"),
        F.sum("n").cast("long").alias("clicks_7d"),
    )


def item_created(items_latest: DataFrame, vocabulary: DataFrame) -> DataFrame:
    """DataFrame[item_id, created date]: ``created_at`` of the snapshot, else the first day the
    item id entered the vocabulary."""
    from pyspark.sql import functions as F

    first = vocabulary.filter(F.col("vocab") == ITEM_VOCAB).select(
        F.col("value").alias("item_id"), "first_ds"
    )
    snap = items_latest.select("item_id", F.to_date(F.col("created_at")).alias("_created"))
    return first.join(snap, "item_id", "left").select(
        "item_id", F.coalesce(F.col("_created"), F.col("first_ds")).alias("created")
    )


def raw_freshness(df: DataFrame, counts: DataFrame, created: DataFrame, as_of_col: str) -> DataFrame:
    """Add raw (log1p, not yet standardised) freshness columns to ``df`` (needs ``item_id`` and
    the date column ``as_of_col``); ``counts`` from :func:`freshness_counts`."""
    from pyspark.sql import functions as F

    c = counts.withColumnRenamed("as_of", as_of_col)
    out = df.join(c, ["item_id", as_of_col], "left").join(created, "item_id", "left")
    age = F.greatest(F.datediff(F.col(as_of_col), F.col("created")), F.lit(0))
    return out.select(
        *df.columns,
        F.log1p(age.cast("double")).alias(AGE),
        F.log1p(F.coalesce(F.col("clicks_1d"), F.lit(0)).cast("double")).alias(CLICKS_1D),
        F.log1p(F.coalesce(F.col("clicks_7d"), F.lit(0)).cast("double")).alias(CLICKS_7D),
    )


# -- tables ------------------------------------------------------------------------------


def encode_categoricals(
    df: DataFrame, vocabulary: DataFrame, columns: Sequence[str], prefix: str, vocab_of
) -> DataFrame:
    """Replace each categorical string column ``c`` by ``<prefix><c>`` = its vocabulary id."""
    for c in columns:
        out = prefix + c
        df = encode(df, vocab_table(vocabulary, vocab_of(c), c, out), c, out, keep_value=False)
    return df


def user_history(positives: DataFrame, item_ids: DataFrame, length: int) -> DataFrame:
    """DataFrame[user_id, u_hist array<long>]: the user's last ``length`` clicked item ids,
    newest first (ties by request_id, item_id: deterministic).

    Args:
        positives: click positives (user_id, item_id, ts, request_id).
        item_ids: DataFrame[item_id, item_idx].
    """
    from pyspark.sql import functions as F

    enc = positives.join(F.broadcast(item_ids), "item_id")
    hist = enc.groupBy("user_id").agg(
        F.sort_array(F.collect_list(F.struct("ts", "request_id", "item_idx")), asc=False).alias("_h")
    )
    return hist.select(
        "user_id", F.slice(F.col("_h.item_idx"), 1, max(length, 1)).alias("u_hist")
    ).withColumn("u_hist", F.col("u_hist") if length > 0 else F.array().cast("array<bigint>"))


def build_user_features(
    vocabulary: DataFrame,
    users: DataFrame,
    history: DataFrame,
    features: FeaturesConfig,
    stats: dict[str, tuple[float, float]],
) -> DataFrame:
    """One row per user of the vocabulary with encoded and standardised features.

    Args:
        users: one users snapshot (raw columns; the last training day's).
        history: :func:`user_history` of the training days.
        stats: from :func:`fit_stats` over ``u_num_*`` raw values of ``users``.

    Returns:
        DataFrame[user_idx, user_id, u_hist, u_cat_*, u_num_*] (contract ``user_features``).
    """
    from pyspark.sql import functions as F

    ids = vocab_table(vocabulary, USER_VOCAB, "user_id", "user_idx")
    snap = users.select(
        "user_id",
        *features.user_categorical,
        *[F.col(n).alias(USER_NUM_PREFIX + n) for n in features.user_numeric],
    )
    df = ids.join(snap, "user_id", "left")
    df = encode_categoricals(df, vocabulary, features.user_categorical, USER_CAT_PREFIX, user_feature_vocab)
    df = normalise(df, stats)
    df = df.join(history, "user_id", "left").withColumn(
        "u_hist", F.coalesce(F.col("u_hist"), F.array().cast("array<bigint>"))
    )
    return df.select(
        "user_idx", "user_id", "u_hist", *user_cat_columns(features), *user_num_columns(features)
    )


def raw_item_table(
    vocabulary: DataFrame, items_latest: DataFrame, active_ids: DataFrame, features: FeaturesConfig
) -> DataFrame:
    """Every item of the vocabulary with raw static features and ``active``.

    Returns:
        DataFrame[item_idx, item_id, active, i_cat_* (encoded), i_num_<static> (raw)].
    """
    from pyspark.sql import functions as F

    ids = vocab_table(vocabulary, ITEM_VOCAB, "item_id", "item_idx")
    snap = items_latest.select(
        "item_id",
        *features.item_categorical,
        *[F.col(n).alias(ITEM_NUM_PREFIX + n) for n in features.item_numeric],
    )
    act = active_ids.select("item_id").distinct().withColumn("active", F.lit(True))
    df = ids.join(snap, "item_id", "left").join(F.broadcast(act), "item_id", "left")
    df = df.withColumn("active", F.coalesce(F.col("active"), F.lit(False)))
    return encode_categoricals(df, vocabulary, features.item_categorical, ITEM_CAT_PREFIX, item_feature_vocab)


def build_item_catalogue(
    raw_items: DataFrame, features: FeaturesConfig, stats: dict[str, tuple[float, float]]
) -> DataFrame:
    """Standardise the raw item table (with freshness columns) into the contract's column order."""
    df = normalise(raw_items, stats)
    return df.select(
        "item_idx", "item_id", "active", *item_cat_columns(features), *item_num_columns(features)
    )
