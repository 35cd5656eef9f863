"""Row rules (quality.rules) and GE suites (quality.*_suites + quality.runner) on tiny inline frames.

Every expected count is written out by hand next to the data.
"""

from __future__ import annotations

import datetime as dt
import math

import pytest

from contracts.outputs import ITEM_SAMPLING
from contracts.schemas import IMPRESSIONS, RANKING_LOG, users_table
from core.config import Config
from quality.checks import ANY_ROW_RULE, Suite, overlap_flag
from quality.contract_suites import contract_suite
from quality.output_suites import alias_frame, idx_range_flags, vocabulary_stability_suite
from quality.raw_suites import raw_rows_suite, volume_check
from quality.rules import bad_row_condition, day_bounds_micros, row_rules

pytestmark = pytest.mark.spark

DS = "2026-11-01"
U = dt.UTC


def _nullable(table):
    """The contract's Spark schema with every column nullable (to build bad rows)."""
    from pyspark.sql import types as T

    return T.StructType([T.StructField(f.name, f.dataType, True) for f in table.spark_schema().fields])


def _ts(h: int, day: int = 1) -> dt.datetime:
    return dt.datetime(2026, 11, day, h, tzinfo=U)


IMPRESSION_ROWS = [
    # request, user, item, ts, position, clicked, liked, dwell   -> failing rule
    ("r1", "u1", "i1", _ts(1), 0, True, None, None),  # good
    ("r1", None, "i2", _ts(1), 1, False, None, None),  # null_user_id
    ("r1", "u1", None, _ts(1), 2, False, None, None),  # null_item_id
    ("r2", "u2", "i1", _ts(0, day=2), 0, False, None, None),  # ts_outside_day (next midnight)
    ("r2", "u2", "i2", dt.datetime(2026, 10, 31, 23, 59, tzinfo=U), 1, False, None, None),  # ts_outside_day
    ("r2", "u2", "i3", _ts(23), -1, False, None, None),  # negative_position
    ("r3", "u3", "i1", _ts(5), None, True, None, None),  # good: null position is "unknown"
    ("r3", "u3", "i2", _ts(0), 1, False, None, None),  # good: midnight belongs to the day
]


@pytest.fixture
def impressions(spark):
    return spark.createDataFrame(IMPRESSION_ROWS, _nullable(IMPRESSIONS))


def test_day_bounds_are_utc_midnights():
    lo, hi = day_bounds_micros("2026-11-01")
    # 2026-11-01T00:00Z = 1_793_491_200 s since the epoch (date -u -d 2026-11-01 +%s).
    assert lo == 1_793_491_200 * 1_000_000
    assert hi - lo == 86_400 * 1_000_000


def test_bad_row_condition_counts_and_keeps_null_positions(impressions):
    cfg = Config()
    cond = bad_row_condition("impressions", cfg, DS)
    # Bad rows by hand: rows 2, 3, 4, 5, 6 -> 5; good: rows 1, 7, 8 -> 3.
    assert impressions.filter(cond).count() == 5
    kept = impressions.filter(~cond)
    assert sorted(r.item_id for r in kept.collect()) == ["i1", "i1", "i2"]
    per_rule = {r.name: impressions.filter(r.condition).count() for r in row_rules("impressions", cfg, DS)}
    assert per_rule == {
        "null_request_id": 0,
        "null_user_id": 1,
        "null_item_id": 1,
        "ts_outside_day": 2,
        "negative_position": 1,
        "null_clicked": 0,
        # no empty, edge-whitespace or control-character ids in these rows
        "malformed_request_id": 0,
        "malformed_user_id": 0,
        "malformed_item_id": 0,
    }


def test_unknown_stage_and_nan_score(spark):
    rows = [
        ("r1", "u1", "i1", _ts(1), "retrieval", 0.5, True),  # good
        ("r1", "u1", "i1", _ts(1), "rerank", 0.5, True),  # unknown_stage
        ("r1", "u1", "i2", _ts(1), None, 0.1, False),  # unknown_stage (null)
        ("r1", "u1", "i3", _ts(1), "rank", math.nan, False),  # nan_score
        ("r1", "u1", "i4", _ts(1), "rank", None, False),  # good: score may be unlogged
    ]
    df = spark.createDataFrame(rows, _nullable(RANKING_LOG))
    cfg = Config()
    assert df.filter(bad_row_condition("ranking_log", cfg, DS)).count() == 3
    counts = {r.name: df.filter(r.condition).count() for r in row_rules("ranking_log", cfg, DS)}
    assert counts["unknown_stage"] == 2 and counts["nan_score"] == 1


