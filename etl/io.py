"""The only module of the ETL that reads or writes storage.

Every function takes the step's :class:`core.context.RunContext`: paths come from its
``layout``, the contract's feature columns and the row rules from its ``cfg``. Reads apply the
contract schema; raw reads drop the rows data quality quarantines
(``quality.rules.bad_row_condition``), so quality and ETL apply the same row rules. Writes
replace whole day partitions atomically (see :func:`write_partitions`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from contracts.days import ds_str
from contracts.outputs import ETL_OUTPUTS
from contracts.schemas import raw_tables
from core.errors import DataError, data_error_message
from storage.layout import COMPLETE_SNAPSHOT_MARKER, SOURCE_MARKER

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

    from core.config import Config
    from core.context import RunContext

# Column every multi-day read adds: the partition's day (DateType).
EVENT_DS = "event_ds"
PARTITION_COLUMN = "ds"

# Per-day ETL outputs (docs/etl.md, "Per-day outputs and reruns"): partition ds=t is derived
# from these raw partitions of day t only, and stores their fingerprint (SOURCE_MARKER).
PER_DAY_SOURCES: dict[str, tuple[str, ...]] = {
    "click_positives": ("impressions",),
    "hard_negative_candidates": ("impressions", "ranking_log"),
    "shown_pairs": ("impressions",),
}
# Partition listings and marker reads run this many at a time (an object store answers each
# in one round trip; a 240-day window must not wait for 240 of them in a row).
_LISTING_THREADS = 8


def _bad_row_condition(table: str, cfg: Config, ds: str | None) -> Column | None:
    """The quality module's row rules for one raw partition (None: no rules)."""
    # Imported here: quality.rules builds pyspark Columns and this module must import cheaply.
    from quality.rules import bad_row_condition

    return bad_row_condition(table, cfg, ds)


def _guard(ctx: RunContext, table: str, days: Sequence[str]):
    """Open every data file's Parquet footer of the partitions before Spark reads them: a
    zero-byte, truncated or non-Parquet file raises ``quality.io.UnreadableFile`` (a DataError
    naming table, partition and file) instead of a Spark stack trace mid-stage.

    Returns the Spark schema the files recorded alike (``quality.io.recorded_schema``), or None."""
    # Imported here, like the row rules: the one guarded reader lives with data quality.
    from quality.io import checked_footers, recorded_schema

    layout = ctx.layout
    return recorded_schema([checked_footers(layout, table, day) for day in days])


def has_partition(ctx: RunContext, table: str, ds: str) -> bool:
    """The partition exists in the store and holds at least one Parquet data file."""
    layout = ctx.layout
    return bool(layout.store.data_files(layout.path_for(table, ds)))


def is_complete_snapshot(ctx: RunContext, table: str, ds: str) -> bool:
    """The producer marked the raw partition a complete snapshot (``COMPLETE_SNAPSHOT_MARKER``)."""
    layout = ctx.layout
    return layout.store.is_file(layout.path_for(table, ds_str(ds)) / COMPLETE_SNAPSHOT_MARKER)


def read_raw(
    spark: SparkSession, ctx: RunContext, table: str, ds: str, *, required: bool = True
) -> DataFrame | None:
    """One raw partition with the contract schema, minus the rows data quality sets aside.

    Args:
        table: raw table name (``impressions``, ``ranking_log``, ``users``, ``items``).
        ds: the day.
        required: raise :class:`DataError` when the partition is missing (else return None).

    Returns:
        DataFrame with the contract columns plus ``event_ds`` (date of the partition), or None.
    """
    from pyspark.sql import functions as F

    ds = ds_str(ds)
    layout = ctx.layout
    path = layout.path_for(table, ds)
    if not has_partition(ctx, table, ds):
        if required:
            raise DataError(
                data_error_message(
                    table,
                    f"ds={ds}",
                    f"required raw partition is missing (looked in {layout.store.uri(path)})",
                    fix="run the upstream export (or `twotower simulate`) for this day, then rerun the ETL",
                )
            )
        return None
    _guard(ctx, table, [ds])
    contract = raw_tables(ctx.cfg.features)[table]
    # Optional contract columns absent from the files read as null with an explicit schema.
    df = spark.read.schema(contract.spark_schema()).parquet(layout.store.uri(path))
    bad = _bad_row_condition(table, ctx.cfg, ds)
    if bad is not None:
        df = df.filter(~bad)
    return df.withColumn(EVENT_DS, F.lit(ds).cast("date"))


