"""ETL transforms on tiny inline DataFrames, against expected values worked out by hand."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from etl.alias import alias_draw, alias_probabilities, vose_alias
from etl.positives import distribution_stats

UTC = dt.UTC


def ts(day: int, hour: int = 0) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, tzinfo=UTC)


def d(day: int) -> dt.date:
    return dt.date(2026, 11, day)


# -- pure numpy ---------------------------------------------------------------------------


def test_distribution_stats_by_hand():
    # Items with clicks [1, 1, 2, 6]: total 10, top 1% = ceil(0.04) = 1 item -> 6 / 10.
    # Gini, ascending x, i = 1..4: sum (2i - 5) x_i = -3*1 - 1*1 + 1*2 + 3*6 = 16; 16 / (4 * 10) = 0.4.
    s = distribution_stats(np.array([1, 1, 2, 6]))
    assert s["items"] == 4 and s["clicks"] == 10
    assert s["top1pct_share"] == pytest.approx(0.6)
    assert s["gini"] == pytest.approx(0.4)
    # The same distribution given as a histogram (value, multiplicity).
    h = distribution_stats(np.array([6, 1, 2]), np.array([1, 2, 1]))
    assert h["gini"] == pytest.approx(0.4) and h["top1pct_share"] == pytest.approx(0.6)
    # Uniform: Gini 0.
    assert distribution_stats(np.array([5, 5, 5]))["gini"] == pytest.approx(0.0)


def test_vose_alias_encodes_the_distribution_exactly():
    p = np.array([0.1, 0.0, 0.2, 0.3, 0.4])
    keep, alias = vose_alias(p)
    # Zero-mass slot 1 is always aliased away: keep[1] = 0.
    assert keep[1] == pytest.approx(0.0)
    np.testing.assert_allclose(alias_probabilities(keep, alias), p, atol=1e-12)


def test_vose_alias_large_draw_matches_probabilities_chi_square():
    from scipy.stats import chisquare

    # clicks^0.75 over 50 items with a heavy head, as the sampling table builds it.
    rng = np.random.default_rng(123)
    clicks = np.floor(rng.pareto(1.1, size=50) * 10)
    p = (clicks + 1.0) ** 0.75
    p /= p.sum()
    keep, alias = vose_alias(p)
    n = 1_000_000
    draws = alias_draw(keep, alias, n, np.random.default_rng(7))
    observed = np.bincount(draws, minlength=p.size)
    stat, pvalue = chisquare(observed, f_exp=p * n)
    assert pvalue > 1e-3, (
        f"alias draws do not follow the target distribution (chi2={stat:.1f}, p={pvalue:.2e})"
    )
    # And a wrong target is rejected by the same test (the check can fail).
    wrong = np.roll(p, 1)
    assert chisquare(observed, f_exp=wrong * n).pvalue < 1e-6


def test_vose_alias_rejects_bad_input():
    with pytest.raises(ValueError, match="sum to 0"):
        vose_alias(np.zeros(3))
    with pytest.raises(ValueError, match=">= 0"):
        vose_alias(np.array([0.5, -0.1]))


# -- Spark transforms ---------------------------------------------------------------------

IMP_SCHEMA = (
    "request_id string, user_id string, item_id string, ts timestamp, position int, clicked boolean, "
    "liked boolean, event_ds date"
)


@pytest.mark.spark
def test_click_positives_collapse_duplicates_and_drop_unclicked(spark):
    from pyspark.testing import assertDataFrameEqual

    from etl.positives import build_click_positives

    imp = spark.createDataFrame(
        [
            ("r1", "u1", "a", ts(2, 10), 0, True, False, d(2)),
            ("r1", "u1", "a", ts(2, 9), 0, True, True, d(2)),  # duplicate click: earlier ts, liked
            ("r1", "u1", "b", ts(2, 9), 1, False, None, d(2)),  # shown, not clicked: never a positive
            ("r2", "u2", "a", ts(2, 11), 3, True, None, d(2)),
        ],
        IMP_SCHEMA,
    )
    out = build_click_positives(imp, "engagement")
    # r1/a collapses to the 09:00 click; liked if any duplicate was liked -> weight 1 + 1 = 2.
    expected = spark.createDataFrame(
        [("r1", "u1", "a", ts(2, 9), 2.0, True, d(2)), ("r2", "u2", "a", ts(2, 11), 1.0, None, d(2))],
        "request_id string, user_id string, item_id string, ts timestamp, weight double, liked boolean, event_ds date",
    )
    assertDataFrameEqual(out, expected)
    const = build_click_positives(imp, "constant").select("weight").distinct()
    assert [r.weight for r in const.collect()] == [1.0]


def _positives(spark, counts: dict[str, int]):
    rows = []
    for item, n in counts.items():
        for k in range(n):
            rows.append((f"r{item}{k}", f"u{k % 50}", item, ts(2, k % 24), 1.0, None, d(2)))
    return spark.createDataFrame(
        rows,
        "request_id string, user_id string, item_id string, ts timestamp, weight double, liked boolean, event_ds date",
    )


@pytest.mark.spark
def test_resampling_rule_and_top_share_moves_down(spark):
    from pyspark.sql import functions as F

    from core.config import EtlConfig
    from etl.positives import click_distribution, item_click_counts, resample_positives

    cfg = EtlConfig(hot_threshold=100, cold_threshold=3, max_upsample=3, seed=5)
    # hot: 400 clicks -> keep prob sqrt(100/400) = 0.5 (binomial: 200 +- 10 sd);
    # mid: 10 clicks kept once; cold: 1 click -> min(3, ceil(3/1)) = 3 copies, 2 clicks -> ceil(1.5) = 2 each.
    counts = {"hot": 400, "mid": 10, "c1": 1, "c2": 2}
    counts.update({f"m{i}": 5 for i in range(96)})  # 100 items in total, so top 1% = the hot item
    pos = _positives(spark, counts)
    out = resample_positives(pos, cfg).cache()
    per_item = {r.item_id: r.n for r in out.groupBy("item_id").agg(F.count("*").alias("n")).collect()}
    assert 170 <= per_item["hot"] <= 230
    assert per_item["mid"] == 10 and per_item["m0"] == 5
    assert per_item["c1"] == 3 and per_item["c2"] == 4
    assert sorted(r.replica for r in out.filter("item_id = 'c1'").collect()) == [0, 1, 2]
    # Deterministic under the seed: a second evaluation gives the same rows.
    again = resample_positives(pos, cfg)
    assert sorted(again.collect()) == sorted(out.collect())
    before = click_distribution(item_click_counts(pos), "clicks")
    after = click_distribution(item_click_counts(out), "clicks")
    # Before: 400 of 400 + 10 + 1 + 2 + 480 = 893 clicks.
    assert before["top1pct_share"] == pytest.approx(400 / 893)
    assert after["top1pct_share"] < before["top1pct_share"] - 0.1
    assert after["gini"] < before["gini"]
    out.unpersist()


RL_SCHEMA = "request_id string, user_id string, item_id string, stage string, passed boolean, event_ds date"


@pytest.mark.spark
def test_hard_negatives_exclude_shown_and_clicked_items_per_user(spark):
    from pyspark.testing import assertDataFrameEqual

    from etl.hard_negatives import clicked_overlap, hard_negatives_from_ranking_log, shown_overlap

    rl = spark.createDataFrame(
        [
            # r1 (user u1): funnel retrieval -> pre_rank -> rank.
            ("r1", "u1", "a", "retrieval", True, d(2)),
            ("r1", "u1", "a", "pre_rank", False, d(2)),  # cut at pre_rank: difficulty 1
            ("r1", "u1", "b", "retrieval", True, d(2)),
            ("r1", "u1", "b", "pre_rank", True, d(2)),
            ("r1", "u1", "b", "rank", False, d(2)),  # cut at rank: difficulty 2
            ("r1", "u1", "c", "retrieval", True, d(2)),
            ("r1", "u1", "c", "pre_rank", True, d(2)),
            ("r1", "u1", "c", "rank", False, d(2)),  # cut here, but shown to u1 in ANOTHER request: excluded
            ("r1", "u1", "e", "retrieval", True, d(2)),
            ("r1", "u1", "e", "pre_rank", False, d(2)),  # cut, but u1 clicked e on another day: excluded
            ("r1", "u1", "s", "retrieval", True, d(2)),
            ("r1", "u1", "s", "pre_rank", True, d(2)),
            ("r1", "u1", "s", "rank", True, d(2)),  # passed everything: shown, never a negative
            ("r1", "u1", "x", "retrieval", False, d(2)),  # cut at retrieval: not a hard negative
            # r2 (user u2): c was shown to u1 only, so it is a fine negative for u2.
            ("r2", "u2", "c", "retrieval", True, d(2)),
            ("r2", "u2", "c", "pre_rank", False, d(2)),
            # r3: no click in the request -> not kept (training attaches negatives per request).
            ("r3", "u3", "a", "pre_rank", False, d(2)),
        ],
        RL_SCHEMA,
    )
    shown = spark.createDataFrame(
        [("u1", "s"), ("u1", "c"), ("u2", "z"), ("u3", "q")], "user_id string, item_id string"
    )
    clicked = spark.createDataFrame([("u1", "e"), ("u2", "z")], "user_id string, item_id string")
    requests = spark.createDataFrame([("r1",), ("r2",)], "request_id string")
    out = hard_negatives_from_ranking_log(rl, shown, clicked, requests, per_request=4, seed=1)
    expected = spark.createDataFrame(
        [
            ("r1", "u1", "a", d(2), "pre_rank", 1),
            ("r1", "u1", "b", d(2), "rank", 2),
            ("r2", "u2", "c", d(2), "pre_rank", 1),
        ],
        "request_id string, user_id string, item_id string, event_ds date, stage_cut string, difficulty int",
    )
    assertDataFrameEqual(out, expected)

    # Cap 1 keeps the harder negative (cut at rank) of r1.
    capped = hard_negatives_from_ranking_log(rl, shown, clicked, requests, per_request=1, seed=1)
    assert sorted((r.request_id, r.item_id) for r in capped.collect()) == [("r1", "b"), ("r2", "c")]

    # The check: empty on the output; finds a shown item when one is planted.
    impressions = spark.createDataFrame(
        [("u1", "s", False), ("u1", "c", False), ("u1", "e", True)],
        "user_id string, item_id string, clicked boolean",
    )
    assert shown_overlap(out, impressions).count() == 0
    assert clicked_overlap(out, clicked).count() == 0
    bad = out.unionByName(spark.createDataFrame([("r1", "u1", "c", d(2), "rank", 2)], out.schema))
    offending = shown_overlap(bad, impressions).collect()
    assert [(r.request_id, r.user_id, r.item_id) for r in offending] == [("r1", "u1", "c")]


@pytest.mark.spark
def test_hard_negative_cap_interleaves_difficulties_and_keeps_one_row_per_item(spark):
    from collections import Counter

    from etl.hard_negatives import hard_negatives_from_ranking_log

    rows = [
        # rA: four items cut at pre_rank (p1 logged twice; z also logged as cut at rank, which
        # breaks the funnel: the earlier cut wins), one cut at rank. n1 = 4, n2 = 1.
        ("rA", "uA", "p1", "pre_rank", False, d(2)),
        ("rA", "uA", "p1", "pre_rank", False, d(2)),
        ("rA", "uA", "p2", "pre_rank", False, d(2)),
        ("rA", "uA", "p3", "pre_rank", False, d(2)),
        ("rA", "uA", "z", "pre_rank", False, d(2)),
        ("rA", "uA", "z", "rank", False, d(2)),
        ("rA", "uA", "q1", "rank", False, d(2)),
        # rB: one item cut at pre_rank, three cut at rank. n1 = 1, n2 = 3.
        ("rB", "uB", "a1", "pre_rank", False, d(2)),
        ("rB", "uB", "b1", "rank", False, d(2)),
        ("rB", "uB", "b2", "rank", False, d(2)),
        ("rB", "uB", "b3", "rank", False, d(2)),
    ]
    rl = spark.createDataFrame(rows, RL_SCHEMA)
    nothing = spark.createDataFrame([("u0", "i0")], "user_id string, item_id string")
    requests = spark.createDataFrame([("rA",), ("rB",)], "request_id string")

    def kept(cap):
        out = hard_negatives_from_ranking_log(rl, nothing, nothing, requests, per_request=cap, seed=3)
        return out.collect()

    # The interleaved order is (rank-cut, pre_rank-cut) per level while both last:
    #   rA: d2, d1, d1, d1, d1        rB: d2, d1, d2, d2
    # so the kept counts per (request, difficulty) do not depend on the seeded order.
    expected = {
        1: {("rA", 2): 1, ("rB", 2): 1},
        2: {("rA", 2): 1, ("rA", 1): 1, ("rB", 2): 1, ("rB", 1): 1},
        3: {("rA", 2): 1, ("rA", 1): 2, ("rB", 2): 2, ("rB", 1): 1},
        10: {("rA", 2): 1, ("rA", 1): 4, ("rB", 2): 3, ("rB", 1): 1},
    }
    for cap, counts in expected.items():
        assert Counter((r.request_id, r.difficulty) for r in kept(cap)) == counts, cap
    everything = kept(10)
    assert sorted((r.request_id, r.item_id, r.stage_cut, r.difficulty) for r in everything) == [
        ("rA", "p1", "pre_rank", 1),
        ("rA", "p2", "pre_rank", 1),
        ("rA", "p3", "pre_rank", 1),
        ("rA", "q1", "rank", 2),
        ("rA", "z", "pre_rank", 1),
        ("rB", "a1", "pre_rank", 1),
        ("rB", "b1", "rank", 2),
        ("rB", "b2", "rank", 2),
        ("rB", "b3", "rank", 2),
    ]
    assert kept(0) == []


@pytest.mark.spark
def test_popularity_sampling_table_by_hand(spark):
    from etl.sampling import popularity_sampling_table, with_alias_table

    cat = spark.createDataFrame(
        [(1, "a", True), (2, "b", True), (3, "c", True), (4, "d", True), (5, "gone", False)],
        "item_idx long, item_id string, active boolean",
    )
    clicks = spark.createDataFrame(
        [("b", 1), ("c", 3), ("d", 7), ("gone", 50)], "item_id string, clicks long"
    )
    resampled = spark.createDataFrame(
        [("b", 2), ("c", 3), ("gone", 5)], "item_id string, clicks_resampled long"
    )
    table = with_alias_table(
        spark, popularity_sampling_table(cat, clicks, resampled, alpha=0.75, smoothing=1.0)
    )
    rows = {r.item_id: r for r in table.collect()}
    # (clicks + 1)^0.75: a 1, b 2^.75 = 1.681793, c 4^.75 = 2.828427, d 8^.75 = 4.756828; sum 10.267048.
    # The inactive item gets 0 whatever its clicks.
    expected = {"a": 0.097399, "b": 0.163805, "c": 0.275486, "d": 0.463310, "gone": 0.0}
    for item, p in expected.items():
        assert rows[item].neg_prob == pytest.approx(p, abs=1e-6), item
    # p_j in the resampled stream: 2, 3, 0, 0, 5 of 10.
    assert [rows[i].inbatch_prob for i in "abcd"] + [rows["gone"].inbatch_prob] == pytest.approx(
        [0, 0.2, 0.3, 0, 0.5]
    )
    assert rows["gone"].clicks == 50 and rows["a"].clicks == 0 and rows["b"].clicks_resampled == 2
    # The alias columns encode neg_prob (slot i = i-th item in item_idx order; alias holds item_idx).
    ordered = sorted(rows.values(), key=lambda r: r.item_idx)
    keep = np.array([r.alias_prob for r in ordered])
    alias_slot = np.array([r.alias_idx - 1 for r in ordered])  # item_idx 1..5 -> slot 0..4
    np.testing.assert_allclose(
        alias_probabilities(keep, alias_slot), [r.neg_prob for r in ordered], atol=1e-12
    )


@pytest.mark.spark
def test_vocabulary_ids_are_stable_across_days_and_reruns(spark):
    from pyspark.testing import assertDataFrameEqual

    from etl.vocab import extend_vocabulary

    obs = "vocab string, value string"
    vs = "vocab string, value string, id long, first_ds date"
    day1 = extend_vocabulary(
        None,
        spark.createDataFrame(
            [("item_id", "b"), ("item_id", "a"), ("user.region", "x"), ("item_id", "a")], obs
        ),
        "2026-11-01",
    )
    # Day 1: sorted values numbered from 1 per vocab (0 = OOV is never stored).
    expected1 = spark.createDataFrame(
        [("item_id", "a", 1, d(1)), ("item_id", "b", 2, d(1)), ("user.region", "x", 1, d(1))], vs
    )
    assertDataFrameEqual(day1, expected1)
    day2_obs = spark.createDataFrame(
        [("item_id", "c"), ("item_id", "a"), ("item_id", "0"), ("user.region", None)], obs
    )
    day2 = extend_vocabulary(day1, day2_obs, "2026-11-02")
    # "0" < "c" in value order: new ids 3 and 4 after the previous maximum 2; a and b keep 1 and 2.
    expected2 = expected1.unionByName(
        spark.createDataFrame([("item_id", "0", 3, d(2)), ("item_id", "c", 4, d(2))], vs)
    )
    assertDataFrameEqual(day2, expected2)
    # A rerun of day 2 from the same day-1 vocabulary gives the same ids.
    assertDataFrameEqual(extend_vocabulary(day1, day2_obs, "2026-11-02"), expected2)


@pytest.mark.spark
def test_freshness_counts_use_only_days_before_the_as_of_day(spark):
    from etl.features import freshness_counts

    counts = spark.createDataFrame(
        [("a", d(1), 5), ("a", d(7), 2), ("a", d(8), 100), ("b", d(8), 1)],
        "item_id string, event_ds date, n long",
    )
    out = {
        (r.item_id, str(r.as_of)): (r.clicks_1d, r.clicks_7d)
        for r in freshness_counts(counts, ["2026-11-08"]).collect()
    }
    # As of Nov 8: 1d = Nov 7 only (2); 7d = Nov 1..7 (5 + 2). Nov 8's own clicks never count.
    assert out == {("a", "2026-11-08"): (2, 7)}


@pytest.mark.spark
def test_example_history_never_contains_the_click_or_later_ones(spark):
    from etl.datasets import example_history

    pos = spark.createDataFrame(
        [
            ("r1", "u", "a", ts(1, 1)),
            ("r2", "u", "b", ts(1, 2)),
            ("r3", "u", "c", ts(1, 3)),
            ("r4", "v", "a", ts(1, 1)),
        ],
        "request_id string, user_id string, item_id string, ts timestamp",
    )
    ids = spark.createDataFrame([("a", 1), ("b", 2), ("c", 3)], "item_id string, item_idx long")
    hist = {(r.request_id, r.item_id): r.u_hist for r in example_history(pos, ids, 2).collect()}
    # Newest first, at most 2, strictly earlier clicks of the same user.
    assert hist == {("r1", "a"): [], ("r2", "b"): [1], ("r3", "c"): [2, 1], ("r4", "a"): []}


@pytest.mark.spark
def test_eval_examples_targets_exclude_training_clicks(spark):
    from etl.datasets import build_eval_examples

    ps = "user_id string, item_id string"
    eval_pos = spark.createDataFrame([("u1", "a"), ("u1", "b"), ("u2", "a"), ("u3", "c")], ps)
    train_pos = spark.createDataFrame([("u1", "a"), ("u1", "c"), ("u2", "a"), ("u4", "b")], ps)
    ids = spark.createDataFrame([("a", 1), ("b", 2), ("c", 3)], "item_id string, item_idx long")
    users = spark.createDataFrame(
        [("u1", 11, [3, 1], 2), ("u2", 12, [1], 1), ("u3", 13, [], 0), ("u4", 14, [2], 3)],
        "user_id string, user_idx long, u_hist array<long>, u_cat_region long",
    )
    out = {
        r.user_id: r for r in build_eval_examples(eval_pos, train_pos, ids, users, ["u_cat_region"]).collect()
    }
    # u1: clicked a, b on the eval day, a and c before -> target [b], exclude [a, c].
    # u2: re-clicked a only -> no new target, no row. u3: new user -> target [c], exclude [].
    assert sorted(out) == ["u1", "u3"]
    assert (out["u1"].target_idx, out["u1"].exclude_idx, out["u1"].u_hist) == ([2], [1, 3], [3, 1])
    assert (out["u3"].target_idx, out["u3"].exclude_idx, out["u3"].u_cat_region) == ([3], [], 0)


@pytest.mark.spark
def test_write_partitions_replaces_only_its_days_even_when_empty(spark, tmp_path):
    from core.context import RunContext
    from etl import io
    from tests.conftest import make_config

    ctx = RunContext.build(make_config(tmp_path), "2026-11-02")
    schema = "feature string, mean double, std double, ds string"
    first = spark.createDataFrame([("x", 1.0, 2.0, "2026-11-01"), ("y", 0.0, 1.0, "2026-11-02")], schema)
    io.write_partitions(first, ctx, "feature_stats", ["2026-11-01", "2026-11-02"])
    assert io.output_days(ctx, "feature_stats") == ["2026-11-01", "2026-11-02"]
    # Rerun of Nov 2 with no rows: the partition becomes empty (not stale), Nov 1 untouched.
    io.write_partitions(spark.createDataFrame([], schema), ctx, "feature_stats", ["2026-11-02"])
    assert io.read_output(spark, ctx, "feature_stats", "2026-11-02").count() == 0
    assert io.read_output(spark, ctx, "feature_stats", "2026-11-02").columns == ["feature", "mean", "std"]
    assert [r.feature for r in io.read_output(spark, ctx, "feature_stats", "2026-11-01").collect()] == ["x"]
    # No staging folders are left behind.
    leftovers = [
        p.name for p in ctx.layout.table_root("feature_stats").iterdir() if p.name.startswith(".")
    ]
    assert leftovers == []


@pytest.mark.spark
def test_raw_reader_drops_the_rows_quality_quarantines(spark, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from core.context import RunContext
    from core.errors import DataError
    from etl import io
    from storage.layout import Layout
    from tests.conftest import make_config

    cfg = make_config(tmp_path)
    part = Layout(cfg.paths).path_for("impressions", "2026-11-02")
    part.mkdir(parents=True)
    table = pa.table(
        {
            "request_id": ["r1", "r2", "r3", "r4"],
            "user_id": ["u1", None, "u3", "u4"],  # r2: null user id
            "item_id": ["a", "b", "c", "d"],
            "ts": pa.array(
                [ts(2, 1), ts(2, 2), ts(3, 0), ts(2, 23)], pa.timestamp("us", tz="UTC")
            ),  # r3: next day
            "position": pa.array([0, 1, 2, -1], pa.int32()),  # r4: negative position
            "clicked": [True, True, True, False],
        }
    )
    pq.write_table(table, part / "part-0.parquet")
    ctx = RunContext.build(cfg, "2026-11-02")
    df = io.read_raw(spark, ctx, "impressions", "2026-11-02")
    # Only r1 survives the quality row rules; optional contract columns read as null.
    assert [(r.request_id, r.liked, str(r.event_ds)) for r in df.collect()] == [("r1", None, "2026-11-02")]
    with pytest.raises(
        DataError, match=r"table users, partition ds=2026-11-02: required raw partition is missing"
    ):
        io.read_raw(spark, ctx, "users", "2026-11-02")


def test_every_etl_output_is_declared_by_exactly_one_stage():
    from contracts.outputs import ETL_OUTPUTS
    from etl.jobs import ETL_STAGES, STAGE_OUTPUTS

    assert tuple(STAGE_OUTPUTS) == ETL_STAGES
    declared = [t for tables in STAGE_OUTPUTS.values() for t in tables]
    assert sorted(declared) == sorted(ETL_OUTPUTS)


def test_every_stage_depends_only_on_stages_before_it():
    from etl.jobs import ETL_STAGES, STAGE_DEPENDENCIES

    assert tuple(STAGE_DEPENDENCIES) == ETL_STAGES
    for place, stage in enumerate(ETL_STAGES):
        assert set(STAGE_DEPENDENCIES[stage]) <= set(ETL_STAGES[:place]), stage


def test_row_counts_lists_only_integer_counts():
    from etl.jobs import row_counts

    stats = {"rows": 1204, "upsampled_rows": 31, "users": 9, "alpha": 0.75, "flag": True, "train_days_missing": []}
    assert row_counts(stats) == "rows=1,204 upsampled_rows=31 users=9"
    assert row_counts({"shown_overlap_rows": True, "vocabs": {}}) == "no row counts"


def test_row_counts_read_a_stage_result_like_its_json():
    from core.results.etl import HardNegativesResult
    from etl.jobs import row_counts

    result = HardNegativesResult(stage="hard_negatives", ds="2026-11-03", seconds=2.5, rows=40, requests=12)
    assert row_counts(result) == row_counts(result.to_dict()) == "rows=40 requests=12"


def test_every_stage_has_a_result_class_whose_json_reads_back():
    from core.results.etl import (
        STAGE_RESULTS,
        CatalogueChange,
        FeaturesResult,
        FeatureStat,
        VocabSize,
        VocabularyResult,
    )
    from etl.jobs import ETL_STAGES

    assert tuple(STAGE_RESULTS) == ETL_STAGES
    vocab = VocabularyResult(stage="vocabulary", window=("2026-11-02", "2026-11-03"), rows=3, vocabs={"item": VocabSize(3, 1, 3)})
    assert vocab.to_dict()["vocabs"] == {"item": {"size": 3, "new": 1, "max_id": 3}}
    assert vocab.to_dict()["window"] == ["2026-11-02", "2026-11-03"]
    assert VocabularyResult.from_dict(vocab.to_dict()).vocabs == vocab.vocabs
    features = FeaturesResult(catalogue=CatalogueChange(rule="carried forward", size=5), feature_stats={"u_num_age": FeatureStat(1.0, 2.0)})
    back = FeaturesResult.from_dict(features.to_dict())
    assert back.catalogue == features.catalogue and back.feature_stats == features.feature_stats


def test_hard_negative_counts_not_measured_are_left_out_of_the_json():
    from core.results.etl import HardNegativesResult

    # No ranking log: no request count; verification off: no overlap count.
    assert {"requests", "shown_overlap_rows"}.isdisjoint(HardNegativesResult(rows=0).to_dict())
    measured = HardNegativesResult(rows=3, requests=2, shown_overlap_rows=0).to_dict()
    assert (measured["requests"], measured["shown_overlap_rows"]) == (2, 0)
