"""All ETL stages on the simulator's ``tiny`` preset, checked against pandas computations made
directly from the raw Parquet (an independent reference), plus rerun and next-day behaviour."""

from __future__ import annotations

import shutil

import pandas as pd
import pyarrow.dataset as pads
import pytest

from contracts.outputs import ETL_OUTPUTS
from storage.layout import Layout
from tests.conftest import make_config

pytestmark = [pytest.mark.spark, pytest.mark.slow]

START, D, NEXT = "2026-11-01", "2026-11-03", "2026-11-04"
TRAIN_DAYS, EVAL_DAY = ["2026-11-01", "2026-11-02"], "2026-11-03"


def _raw(cfg, table: str, days: list[str]) -> pd.DataFrame:
    frames = []
    for day in days:
        df = (
            pads.dataset(str(Layout(cfg.paths).path_for(table, day)), format="parquet").to_table().to_pandas()
        )
        frames.append(df.assign(day=day))
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def etl_run(spark, tmp_path_factory):
    import logsim
    from core.context import RunContext
    from etl.jobs import run_etl

    root = tmp_path_factory.mktemp("etl_tiny")
    # The stage's own overlap proof is on here (off by default: the outputs gate is the check),
    # so its statistic is compared with the independent reference below.
    cfg = make_config(root, etl={"window_days": 3, "eval_days": 1, "hot_threshold": 100, "verify_hard_negatives": True})
    logsim.simulate(cfg, "tiny", START, 4, 7)
    stats = {stage: r.to_dict() for stage, r in run_etl(RunContext.build(cfg, D), spark).items()}
    return cfg, stats


def _read(spark, cfg, table, ds=D):
    from core.context import RunContext
    from etl import io

    return io.read_output(spark, RunContext.build(cfg, ds), table, ds)


def test_every_contract_output_is_written_with_its_columns(spark, etl_run):
    from contracts.outputs import ITEM_CAT_PREFIX, ITEM_NUM_PREFIX, USER_CAT_PREFIX, USER_NUM_PREFIX

    cfg, stats = etl_run
    prefixes = (USER_CAT_PREFIX, USER_NUM_PREFIX, ITEM_CAT_PREFIX, ITEM_NUM_PREFIX)
    for name, table in ETL_OUTPUTS.items():
        df = _read(spark, cfg, name)
        contract = {f.name: f.dataType for f in table.spark_schema().fields}
        got = {f.name: f.dataType for f in df.schema.fields}
        for col, typ in contract.items():
            assert col in got, f"{name}: missing column {col}"
            assert got[col].simpleString() == typ.simpleString(), f"{name}.{col}: {got[col]} != {typ}"
        extra = [c for c in got if c not in contract]
        assert all(c.startswith(prefixes) for c in extra), f"{name}: unexpected columns {extra}"
        assert df.count() > 0 or name == "hard_negatives", f"{name} is empty"
    cat = _read(spark, cfg, "item_catalogue")
    assert {"i_num_age_days", "i_num_clicks_1d", "i_num_clicks_7d", "i_cat_category", "i_num_quality"} <= set(
        cat.columns
    )
    assert (
        stats["resampled_positives"]["distribution_after"]["top1pct_share"]
        < stats["resampled_positives"]["distribution_before"]["top1pct_share"]
    )
    assert stats["hard_negatives"]["ranking_log_present"] is True
    assert set(stats["hard_negatives"]["by_difficulty"]) == {"1", "2"}


def test_click_positives_match_raw_clicks(spark, etl_run):
    cfg, _ = etl_run
    imp = _raw(cfg, "impressions", [D])
    expected = imp[imp.clicked][["request_id", "item_id"]].drop_duplicates()
    got = _read(spark, cfg, "click_positives").select("request_id", "item_id").toPandas()
    assert len(got) == len(expected)
    assert set(map(tuple, got.values)) == set(map(tuple, expected.values))