def read_raw_days(
    spark: SparkSession, ctx: RunContext, table: str, days: Sequence[str], *, required_days: Iterable[str] = ()
) -> tuple[DataFrame | None, list[str]]:
    """Several raw partitions as ONE scan (each row filtered by its own day's row rules).

    A long window costs one file listing per day and one Spark read, not one DataFrame per day
    unioned together (whose planning and footer reads grow with the window's length).

    Returns:
        (DataFrame with ``event_ds``, or None when no day exists; the days that were missing and
        not required).

    Raises:
        DataError: a ``required_days`` partition is missing.
    """
    days = [ds_str(d) for d in days]
    present = [d for d in days if has_partition(ctx, table, d)]
    missing = [d for d in days if d not in set(present)]
    for day in required_days:
        if ds_str(day) in missing:
            read_raw(spark, ctx, table, ds_str(day))  # raises the missing-partition error
    if not present:
        return None, missing
    _guard(ctx, table, present)
    contract = raw_tables(ctx.cfg.features)[table]
    df = _scan(spark, ctx, table, present, contract.spark_schema())
    bad = _bad_row_condition(table, ctx.cfg, None)
    return (df if bad is None else df.filter(~bad)), missing


def _scan(spark: SparkSession, ctx: RunContext, table: str, days: Sequence[str], schema=None) -> DataFrame:
    """The partitions ``days`` of ``table`` in one read, their day as the date column ``event_ds``
    (from the partition path: Spark's partition discovery under ``basePath``)."""
    from pyspark.sql import functions as F

    layout = ctx.layout
    reader = spark.read.option("basePath", layout.store.uri(layout.table_root(table)))
    if schema is not None:
        reader = reader.schema(schema)
    df = reader.parquet(*[layout.store.uri(layout.path_for(table, d)) for d in days])
    if EVENT_DS in df.columns:  # outputs that carry the click's day themselves
        return df.drop(PARTITION_COLUMN)
    return df.withColumn(EVENT_DS, F.col(PARTITION_COLUMN).cast("date")).drop(PARTITION_COLUMN)


def read_output(
    spark: SparkSession, ctx: RunContext, table: str, ds: str, *, required: bool = True
) -> DataFrame | None:
    """One partition of an ETL output (columns as written, plus no ``ds`` column)."""
    ds = ds_str(ds)
    layout = ctx.layout
    path = layout.path_for(table, ds)
    if not layout.store.is_dir(path):
        if required:
            raise DataError(
                data_error_message(
                    table,
                    f"ds={ds}",
                    f"ETL output partition is missing (looked in {layout.store.uri(path)})",
                    fix=f"run `twotower etl --ds {ds}` (its upstream stages first)",
                )
            )
        return None
    schema = _guard(ctx, table, [ds])
    # The schema the files recorded: what Spark would infer, without its inference job.
    reader = spark.read if schema is None else spark.read.schema(schema)
    return reader.parquet(layout.store.uri(path))


def read_output_days(
    spark: SparkSession, ctx: RunContext, table: str, days: Sequence[str]
) -> tuple[DataFrame | None, list[str]]:
    """The existing partitions of an ETL output for ``days`` as one scan (each row with
    ``event_ds``: its own column where the table has one, else the partition's day).

    Returns:
        (DataFrame or None, the days with no partition).
    """
    layout = ctx.layout
    days = [ds_str(d) for d in days]
    present = [d for d in days if layout.store.is_dir(layout.path_for(table, d))]
    missing = [d for d in days if d not in set(present)]
    if not present:
        return None, missing
    schema = _guard(ctx, table, present)
    return _scan(spark, ctx, table, present, schema), missing


def output_rows(ctx: RunContext, table: str, days: Sequence[str]) -> int:
    """Rows of the existing partitions ``days`` of an ETL output, from their Parquet footers:
    the count of a whole-partition read without a Spark job."""
    from quality.io import checked_row_count

    return sum(checked_row_count(ctx.layout, table, ds_str(d)) or 0 for d in days)


def output_days(ctx: RunContext, table: str) -> list[str]:
    """Days that have a partition of ETL output ``table`` (sorted)."""
    return ctx.layout.partitions(table)


