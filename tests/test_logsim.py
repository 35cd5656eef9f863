"""Simulator: determinism, contract conformance, funnel consistency, heavy tail, truth (tiny preset)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from contracts.schemas import RANKING_STAGES, raw_tables
from core.errors import UserError
from logsim.engine import simulate
from logsim.presets import PRESETS
from logsim.truth import Truth
from storage.layout import Layout
from tests.conftest import make_config

START = "2026-11-01"
DAYS = ("2026-11-01", "2026-11-02", "2026-11-03")
TABLES = ("impressions", "ranking_log", "users", "items")


def read(cfg, table: str, ds: str) -> pd.DataFrame:
    return pq.read_table(Layout(cfg.paths).path_for(table, ds)).to_pandas()


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """Three tiny days simulated once for the module: (cfg, stats)."""
    cfg = make_config(tmp_path_factory.mktemp("sim"))
    stats = simulate(cfg, "tiny", START, 3, seed=7)
    return cfg, stats


def test_writes_all_tables_for_every_day(sim):
    cfg, stats = sim
    layout = Layout(cfg.paths)
    for table in TABLES:
        assert layout.partitions(table) == list(DAYS)
    assert [d["ds"] for d in stats["per_day"]] == list(DAYS)
    tiny = PRESETS["tiny"]
    # Volume near the preset's ~20k impressions/day (requests vary +-8% by weekday).
    for d in stats["per_day"]:
        assert 0.9 * tiny.impressions_per_day <= d["impressions"] <= 1.1 * tiny.impressions_per_day
        # At most 2 * 30 + 20 = 80 funnel rows per 10 shown items: <= 8 per impression.
        assert d["ranking_log"] <= 8 * d["impressions"]


def test_schemas_match_the_contract(sim):
    cfg, _ = sim
    contract = raw_tables(cfg.features)
    layout = Layout(cfg.paths)
    present = {"impressions": ["liked", "dwell_ms"], "ranking_log": [], "users": [], "items": ["created_at"]}
    for table in TABLES:
        for ds in DAYS:
            schema = pq.read_schema(next(layout.path_for(table, ds).glob("*.parquet")))
            expected = contract[table].arrow_schema(present=present[table])
            assert schema.equals(expected), f"{table} {ds}: {schema} != {expected}"
            df = read(cfg, table, ds)
            for col in contract[table].columns:
                if col.name in df.columns and not col.nullable:
                    assert df[col.name].notna().all(), f"{table}.{col.name} has nulls"
            key = list(contract[table].unique)
            assert not df.duplicated(key).any(), f"{table} {ds}: duplicate {key}"


def test_timestamps_inside_the_partition_day(sim):
    cfg, _ = sim
    for ds in DAYS:
        for table in ("impressions", "ranking_log"):
            day = read(cfg, table, ds)["ts"].dt.floor("D")
            assert (day == pd.Timestamp(ds, tz="UTC")).all()
        items = read(cfg, "items", ds)
        # Items are published before the day they appear in (created_at <= day start).
        assert (items["created_at"] <= pd.Timestamp(ds, tz="UTC")).all()


def test_funnel_is_consistent(sim):
    cfg, _ = sim
    ds = DAYS[1]
    imp = read(cfg, "impressions", ds)
    rl = read(cfg, "ranking_log", ds)
    assert set(rl["stage"]) == set(RANKING_STAGES)
    key = ["request_id", "item_id"]
    retrieval = rl[rl.stage == "retrieval"]
    pre = rl[rl.stage == "pre_rank"]
    rank = rl[rl.stage == "rank"]
    # Anything that reached pre_rank has a passed retrieval row; anything at rank passed pre_rank.
    assert set(map(tuple, pre[key].values)) <= set(map(tuple, retrieval[retrieval.passed][key].values))
    assert set(map(tuple, rank[key].values)) == set(map(tuple, pre[pre.passed][key].values))
    # Shown items are exactly the rank survivors.
    assert set(map(tuple, imp[key].values)) == set(map(tuple, rank[rank.passed][key].values))
    # Hard negatives exist at both cut stages.
    assert (~pre.passed).sum() > 0 and (~rank.passed).sum() > 0
    # 10 shown per request at positions 0..9 (pre_rank keeps 20 >= 10 valid candidates always).
    per_request = imp.groupby("request_id")["position"].agg(["count", "min", "max", "nunique"])
    assert (per_request["count"] == 10).all() and (per_request["min"] == 0).all()
    assert (per_request["max"] == 9).all() and (per_request["nunique"] == 10).all()
    # Engagement only on clicks.
    assert not (imp.liked & ~imp.clicked).any()
    assert imp.loc[~imp.clicked, "dwell_ms"].isna().all() and imp.loc[imp.clicked, "dwell_ms"].notna().all()
    assert 0.01 < imp.clicked.mean() < 0.3


def test_cut_items_are_worse_by_the_truth(sim):
    """Hard negatives carry signal: items cut at each stage have lower true propensity."""
    cfg, _ = sim
    truth = Truth.load(Layout(cfg.paths))
    rl = read(cfg, "ranking_log", DAYS[0])
    imp = read(cfg, "impressions", DAYS[0])

    def true_p(df: pd.DataFrame) -> np.ndarray:
        users, items = pd.Index(df.user_id.unique()), pd.Index(df.item_id.unique())
        s = truth.scores(users, items)
        return s[users.get_indexer(df.user_id), items.get_indexer(df.item_id)]

    for stage in ("pre_rank", "rank"):
        rows = rl[rl.stage == stage]
        p = true_p(rows)
        passed, cut = p[rows.passed.to_numpy()].mean(), p[~rows.passed.to_numpy()].mean()
        assert passed > 1.3 * cut, (stage, passed, cut)
    p = true_p(imp)
    assert p[imp.clicked.to_numpy()].mean() > 1.3 * p[~imp.clicked.to_numpy()].mean()


def test_popularity_tail_is_heavy_and_catalogue_turns_over(sim):
    cfg, stats = sim
    clicks = pd.concat([read(cfg, "impressions", ds) for ds in DAYS])
    clicks = clicks[clicks.clicked]
    items = pd.Index(sorted(set().union(*(set(read(cfg, "items", ds).item_id) for ds in DAYS))))
    per_item = clicks.item_id.value_counts().reindex(items, fill_value=0).sort_values(ascending=False)
    top = math.ceil(0.01 * len(items))
    share = per_item.iloc[:top].sum() / per_item.sum()
    # Uniform clicks would give the top 1% of items about 1% of clicks; the tail is planted heavy.
    assert share > 0.15, share
    assert share == pytest.approx(stats["top1pct_click_share"])
    day1, day2 = (set(read(cfg, "items", ds).item_id) for ds in DAYS[:2])
    assert len(day2 - day1) == PRESETS["tiny"].new_items_per_day  # a block of new (cold) items a day
    assert len(day1 - day2) == PRESETS["tiny"].new_items_per_day  # and the oldest block retires


def test_truth_covers_every_id_and_load_is_none_without_it(sim, tmp_path):
    cfg, _ = sim
    layout = Layout(cfg.paths)
    truth = Truth.load(layout)
    assert truth is not None
    users, items = set(), set()
    for ds in DAYS:
        for table in ("impressions", "ranking_log", "users", "items"):
            df = read(cfg, table, ds)
            if "user_id" in df:
                users |= set(df.user_id)
            if "item_id" in df:
                items |= set(df.item_id)
    assert users <= set(truth.user_ids) and items <= set(truth.item_ids)
    s = truth.scores(sorted(users)[:7], sorted(items)[:5])
    assert s.shape == (7, 5) and ((s > 0) & (s < 1)).all()
    with pytest.raises(KeyError, match="not in the simulator's truth"):
        truth.scores(["nobody"], sorted(items)[:1])
    assert Truth.load(Layout(make_config(tmp_path).paths)) is None


def test_oracle_beats_popularity_on_a_held_out_day(sim):
    """The planted truth drives clicks: ranking by it finds more held-out clicks than popularity."""
    cfg, _ = sim
    truth = Truth.load(Layout(cfg.paths))
    train = pd.concat([read(cfg, "impressions", ds) for ds in DAYS[:2]])
    held = read(cfg, "impressions", DAYS[2])
    held = held[held.clicked]
    catalogue = pd.Index(read(cfg, "items", DAYS[2]).item_id)
    popularity = train[train.clicked].item_id.value_counts().reindex(catalogue, fill_value=0).to_numpy()
    users = pd.Index(held.user_id.unique())
    oracle = truth.scores(users, catalogue)
    k = 20
    top_pop = set(catalogue[np.argsort(-popularity, kind="stable")[:k]])
    top_oracle = catalogue.to_numpy()[np.argsort(-oracle, axis=1)[:, :k]]
    hits_pop = held.item_id.isin(top_pop).mean()
    oracle_sets = {u: set(top_oracle[i]) for i, u in enumerate(users)}
    hits_oracle = np.mean([item in oracle_sets[u] for u, item in zip(held.user_id, held.item_id, strict=True)])
    assert hits_oracle > hits_pop + 0.05, (hits_oracle, hits_pop)


def test_deterministic_and_day_independent(sim, tmp_path):
    cfg, _ = sim
    # The last day alone, in a fresh root, gives identical rows to the 3-day run.
    other = make_config(tmp_path)
    simulate(other, "tiny", DAYS[2], 1, seed=7)
    for table in TABLES:
        a, b = read(cfg, table, DAYS[2]), read(other, table, DAYS[2])
        pd.testing.assert_frame_equal(a, b)
    # Another seed gives other rows.
    third = make_config(tmp_path / "seed8")
    simulate(third, "tiny", DAYS[2], 1, seed=8)
    assert not read(third, "impressions", DAYS[2]).equals(read(cfg, "impressions", DAYS[2]))


def test_rerun_overwrites_the_day(tmp_path):
    cfg = make_config(tmp_path)
    first = simulate(cfg, "tiny", DAYS[0], 1, seed=3)
    second = simulate(cfg, "tiny", DAYS[0], 1, seed=3)
    layout = Layout(cfg.paths)
    assert len(read(cfg, "impressions", DAYS[0])) == first["totals"]["impressions"] == second["totals"]["impressions"]
    for table in TABLES:
        leftovers = [p.name for p in layout.table_root(table).iterdir() if not p.name.startswith("ds=")]
        assert leftovers == []


def test_refuses_to_mix_worlds_and_unknown_features(tmp_path):
    cfg = make_config(tmp_path)
    simulate(cfg, "tiny", DAYS[0], 1, seed=3)
    with pytest.raises(UserError, match="different simulated world"):
        simulate(cfg, "tiny", DAYS[1], 1, seed=4)
    odd = make_config(tmp_path / "odd", features={"user_categorical": ["country"]})
    with pytest.raises(UserError, match="country"):
        simulate(odd, "tiny", DAYS[0], 1, seed=3)
    with pytest.raises(UserError, match="unknown simulator preset"):
        simulate(cfg, "huge", DAYS[0], 1, seed=3)


def test_cli_prints_the_summary(tmp_path: Path, monkeypatch, capsys):
    from twotower.cli import main

    monkeypatch.setenv("TWOTOWER_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)  # no twotower.toml here: built-in defaults + the override
    assert main(["simulate", "--preset", "tiny", "--start", START, "--days", "2", "--seed", "5"]) == 0
    out = capsys.readouterr().out
    assert "top-1% items take" in out and "CTR" in out and "pre_rank" in out
    assert Layout(make_config(tmp_path).paths).partitions("impressions") == list(DAYS[:2])


def test_features_are_noisy_functions_of_the_latents(sim):
    """Feature towers have something to learn: same-category items / same-region users are closer
    in the planted space, and quality tracks the planted popularity."""
    cfg, _ = sim
    truth = Truth.load(Layout(cfg.paths))
    items = read(cfg, "items", DAYS[0]).set_index("item_id")
    users = read(cfg, "users", DAYS[0]).set_index("user_id")
    iv = truth.item_latent[pd.Index(truth.item_ids).get_indexer(items.index)]
    uv = truth.user_latent[pd.Index(truth.user_ids).get_indexer(users.index)]
    pop = truth.item_pop[pd.Index(truth.item_ids).get_indexer(items.index)]

    def within_minus_across(latent: np.ndarray, labels: pd.Series) -> float:
        sim_ = latent @ latent.T  # unit vectors: cosine similarity
        same = labels.to_numpy()[:, None] == labels.to_numpy()[None, :]
        off_diag = ~np.eye(len(labels), dtype=bool)
        return sim_[same & off_diag].mean() - sim_[~same].mean()

    assert within_minus_across(iv, items.category) > 0.3
    assert within_minus_across(iv, items.subcategory) > within_minus_across(iv, items.category)
    assert within_minus_across(uv, users.region) > 0.05
    assert np.corrcoef(items.quality, pop)[0, 1] > 0.5