def test_progress_lines_number_the_stage_and_give_its_row_count(spark, etl_run, caplog):
    import logging

    from core.context import RunContext
    from etl.jobs import ETL_STAGES, run_stage

    cfg, _ = etl_run
    imp = _raw(cfg, "impressions", [D])
    clicks = len(imp[imp.clicked][["request_id", "item_id"]].drop_duplicates())
    with caplog.at_level(logging.INFO, logger="etl.jobs"):
        run_stage(RunContext.build(cfg, D), spark, "click_positives")  # a rerun: same outputs
    lines = [r.getMessage() for r in caplog.records if r.name == "etl.jobs"]
    n = len(ETL_STAGES)
    assert f"ETL stage 1/{n} click_positives for ds={D} started (3-day window)" in lines
    done = [line for line in lines if line.startswith(f"ETL stage 1/{n} click_positives for ds={D} done in ")]
    assert len(done) == 1 and done[0].endswith(f": rows={clicks:,}"), done


def test_item_day_features_hold_every_item_per_training_day_as_of_that_day(spark, etl_run):
    # Reference from the raw impressions: clicks_1d of item i as of day t = distinct clicked
    # (request, i) on day t-1, as log1p, standardised with the day's feature_stats.
    import numpy as np

    cfg, _ = etl_run
    got = _read(spark, cfg, "item_day_features").toPandas()
    cat = _read(spark, cfg, "item_catalogue").select("item_idx", "item_id").toPandas()
    assert len(got) == len(cat) * len(TRAIN_DAYS)
    assert not got.duplicated(["item_idx", "event_ds"]).any()
    assert sorted(set(got["event_ds"].astype(str))) == TRAIN_DAYS
    stats = _read(spark, cfg, "feature_stats").toPandas().set_index("feature")
    mean, std = stats.loc["i_num_clicks_1d", "mean"], stats.loc["i_num_clicks_1d", "std"]
    imp = _raw(cfg, "impressions", ["2026-11-01"])
    clicks = imp[imp.clicked][["request_id", "item_id"]].drop_duplicates().groupby("item_id").size()
    as_of = {"2026-11-01": pd.Series(dtype=float), "2026-11-02": clicks}  # nothing before 11-01
    for day, prev in as_of.items():
        rows = got[got["event_ds"].astype(str) == day].merge(cat, on="item_idx")
        n = rows["item_id"].map(prev).fillna(0).to_numpy(dtype=float)
        np.testing.assert_allclose(rows["i_num_clicks_1d"], (np.log1p(n) - mean) / std, rtol=1e-5, atol=1e-6)
    # A positive's features (train_examples) and the same item's row for that day agree: the
    # negatives training draws are seen as of the same day as the positives.
    pos = _read(spark, cfg, "train_examples").select("item_idx", "event_ds", "i_num_clicks_1d", "i_num_clicks_7d", "i_num_age_days").distinct().toPandas()
    both = pos.merge(got, on=["item_idx", "event_ds"], suffixes=("_pos", "_day"))
    assert len(both) == len(pos)
    for c in ("i_num_clicks_1d", "i_num_clicks_7d", "i_num_age_days"):
        np.testing.assert_allclose(both[c + "_pos"], both[c + "_day"], rtol=1e-6)


def test_eval_set_is_strictly_held_out(spark, etl_run):
    cfg, _ = etl_run
    imp = _raw(cfg, "impressions", TRAIN_DAYS + [EVAL_DAY])
    clicks = imp[imp.clicked]
    train = clicks[clicks.day.isin(TRAIN_DAYS)].groupby("user_id").item_id.agg(set).to_dict()
    evald = clicks[clicks.day == EVAL_DAY].groupby("user_id").item_id.agg(set).to_dict()
    ids = _read(spark, cfg, "item_catalogue").select("item_idx", "item_id").toPandas()
    name = dict(zip(ids.item_idx, ids.item_id, strict=True))
    rows = _read(spark, cfg, "eval_examples").toPandas()
    expected_users = {u for u, items in evald.items() if items - train.get(u, set())}
    assert set(rows.user_id) == expected_users
    for r in rows.itertuples():
        targets = {name[i] for i in r.target_idx}
        excluded = {name[i] for i in r.exclude_idx}
        assert targets == evald[r.user_id] - train.get(r.user_id, set())
        assert excluded == train.get(r.user_id, set())
        assert not targets & excluded
    # Training never sees the evaluation day: not as examples, not in histories or user features.
    tr = _read(spark, cfg, "train_examples")
    assert {str(r.event_ds) for r in tr.select("event_ds").distinct().collect()} <= set(TRAIN_DAYS)
    eval_pairs = {(u, i) for u, items in evald.items() for i in items - train.get(u, set())}
    uf = _read(spark, cfg, "user_features").select("user_id", "u_hist").toPandas()
    for r in uf.itertuples():
        assert all(name[i] in train.get(r.user_id, set()) for i in r.u_hist), r.user_id
    users = _read(spark, cfg, "user_features").select("user_idx", "user_id").toPandas()
    uname = dict(zip(users.user_idx, users.user_id, strict=True))
    pairs = {
        (uname[u], name[i]) for u, i in tr.select("user_idx", "item_idx").toPandas().itertuples(index=False)
    }
    assert not pairs & eval_pairs