def source_fingerprints(
    ctx: RunContext, table: str, days: Sequence[str], params: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """Day -> the fingerprint (JSON text) of the raw partitions that per-day output ``table``'s
    partition of that day is derived from (``PER_DAY_SOURCES``): every data file's name, size
    and modification stamp (local: mtime in ns; object store: ETag), plus ``params``, the
    settings the derivation depends on. A re-export of a raw partition, or a day's raw
    partition appearing or disappearing, changes it; reading it costs one listing per partition.
    """
    layout = ctx.layout
    sources = PER_DAY_SOURCES[table]
    days = [ds_str(d) for d in days]
    keys = [(t, d) for d in days for t in sources]
    with ThreadPoolExecutor(_LISTING_THREADS) as pool:
        stamps = dict(zip(keys, pool.map(lambda k: layout.store.data_file_stamps(layout.path_for(*k)), keys), strict=True))
    return {
        d: json.dumps(
            {
                "table": table,
                "ds": d,
                "params": dict(params or {}),
                "sources": {t: [list(s) for s in stamps[(t, d)]] for t in sources},
            },
            sort_keys=True,
            indent=1,
        )
        for d in days
    }


def stale_days(ctx: RunContext, table: str, fingerprints: Mapping[str, str]) -> list[str]:
    """The days of ``fingerprints`` whose partition of per-day output ``table`` is missing, or
    was written from other raw partitions (its ``SOURCE_MARKER`` differs or is absent: an
    output written before markers existed is recomputed once). Sorted."""
    layout = ctx.layout
    existing = set(output_days(ctx, table))
    have = [d for d in fingerprints if d in existing]
    with ThreadPoolExecutor(_LISTING_THREADS) as pool:
        stored = dict(zip(have, pool.map(lambda d: layout.store.read_text(layout.path_for(table, d) / SOURCE_MARKER), have), strict=True))
    return sorted(d for d, fp in fingerprints.items() if stored.get(d) != fp)


def write_partitions(
    df: DataFrame, ctx: RunContext, table: str, days: Sequence[str], *, sources: Mapping[str, str] | None = None
) -> None:
    """Replace the partitions ``days`` of ETL output ``table`` with the rows of ``df``.

    With several days, ``df`` needs a string column ``ds`` naming each row's partition (dropped
    from the files, as in every partitioned table); with one day, every row belongs to it and
    ``df``'s row order is kept in the files. This is a dynamic partition overwrite: only the
    listed days are replaced, every other day is left alone. It is implemented as one Spark
    write into a staging folder beside the table, then one commit per day through the store
    (:meth:`storage.stores.LocalStore.commit_dir`: an atomic directory swap; on an object
    store a server-side copy), because Spark's own dynamic overwrite leaves a day
    untouched (stale) when the new output for it is empty (e.g. hard negatives of a day
    without a ranking log). Readers see the old or the new partition, never half of one.

    Args:
        df: rows to write.
        table: ETL output name (``contracts.outputs.ETL_OUTPUTS``).
        days: the partitions this write owns (a listed day with no rows becomes empty).
        sources: per-day outputs only: day -> :func:`source_fingerprints` text, taken *before*
            the raw partitions were read, stored as ``SOURCE_MARKER`` in the day's partition
            (committed with its data files). A raw re-export racing the read thus leaves a
            fingerprint that no longer matches, and the next run recomputes the day.
    """
    from pyspark.sql import functions as F

    if table not in ETL_OUTPUTS:
        raise KeyError(f"unknown ETL output {table!r}")
    days = [ds_str(d) for d in days]
    if not days:
        return
    if (sources is not None) != (table in PER_DAY_SOURCES) or (sources is not None and set(days) - set(sources)):
        raise ValueError(
            f"{table}: a per-day output ({', '.join(PER_DAY_SOURCES)}) is written with the source "
            f"fingerprint of every day it writes, any other output without one (days {days}, "
            f"fingerprints for {sorted(sources or ())})"
        )
    layout = ctx.layout
    store = layout.store
    root = layout.table_root(table)
    # Contract timestamps are timestamp[us, tz=UTC]; Spark's default INT96 reads back in Arrow
    # as timestamp[ns] without a zone.
    df.sparkSession.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
    staging = root / f".staging-{uuid.uuid4().hex[:12]}"
    try:
        if len(days) == 1:
            data = df
            if PARTITION_COLUMN in df.columns:
                data = df.filter(F.col(PARTITION_COLUMN) == days[0]).drop(PARTITION_COLUMN)
            data.write.mode("overwrite").parquet(store.uri(staging / f"{PARTITION_COLUMN}={days[0]}"))
        else:
            out = df.filter(F.col(PARTITION_COLUMN).isin(days))
            out.write.mode("overwrite").partitionBy(PARTITION_COLUMN).parquet(store.uri(staging))
        empty_schema = df.drop(PARTITION_COLUMN).schema
        for day in days:
            part = staging / f"{PARTITION_COLUMN}={day}"
            if not store.is_dir(part):
                _write_empty(df.sparkSession, empty_schema, store.uri(part))
            if sources is not None:
                store.write_text(part / SOURCE_MARKER, sources[day])
            store.commit_dir(part, layout.path_for(table, day))
    finally:
        store.remove_dir(staging)


def drop_partition(ctx: RunContext, table: str, ds: str) -> None:
    """Remove one partition of an ETL output (used when a written partition fails its check)."""
    layout = ctx.layout
    layout.store.remove_dir(layout.path_for(table, ds))


def _write_empty(spark: SparkSession, schema, uri: str) -> None:
    """An empty partition that still carries the schema (one zero-row Parquet file)."""
    spark.createDataFrame([], schema).coalesce(1).write.mode("overwrite").parquet(uri)
