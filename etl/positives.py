"""Click positives and their hot/cold resampling (pure transforms + distribution statistics).

Resampling rule (config ``[etl]``), per item with ``f`` clicks on the training days:
  * hot  (``f > hot_threshold``, t): each click is kept with probability ``sqrt(t / f)``
    (word2vec-style subsampling; the item keeps about ``sqrt(t * f) >= t`` clicks);
  * cold (``f < cold_threshold``, c): each click is replicated ``min(max_upsample, ceil(c / f))``
    times (``replica`` = 0, 1, ...);
  * otherwise the click is kept once.
The keep decision uses a hash of ``(seed, request_id, item_id)`` mapped to [0, 1), so it is
deterministic under ``etl.seed`` and independent of partitioning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

    from core.config import EtlConfig

# 2**53: uniform doubles from the low bits of a 64-bit hash.
_TWO_53 = 9007199254740992


def hash_uniform(seed: int, *cols: str) -> Column:
    """A deterministic pseudo-uniform [0, 1) value per row from a hash of ``cols`` and ``seed``."""
    from pyspark.sql import functions as F

    h = F.xxhash64(F.lit(seed), *[F.col(c) for c in cols])
    return F.pmod(h, F.lit(_TWO_53)).cast("double") / F.lit(float(_TWO_53))


def build_click_positives(impressions: DataFrame, positive_weight: str = "constant") -> DataFrame:
    """Clicked impressions, one row per (request_id, item_id).

    Args:
        impressions: raw impressions (contract columns, plus ``event_ds``).
        positive_weight: ``constant`` (1.0) or ``engagement`` (1 + liked).

    Returns:
        DataFrame[request_id, user_id, item_id, ts, weight double, liked, event_ds]. Duplicate
        clicks of the same (request, item) collapse to one row: the earliest ts, liked if any
        duplicate was.
    """
    from pyspark.sql import functions as F

    clicks = impressions.filter(F.col("clicked"))
    # user_id is a grouping key rather than an aggregate (a request is one user's page): every
    # aggregate buffer is then fixed-width, so Spark uses a hash aggregate instead of sorting.
    out = clicks.groupBy("request_id", "item_id", "user_id").agg(
        F.min("ts").alias("ts"),
        F.max(F.col("liked")).alias("liked"),
        F.min("event_ds").alias("event_ds"),
    )
    if positive_weight == "constant":
        weight = F.lit(1.0)
    elif positive_weight == "engagement":
        weight = F.lit(1.0) + F.coalesce(F.col("liked"), F.lit(False)).cast("double")
    else:
        raise ValueError(f"etl.positive_weight: unknown value {positive_weight!r} (constant, engagement)")
    return out.select(
        "request_id",
        "user_id",
        "item_id",
        "ts",
        weight.cast("double").alias("weight"),
        F.col("liked").cast("boolean").alias("liked"),
        "event_ds",
    )


def item_click_counts(positives: DataFrame, column: str = "clicks") -> DataFrame:
    """DataFrame[item_id, <column> long]: positives per item."""
    from pyspark.sql import functions as F

    return positives.groupBy("item_id").agg(F.count(F.lit(1)).cast("long").alias(column))


def resample_positives(positives: DataFrame, cfg: EtlConfig) -> DataFrame:
    """Hot down-sampling and cold up-sampling of click positives (rule in the module docstring).

    Args:
        positives: click positives of the training days (``build_click_positives`` columns).
        cfg: ``hot_threshold``, ``cold_threshold``, ``max_upsample``, ``seed``.

    Returns:
        The input columns plus ``replica`` int (0 for the original row), same row type.
    """
    from pyspark.sql import functions as F

    if cfg.hot_threshold < 1 or cfg.cold_threshold < 0 or cfg.max_upsample < 1:
        raise ValueError(
            "etl: hot_threshold must be >= 1, cold_threshold >= 0 and max_upsample >= 1 "
            f"(got {cfg.hot_threshold}, {cfg.cold_threshold}, {cfg.max_upsample})"
        )
    counts = item_click_counts(positives, "_f")
    f = F.col("_f").cast("double")
    keep_prob = F.when(f > cfg.hot_threshold, F.sqrt(F.lit(float(cfg.hot_threshold)) / f)).otherwise(
        F.lit(1.0)
    )
    copies = F.when(
        f < cfg.cold_threshold,
        F.least(F.lit(cfg.max_upsample), F.ceil(F.lit(float(cfg.cold_threshold)) / f).cast("int")),
    ).otherwise(F.lit(1))
    # The per-item count table is catalogue-sized: broadcast it instead of shuffling positives.
    joined = positives.join(F.broadcast(counts), "item_id")
    kept = joined.filter(hash_uniform(cfg.seed, "request_id", "item_id") < keep_prob)
    out = kept.withColumn("replica", F.explode(F.sequence(F.lit(0), (copies - 1).cast("int"))))
    return out.select(*positives.columns, "replica")


def count_histogram(counts: DataFrame, column: str) -> DataFrame:
    """DataFrame[value, items]: how many items have each count (small: distinct counts only)."""
    from pyspark.sql import functions as F

    return counts.groupBy(F.col(column).alias("value")).agg(F.count(F.lit(1)).alias("items"))


def distribution_stats(values: np.ndarray, multiplicity: np.ndarray | None = None) -> dict[str, float]:
    """Concentration of a click distribution over items.

    Args:
        values: click counts (one per distinct count value if ``multiplicity`` is given).
        multiplicity: how many items have each value (default 1 each).

    Returns:
        ``items``, ``clicks``, ``top1pct_share`` (share of clicks of the top ceil(1%) items),
        ``gini`` (0 = uniform, -> 1 = concentrated), ``max``.
    """
    v = np.asarray(values, dtype=np.float64)
    m = np.ones_like(v, dtype=np.int64) if multiplicity is None else np.asarray(multiplicity, dtype=np.int64)
    keep = m > 0
    v, m = v[keep], m[keep]
    n = int(m.sum())
    total = float((v * m).sum())
    if n == 0 or total <= 0:
        return {"items": n, "clicks": total, "top1pct_share": 0.0, "gini": 0.0, "max": 0.0}
    order = np.argsort(v, kind="stable")
    v, m = v[order], m[order]
    # Gini = sum_i (2i - n - 1) x_(i) / (n * sum x), x ascending, i = 1..n. For a run of m equal
    # values at ranks a+1..a+m, sum_i (2i - n - 1) = m * (2a + m + 1 - n - 1) = m * (2a + m - n).
    starts = np.concatenate([[0], np.cumsum(m)[:-1]]).astype(np.float64)
    gini = float((v * m * (2 * starts + m - n)).sum() / (n * total))
    # Top 1% (at least one item) from the largest values down.
    k = max(1, int(np.ceil(0.01 * n)))
    top, left = 0.0, k
    for value, mult in zip(v[::-1], m[::-1], strict=True):
        take = min(left, int(mult))
        top += take * value
        left -= take
        if left == 0:
            break
    return {"items": n, "clicks": total, "top1pct_share": top / total, "gini": gini, "max": float(v[-1])}


def click_distribution(counts: DataFrame, column: str) -> dict[str, float]:
    """:func:`distribution_stats` of a per-item count column (collects only the histogram)."""
    rows = count_histogram(counts, column).collect()
    if not rows:
        return distribution_stats(np.zeros(0))
    return distribution_stats(np.array([r["value"] for r in rows]), np.array([r["items"] for r in rows]))