def test_final_examples_are_the_evaluation_days_clicks_with_backward_histories(spark, etl_run):
    # Reference from the raw impressions: day D's distinct clicked (request, item) pairs of users
    # that have user features, one row each (no resampling), weight 1.0; the
    # history holds only items the user clicked before; hard negatives only from D's requests.
    cfg, _ = etl_run
    imp = _raw(cfg, "impressions", TRAIN_DAYS + [EVAL_DAY])
    clicks = imp[imp.clicked].drop_duplicates(["request_id", "item_id"])
    users = _read(spark, cfg, "user_features").select("user_idx", "user_id").toPandas()
    uname = dict(zip(users.user_idx, users.user_id, strict=True))
    ids = _read(spark, cfg, "item_catalogue").select("item_idx", "item_id").toPandas()
    name = dict(zip(ids.item_idx, ids.item_id, strict=True))
    day = clicks[(clicks.day == EVAL_DAY) & clicks.user_id.isin(set(users.user_id))]

    fin = _read(spark, cfg, "final_examples").toPandas()
    assert len(fin) == len(day) > 0
    got = sorted((uname[u], name[i]) for u, i in zip(fin.user_idx, fin.item_idx, strict=True))
    assert got == sorted(zip(day.user_id, day.item_id, strict=True))
    assert set(fin.event_ds.astype(str)) == {EVAL_DAY}
    assert (fin.weight == 1.0).all()  # positive_weight "constant"
    clicked = clicks.groupby("user_id").item_id.agg(set).to_dict()
    assert any(len(h) for h in fin.u_hist)
    for r in fin.itertuples():
        assert {name[i] for i in r.u_hist} <= clicked[uname[r.user_idx]]
    hn = _read(spark, cfg, "hard_negatives").toPandas()
    day_hard = set(hn[hn.event_ds.astype(str) == EVAL_DAY].item_id)
    assert all(name[i] in day_hard for h in fin.hard_neg_idx for i in h)
    assert any(len(h) for h in fin.hard_neg_idx)


def test_serving_user_features_history_includes_the_evaluation_day(spark, etl_run):
    # Reference from the raw impressions: a user with at most history_length clicks in the
    # window has exactly those clicked items (a multiset: one per distinct clicked request/item)
    # in the serving history, day D's included; user_features (training) stops before D.
    cfg, _ = etl_run
    h = cfg.features.history_length
    imp = _raw(cfg, "impressions", TRAIN_DAYS + [EVAL_DAY])
    clicks = imp[imp.clicked].drop_duplicates(["request_id", "item_id"])
    ids = _read(spark, cfg, "item_catalogue").select("item_idx", "item_id").toPandas()
    name = dict(zip(ids.item_idx, ids.item_id, strict=True))
    serving = _read(spark, cfg, "serving_user_features").select("user_id", "u_hist").toPandas()
    per_user = clicks.groupby("user_id").item_id.agg(sorted).to_dict()
    checked = with_eval_day = 0
    for r in serving.itertuples():
        items = per_user.get(r.user_id, [])
        if len(items) <= h:
            assert sorted(name[i] for i in r.u_hist) == items, r.user_id
            checked += 1
            with_eval_day += bool(set(clicks[(clicks.user_id == r.user_id) & (clicks.day == EVAL_DAY)].item_id))
    assert checked > 0 and with_eval_day > 0
    assert _read(spark, cfg, "serving_user_features").count() == _read(spark, cfg, "user_features").count()


