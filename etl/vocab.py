"""Persisted vocabularies: stable integer ids for users, items and categorical feature values.

The partition ``vocabulary/ds=D`` is the complete vocabulary as of run day D: every row of the
latest earlier partition, unchanged, plus the values first observed on D, numbered from the
previous maximum + 1 in sorted value order (deterministic). Id 0 is reserved for
out-of-vocabulary / padding and never stored. Because day D is built from the latest partition
*before* D, rerunning D gives the same ids, and D+1 extends D.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from contracts.schemas import OOV_ID

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

USER_VOCAB = "user_id"
ITEM_VOCAB = "item_id"


def user_feature_vocab(name: str) -> str:
    return f"user.{name}"


def item_feature_vocab(name: str) -> str:
    return f"item.{name}"


def observed_values(df: DataFrame, mapping: Iterable[tuple[str, str]]) -> DataFrame:
    """DataFrame[vocab, value]: non-null values of ``df`` columns, duplicates kept.

    Not deduplicated here: :func:`extend_vocabulary` deduplicates the union of every source in
    one aggregate. Deduplicating each source first leaves identically partitioned children,
    which Spark unions without a shuffle and AQE then reads in one task (the whole vocabulary
    on one core).

    Args:
        mapping: (column of df, vocab name) pairs.
    """
    from pyspark.sql import functions as F

    pairs = list(mapping)
    if not pairs:
        raise ValueError("observed_values needs at least one (column, vocab) pair")
    # One pass over df: a (vocab, value) array per row, exploded (no union of several scans).
    entries = F.array(
        *[F.struct(F.lit(v).alias("vocab"), F.col(c).cast("string").alias("value")) for c, v in pairs]
    )
    out = df.select(F.explode(entries).alias("e")).select("e.vocab", "e.value")
    return out.filter(F.col("value").isNotNull())


def extend_vocabulary(previous: DataFrame | None, observed: DataFrame, ds: str) -> DataFrame:
    """Append the values of ``observed`` not yet in ``previous``.

    Args:
        previous: DataFrame[vocab, value, id long, first_ds date] (the latest earlier
            partition) or None on the first day.
        observed: DataFrame[vocab, value] seen on day ``ds`` (duplicates allowed).
        ds: run day (first_ds of the new values).

    Returns:
        DataFrame[vocab, value, id long, first_ds date]: previous rows unchanged plus new
        values with ids max(previous id of that vocab, 0) + 1, + 2, ... in value order.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    observed = observed.select("vocab", "value").filter(F.col("value").isNotNull()).distinct()
    if previous is None:
        new = observed.withColumn("_base", F.lit(OOV_ID).cast("long"))
    else:
        previous = previous.select("vocab", "value", F.col("id").cast("long"), F.col("first_ds").cast("date"))
        new = observed.join(previous.select("vocab", "value"), ["vocab", "value"], "left_anti")
        base = previous.groupBy("vocab").agg(F.max("id").alias("_base"))
        new = new.join(F.broadcast(base), "vocab", "left").fillna({"_base": OOV_ID})
    numbered = new.select(
        "vocab",
        "value",
        (F.col("_base") + F.row_number().over(Window.partitionBy("vocab").orderBy("value")))
        .cast("long")
        .alias("id"),
        F.lit(ds).cast("date").alias("first_ds"),
    )
    return numbered if previous is None else previous.unionByName(numbered)


def vocab_table(vocabulary: DataFrame, vocab: str, value_col: str, id_col: str) -> DataFrame:
    """DataFrame[<value_col> string, <id_col> long] for one vocab (a join table)."""
    from pyspark.sql import functions as F

    return vocabulary.filter(F.col("vocab") == vocab).select(
        F.col("value").alias(value_col), F.col("id").cast("long").alias(id_col)
    )


def encode(
    df: DataFrame, table: DataFrame, value_col: str, id_col: str, *, keep_value: bool = True
) -> DataFrame:
    """Add ``id_col`` = vocabulary id of ``value_col`` (0 when unknown or null).

    ``table`` comes from :func:`vocab_table` with the same column names. Spark broadcasts it
    when small (feature vocabularies, item ids) under AQE.
    """
    from pyspark.sql import functions as F

    src = df.withColumn("_v", F.col(value_col).cast("string"))
    t = table.withColumnRenamed(value_col, "_v")
    out = src.join(t, "_v", "left").withColumn(id_col, F.coalesce(F.col(id_col), F.lit(OOV_ID).cast("long")))
    out = out.drop("_v")
    return out if keep_value else out.drop(value_col)
