"""Check ``unknown_clicked_item`` of the raw gate: clicks on items missing from the day's items
snapshot. One Spark aggregation after the row suites (it is not a per-row flag: the limit is
a share of the day's clicks).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from quality.rules import bad_row_condition

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from quality.gate_run import GateRun


def unknown_clicked_items(gate: GateRun, impressions: DataFrame, items: DataFrame) -> None:
    """Add check ``unknown_clicked_item`` (suite ``validate_raw.impressions.catalogue``).

    Such items get no catalogue row, so they are never embedded nor indexed: the published
    index cannot retrieve them. Above ``quality.unknown_item_click_max_fraction`` of the day's
    clicks (quarantined rows excluded) the day stops; below, a warning with the same counts.
    """
    from pyspark.sql import functions as F

    cfg, ds = gate.cfg, gate.ds
    clicks = impressions.filter(F.col("clicked") & ~bad_row_condition("impressions", cfg, ds)).select("item_id")
    known = (
        items.filter(~bad_row_condition("items", cfg, ds)).select("item_id").distinct().withColumn("_dq_known", F.lit(True))
    )
    joined = clicks.join(F.broadcast(known), "item_id", "left")
    unknown = F.col("_dq_known").isNull()
    row = joined.agg(
        F.count(F.lit(1)).alias("clicks"),
        F.sum(F.when(unknown, 1).otherwise(0)).alias("bad"),
        F.countDistinct(F.when(unknown, F.col("item_id"))).alias("items"),
    ).collect()[0]
    total, bad, n_items = int(row["clicks"]), int(row["bad"] or 0), int(row["items"])
    share = bad / total if total else 0.0
    limit = cfg.quality.unknown_item_click_max_fraction
    examples: list = []
    if bad:
        examples = [
            {"item_id": r["item_id"], "clicks": int(r["count"])}
            for r in joined.filter(unknown).groupBy("item_id").count().orderBy(F.desc("count"), "item_id")
            .limit(cfg.quality.example_rows).collect()
        ]
    status = "passed" if not bad else ("warning" if share <= limit else "failed")
    problem = (
        f"{n_items:,} clicked items are missing from the day's items snapshot: {bad:,} of {total:,} clicks "
        f"({share:.1%}); they get no catalogue row, so the published index could never retrieve them"
    )
    if status == "failed":
        problem += f"; above quality.unknown_item_click_max_fraction={limit:g} of the day's clicks"
    if examples:
        problem += f". Most clicked: {examples[:3]}"
    gate.add_static(
        "impressions",
        "unknown_clicked_item",
        status,
        problem,
        "the items snapshot of the day is incomplete: re-export it with every item that was shown, then rerun "
        "the day (a known, small gap: raise quality.unknown_item_click_max_fraction for this run)",
        suite="catalogue",
        severity="threshold",
        column="item_id",
        rows=total,
        count=bad,
        fraction=share,
        examples=examples,
    )