def test_hard_negatives_were_never_shown_to_the_user(spark, etl_run):
    from etl.hard_negatives import shown_overlap

    cfg, stats = etl_run
    hn = _read(spark, cfg, "hard_negatives").toPandas()
    assert len(hn) > 0 and stats["hard_negatives"]["shown_overlap_rows"] == 0
    imp = _raw(cfg, "impressions", TRAIN_DAYS + [EVAL_DAY])
    shown = set(zip(imp.user_id, imp.item_id, strict=True))
    assert not [p for p in zip(hn.user_id, hn.item_id, strict=True) if p in shown]
    assert hn.groupby("request_id").size().max() <= cfg.etl.hard_negatives_per_request
    # The window's requests: the training days' feed train_examples, day D's final_examples.
    assert set(hn.event_ds.astype(str)) == set(TRAIN_DAYS + [EVAL_DAY])
    # The shipped check agrees (Spark, exact strings).
    impressions = spark.createDataFrame(imp[["user_id", "item_id", "clicked"]])
    assert shown_overlap(_read(spark, cfg, "hard_negatives"), impressions).count() == 0


def test_rerun_gives_identical_outputs_and_next_day_keeps_vocabulary_ids(spark, etl_run):
    from pyspark.sql import functions as F
    from pyspark.testing import assertDataFrameEqual

    from core.context import RunContext
    from etl.jobs import run_etl, run_stage

    def row_bits(name: str) -> list[int]:
        # xxhash64 of every column's value bits: equal lists = bit-identical rows (any float
        # differing in its last bit changes the hash), independent of file and row order.
        df = _read(spark, cfg, name)
        return sorted(r[0] for r in df.select(F.xxhash64(*df.columns)).collect())

    cfg, _ = etl_run
    before = {name: _read(spark, cfg, name).toPandas() for name in ETL_OUTPUTS}
    bits = {name: row_bits(name) for name in ETL_OUTPUTS}
    run_etl(RunContext.build(cfg, D), spark)
    for name in ETL_OUTPUTS:
        after = _read(spark, cfg, name)
        assertDataFrameEqual(
            after, spark.createDataFrame(before[name], schema=after.schema), checkRowOrder=False
        )
        assert row_bits(name) == bits[name], f"{name}: a rerun changed some value's bits"
    # Day D+1 extends day D's vocabulary: every (vocab, value) keeps its id; new ids follow the max.
    run_stage(RunContext.build(cfg, NEXT), spark, "click_positives")
    run_stage(RunContext.build(cfg, NEXT), spark, "vocabulary")
    old = before["vocabulary"].set_index(["vocab", "value"])
    new = _read(spark, cfg, "vocabulary", NEXT).toPandas().set_index(["vocab", "value"])
    assert (new.loc[old.index, "id"] == old["id"]).all()
    added = new.drop(index=old.index)
    assert len(added) > 0  # tiny adds 17 items a day
    for vocab, group in added.groupby(level="vocab"):
        assert group["id"].min() == old.loc[vocab, "id"].max() + 1
        assert sorted(group["id"]) == list(range(group["id"].min(), group["id"].max() + 1))


def test_missing_ranking_log_gives_empty_hard_negatives_and_missing_impressions_fail(spark, tmp_path):
    import logsim
    from core.context import RunContext
    from core.errors import DataError
    from etl.jobs import run_stage

    cfg = make_config(tmp_path, etl={"window_days": 2})
    logsim.simulate(cfg, "tiny", START, 2, 3)
    shutil.rmtree(Layout(cfg.paths).table_root("ranking_log"))
    ctx = RunContext.build(cfg, "2026-11-02")
    run_stage(ctx, spark, "click_positives")
    stats = run_stage(ctx, spark, "hard_negatives").to_dict()
    assert stats["ranking_log_present"] is False and stats["rows"] == 0
    empty = _read(spark, cfg, "hard_negatives", "2026-11-02")
    assert empty.count() == 0 and "difficulty" in empty.columns
    with pytest.raises(DataError, match=r"table impressions, partition ds=2026-11-05"):
        run_stage(RunContext.build(cfg, "2026-11-05"), spark, "click_positives")