def test_numeric_feature_nan_inf_and_range(spark):
    table = users_table(("region",), ("activity",))
    rows = [
        ("u1", "eu", 1.0),  # good
        ("u2", "eu", math.nan),  # nan_activity
        ("u3", "eu", math.inf),  # nan_activity (infinite) and range_activity
        ("u4", "eu", -5.0),  # range_activity: declared [0, 1e6]
        ("u5", None, None),  # good: null features are imputed
    ]
    df = spark.createDataFrame(rows, _nullable(table))
    cfg = Config()
    counts = {r.name: df.filter(r.condition).count() for r in row_rules("users", cfg, DS)}
    assert counts == {"null_user_id": 0, "malformed_user_id": 0, "nan_activity": 2, "range_activity": 2}
    assert df.filter(bad_row_condition("users", cfg, DS)).count() == 3
    assert bad_row_condition("vocabulary", cfg, DS) is None


# --------------------------------------------------------------------------------------
# Suites run through Great Expectations
# --------------------------------------------------------------------------------------


def _run(tmp_path, suites):
    from quality.runner import GxProject

    project = GxProject(tmp_path / "gx")
    results = {(r.suite, r.check.name): r for r in project.run(suites)}
    project.build_docs()
    assert (tmp_path / "gx" / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html").is_file()
    return results


def test_raw_rows_suite_counts(spark, impressions, tmp_path):
    cfg = Config()
    extra = [("r1", "u1", "i1", _ts(2), 0, True, None, None)]  # duplicate of (r1, i1)
    df = impressions.union(spark.createDataFrame(extra, _nullable(IMPRESSIONS)))
    cut = spark.createDataFrame([("r3", "i1"), ("r3", "i9")], "request_id string, item_id string")
    suite = raw_rows_suite(IMPRESSIONS, df, DS, cfg, trailing_counts={"2026-10-31": 90}, ranking_cut=cut)
    res = _run(tmp_path, [suite])
    name = suite.name
    assert res[(name, "null_user_id")].failing_count == 1
    assert res[(name, "ts_outside_day")].failing_count == 2
    assert res[(name, ANY_ROW_RULE)].failing_count == 5
    # (r1, i1) appears twice: GE counts both rows of the duplicated key.
    assert res[(name, "unique:request_id,item_id")].failing_count == 2
    assert res[(name, "unique:request_id,item_id")].examples == [{"request_id": "r1", "item_id": "i1", "copies": 2}]
    # (r3, i1) was cut by the ranking log and is clicked -> 1 click on a row not shown.
    assert res[(name, "clicked_not_shown")].failing_count == 1
    assert res[(name, "clicked_not_shown")].examples[0]["item_id"] == "i1"
    # 9 rows against a trailing median of 90: outside [45, 180].
    assert not res[(name, "volume")].success
    assert res[(name, "volume")].observed == 9
    assert res[(name, "non_empty")].success


def test_contract_suite_names_missing_and_mistyped_columns(spark, tmp_path):
    df = spark.createDataFrame(
        [("r1", "u1", "i1", _ts(1), "0", True)],
        "request_id string, uid string, item_id string, ts timestamp, position string, clicked boolean",
    )
    suite = contract_suite(IMPRESSIONS, df, DS, "validate_raw")
    res = _run(tmp_path, [suite])
    failed = sorted(k[1] for k, r in res.items() if not r.success)
    assert failed == ["column_exists:user_id", "columns", "type:position"]
    assert res[(suite.name, "type:position")].observed == "StringType"


def test_alias_table_reconstruction(spark, tmp_path):
    # neg_prob = [0.5, 0.25, 0.25]; Vose by hand: n = 3, scaled = [1.5, .75, .75];
    # slot 1 keeps .75 and aliases 0, slot 2 keeps .75 and aliases 0, slot 0 keeps 1.
    # P(0) = (1 + .25 + .25) / 3 = .5; P(1) = P(2) = .75 / 3 = .25.
    good = [
        (1, "a", 4, 4, 0.5, 1.0, 1, 0.5),
        (2, "b", 1, 2, 0.25, 0.75, 1, 0.5),
        (3, "c", 0, 0, 0.25, 0.75, 1, 0.0),
    ]
    # Same with slot 2 keeping only .5: P(1) = .5/3 != .25 and P(0) = 1.75/3 != .5 -> 2 rows.
    bad = [good[0], (2, "b", 1, 2, 0.25, 0.5, 1, 0.5), good[2]]
    schema = ITEM_SAMPLING.spark_schema()
    fg, cg = alias_frame(spark.createDataFrame(good, schema), 1e-9, 1.0)
    fb, cb = alias_frame(spark.createDataFrame(bad, schema), 1e-9, 1.0)
    # item_idx here are 1..3: alias_idx = 1 means item 1 (the 0.5 item).
    res_good = _run(tmp_path / "g", [Suite("good.item_sampling", "item_sampling", DS, fg, cg)])
    res_bad = _run(tmp_path / "b", [Suite("bad.item_sampling", "item_sampling", DS, fb, cb)])
    assert all(r.success for r in res_good.values()), {k: r.failing_count for k, r in res_good.items()}
    assert res_bad[("bad.item_sampling", "alias_reconstructs")].failing_count == 2
    assert res_bad[("bad.item_sampling", "sum_to_one:neg_prob")].success


def test_vocabulary_stability_and_hard_negative_overlap(spark, tmp_path):
    prev = spark.createDataFrame([("item_id", "a", 1), ("item_id", "b", 2)], "vocab string, value string, id long")
    # b moved from id 2 to id 3 (and c took 2): one previous value changed meaning.
    cur = spark.createDataFrame(
        [("item_id", "a", 1), ("item_id", "b", 3), ("item_id", "c", 2)], "vocab string, value string, id long"
    )
    stab = vocabulary_stability_suite(cur, prev, DS, "2026-10-31")
    hn = spark.createDataFrame([("u1", "i1"), ("u1", "i2"), ("u2", "i1")], "user_id string, item_id string")
    shown = spark.createDataFrame([("u1", "i2"), ("u3", "i1")], "user_id string, item_id string")
    frame, check = overlap_flag(hn, shown, ["user_id", "item_id"], "disjoint", "overlap", "fix")
    res = _run(tmp_path, [stab, Suite("hn", "hard_negatives", DS, frame, [check])])
    assert res[(stab.name, "id_stable")].failing_count == 1
    assert res[(stab.name, "id_stable")].examples == [
        {"vocab": "item_id", "value": "b", "previous_id": 2, "current_id": 3}
    ]
    # Only (u1, i2) was shown to the same user: (u2, i1) was shown to u3, not u2.
    assert res[("hn", "disjoint")].failing_count == 1


def test_id_ranges_in_scalars_and_arrays(spark, tmp_path):
    df = spark.createDataFrame(
        [(1, 5, [1, 2], 1, 0.5), (3, 5, [6], 0, float("nan")), (2, 9, [], 2, 0.0)],
        "user_idx long, item_idx long, hard_neg_idx array<long>, u_cat_region long, i_num_quality float",
    )
    sizes = {"user_id": 2, "item_id": 5, "user.region": 1}
    flags, checks = idx_range_flags(df.columns, sizes, Config())
    res = _run(tmp_path, [Suite("t", "train_examples", DS, df.withColumns(flags), checks)])
    # user_idx 3 > 2; item_idx 9 > 5; hard_neg 6 > 5; u_cat_region 2 > 1; one NaN.
    assert {k[1]: r.failing_count for k, r in res.items()} == {
        "range:user_idx": 1,
        "range:item_idx": 1,
        "range:hard_neg_idx": 1,
        "range:u_cat_region": 1,
        "finite:i_num_quality": 1,
    }


def test_volume_check_bounds():
    cfg = Config()
    # median of (100, 120, 80) = 100 -> [0.5, 2.0] x 100 = [50, 200].
    check = volume_check("impressions", {"a": 100, "b": 120, "c": 80}, cfg)
    assert (check.expectation.min_value, check.expectation.max_value) == (50, 200)
    assert volume_check("impressions", {}, cfg) is None
