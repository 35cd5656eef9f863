"""The carried-forward catalogue (etl.stages.inputs: live items of day D) and exact, order-independent
feature statistics.

A log imported without an items file has partial snapshots (the items seen that day), so an
item stays live while it was seen in the last ``etl.retire_after_days`` days; a producer that
marks its snapshot complete retires an absent item at once. Expected sets are written by hand
from the tiny logs below.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from etl.features import exact_mean_std
from tests.conftest import make_config


def test_exact_mean_std_by_hand_and_independent_of_order():
    # values 1, 2, 3, 3: mean 9/4 = 2.25; deviations -1.25, -0.25, 0.75, 0.75;
    # squares 1.5625 + 0.0625 + 2 * 0.5625 = 2.75; population variance 2.75 / 4 = 0.6875.
    mean, std = exact_mean_std(np.array([1.0, 2.0, 3.0]), np.array([1.0, 1.0, 2.0]))
    assert mean == 2.25 and std == math.sqrt(0.6875)
    # Values whose naive float sum depends on the order: fsum gives the same bits either way.
    rng = np.random.default_rng(3)
    v = rng.normal(size=1000) * 10.0 ** rng.integers(-8, 8, size=1000)
    c = rng.integers(1, 5, size=1000).astype(float)
    assert np.cumsum(v * c)[-1] != np.cumsum((v * c)[::-1])[-1]  # the premise: naive sums differ
    perm = rng.permutation(1000)
    assert exact_mean_std(v, c) == exact_mean_std(v[perm], c[perm])
    assert exact_mean_std(np.array([]), np.array([])) == (0.0, 1.0)
    assert exact_mean_std(np.array([4.0]), np.array([3.0])) == (4.0, 1.0)  # constant: std 1


# Days 1..7 of 2026-11. Item "old" is shown and clicked on day 1 only; "a" and "b" every day.
def _log() -> str:
    rows = ["user,item,when,clicked"]
    for day in range(1, 8):
        rows += [f"u1,a,2026-11-0{day}T10:00:00Z,1", f"u2,b,2026-11-0{day}T11:00:00Z,1", f"u1,b,2026-11-0{day}T12:00:00Z,0"]
    rows.append("u2,old,2026-11-01T09:00:00Z,1")
    return "\n".join(rows) + "\n"


def _imported_without_items_file(tmp_path):
    """The log imported with partial snapshots (no items file), a 2-day window, retire after 5."""
    from importers.interactions import ColumnMapping, import_interactions

    (tmp_path / "log.csv").write_text(_log())
    cfg = make_config(
        tmp_path,
        etl={"window_days": 2, "retire_after_days": 5},
        features={"user_categorical": [], "user_numeric": [], "item_categorical": [], "item_numeric": []},
    )
    import_interactions(cfg, tmp_path / "log.csv", ColumnMapping(user="user", item="item", ts="when", click="clicked"))
    return cfg


def _live(spark, cfg, ds: str) -> tuple[set[str], dict]:
    from core.context import RunContext
    from etl import io
    from etl.jobs import run_stage

    ctx = RunContext.build(cfg, ds)
    for stage in ("click_positives", "vocabulary", "features"):
        stats = run_stage(ctx, spark, stage).to_dict()
    cat = io.read_output(spark, ctx, "item_catalogue", ds).toPandas()
    return set(cat[cat.active].item_id), stats["catalogue"]


@pytest.mark.spark
def test_item_seen_on_day_1_is_live_until_retire_after_days_then_retired(spark, tmp_path):
    cfg = _imported_without_items_file(tmp_path)
    # Day 5: "old" was last seen on day 1 = 5 - 5 + 1, still inside the 5 days ending at D, and
    # outside the 2-day window: it is carried forward although day 5's snapshot lacks it.
    live, change = _live(spark, cfg, "2026-11-05")
    assert live == {"a", "b", "old"}
    assert change["size"] == 3 and change["rule"] == "carried forward" and change["compared_with"] is None
    # Day 6: day 1 is 6 days back, so "old" is retired; compared with day 5: 0 added, 1 retired.
    live, change = _live(spark, cfg, "2026-11-06")
    assert live == {"a", "b"}
    assert (change["compared_with"], change["added"], change["retired"], change["size"]) == ("2026-11-05", 0, 1, 2)


@pytest.mark.spark
def test_complete_snapshot_retires_an_absent_item_at_once(spark, tmp_path):
    from importers.interactions import ColumnMapping, FeatureFile, import_interactions

    (tmp_path / "log.csv").write_text(_log())
    # An items file makes every day's items partition the whole catalogue ("complete"): the
    # file lists a, b and never-shown "c", and not "old" (so "old" is never live).
    (tmp_path / "items.csv").write_text("item,genre\na,x\nb,y\nc,z\n")
    cfg = make_config(
        tmp_path,
        etl={"window_days": 2, "retire_after_days": 5},
        features={"user_categorical": [], "user_numeric": [], "item_categorical": ["genre"], "item_numeric": []},
    )
    import_interactions(
        cfg,
        tmp_path / "log.csv",
        ColumnMapping(user="user", item="item", ts="when", click="clicked"),
        items=FeatureFile(tmp_path / "items.csv", "item", ("genre",)),
    )
    live, change = _live(spark, cfg, "2026-11-02")
    assert live == {"a", "b", "c"} and change["rule"] == "complete snapshot"


@pytest.mark.spark
def test_unreadable_file_on_an_earlier_catalogue_day_names_table_partition_and_file(spark, tmp_path):
    from core.context import RunContext
    from etl.jobs import run_stage
    from quality.io import UnreadableFile
    from storage.layout import Layout

    cfg = _imported_without_items_file(tmp_path)
    # Day 1's items snapshot is outside the 2-day window but inside the catalogue days of day 5.
    bad = Layout(cfg.paths).path_for("items", "2026-11-01") / "part-00000.parquet"
    bad.write_bytes(bad.read_bytes()[:20])  # truncated: no footer
    ctx = RunContext.build(cfg, "2026-11-05")
    run_stage(ctx, spark, "click_positives")
    with pytest.raises(UnreadableFile, match=r"table items, partition ds=2026-11-01.*part-00000\.parquet"):
        run_stage(ctx, spark, "vocabulary")


@pytest.mark.spark
def test_feature_stats_are_bit_identical_whatever_the_partitioning(spark):
    # The rerun fault: Spark's avg/stddev add doubles in the order partitions arrive, so the same
    # rows split differently gave other last bits. Values spanning 16 orders of magnitude make
    # the order visible (the premise is asserted); fit_stats must give the same bits each time.
    from pyspark.sql import functions as F

    from etl.features import fit_stats, stats_dict

    rng = np.random.default_rng(5)
    values = (rng.normal(size=4000) * 10.0 ** rng.integers(-8, 8, size=4000)).tolist()
    df = spark.createDataFrame([(v,) for v in values], "x double")
    layouts = [df.repartition(1), df.repartition(7, F.col("x")), df.orderBy(F.rand(3)).repartition(3)]
    naive = {df2.agg(F.sum("x")).first()[0] for df2 in layouts}
    assert len(naive) > 1  # the premise: a Spark sum of these doubles depends on the partitioning
    got = [stats_dict(fit_stats(df2, ["x"]))["x"] for df2 in layouts]
    assert got[0] == got[1] == got[2]
    mean, std = exact_mean_std(np.array(values), np.ones(len(values)))
    assert got[0] == (mean, std)
