"""What several ETL stages read the same way: the click positives of a stretch of days, the
users snapshot behind the user features, day D's live catalogue, and which per-day outputs a
run recomputes.

Days (see docs/etl.md): ``ctx.window`` is the ``etl.window_days`` days ending at D; its last
``etl.eval_days`` are the held-out evaluation days, the earlier ones the training days.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

from contracts.days import day_range, parse_ds
from core.errors import DataError, data_error_message
from etl import io

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from core.context import RunContext


def shift(day: str, days: int) -> str:
    return (parse_ds(day) + dt.timedelta(days=days)).isoformat()


def days_between(first: str, last: str) -> list[str]:
    """Days from ``first`` to ``last`` inclusive (empty if last < first)."""
    n = (parse_ds(last) - parse_ds(first)).days + 1
    return day_range(last, n) if n > 0 else []


def with_ds(df: DataFrame, ds: str) -> DataFrame:
    """``df`` with the partition column set to ``ds`` (for a multi-partition write of one day)."""
    from pyspark.sql import functions as F

    return df.withColumn(io.PARTITION_COLUMN, F.lit(ds))


def click_positives_of(spark: SparkSession, ctx: RunContext, days: Sequence[str], what: str) -> tuple[DataFrame, list[str]]:
    """The click positives of ``days`` (one scan) and the days without a partition.

    Raises:
        DataError: none of the ``what`` days (e.g. "training") has a partition.
    """
    df, missing = io.read_output_days(spark, ctx, "click_positives", list(days))
    if df is None:
        raise DataError(
            data_error_message(
                "click_positives",
                f"ds={days[0]}..{days[-1]}",
                f"no partition of the {what} days exists",
                fix="run the click_positives stage (it needs raw impressions of those days)",
            )
        )
    return df, missing


def per_day_todo(ctx: RunContext, sources: dict[str, dict[str, str]]) -> tuple[list[str], list[str]]:
    """(days whose per-day outputs this run computes, those of them other than D that had a
    missing or stale partition), oldest first.

    Args:
        sources: per-day output -> (day -> :func:`etl.io.source_fingerprints` text), for the
            days the stage wants.

    The rule (docs/etl.md, "Per-day outputs and reruns"): day D always (a run or rerun of D
    recomputes D's per-day outputs); another day when a partition of one of the outputs is
    missing, or its stored source fingerprint differs from ``sources`` (the raw partitions were
    re-exported, added or removed since it was written, or its settings changed). A day whose
    raw partitions are gone entirely keeps its outputs (the caller drops it from the list when
    the raw read finds nothing: an output outlives its raw input's retention).
    """
    stale: set[str] = set()
    for table, fingerprints in sources.items():
        stale.update(io.stale_days(ctx, table, fingerprints))
    days = sorted({d for fingerprints in sources.values() for d in fingerprints})
    todo = [d for d in days if d == ctx.ds or d in stale]
    return todo, sorted(stale - {ctx.ds})


def users_snapshot(spark: SparkSession, ctx: RunContext) -> tuple[DataFrame, str]:
    """The users snapshot of the last training day (the latest earlier one if it is missing)."""
    train_days = ctx.window.train_days
    for day in reversed(train_days):
        df = io.read_raw(spark, ctx, "users", day, required=False)
        if df is not None:
            return df, day
    raise DataError(
        data_error_message(
            "users",
            f"ds={train_days[0]}..{train_days[-1]}",
            "no users snapshot on any training day (user features are built from the last one)",
            fix="export the users snapshot for the training days",
        )
    )


def catalogue_days(ctx: RunContext) -> list[str]:
    """Days whose items snapshots give day D's catalogue: the window, and at least the
    ``etl.retire_after_days`` days ending at D (items seen then are carried forward)."""
    return day_range(ctx.ds, max(ctx.cfg.etl.retire_after_days, len(ctx.window.days)))


def catalogue_items(spark: SparkSession, ctx: RunContext) -> DataFrame:
    """The items snapshots of :func:`catalogue_days` (one scan; day D's is required)."""
    snapshots, _ = io.read_raw_days(spark, ctx, "items", catalogue_days(ctx), required_days=[ctx.ds])
    return snapshots


def item_context(spark: SparkSession, ctx: RunContext, vocabulary: DataFrame) -> tuple[DataFrame, DataFrame, DataFrame]:
    """(latest snapshot row per item, day D's live item ids, created dates).

    Live on day D (docs/etl.md, "Catalogue"): with a complete items snapshot of D, exactly its
    items; otherwise every item in an items snapshot or clicked in the last
    ``etl.retire_after_days`` days, so an item missing from a partial snapshot is carried
    forward with its last known features until it is retired.
    """
    from pyspark.sql import functions as F

    from etl.features import item_created, latest_per_key, live_items

    snapshots = catalogue_items(spark, ctx)
    latest = latest_per_key(snapshots, "item_id")
    if io.is_complete_snapshot(ctx, "items", ctx.ds):
        active = snapshots.filter(F.col("event_ds") == F.lit(ctx.ds).cast("date")).select("item_id")
    else:
        live_days = day_range(ctx.ds, ctx.cfg.etl.retire_after_days)
        clicked, _ = io.read_output_days(spark, ctx, "click_positives", live_days)
        active = live_items(snapshots, clicked, live_days[0])
    return latest, active, item_created(latest, vocabulary)
