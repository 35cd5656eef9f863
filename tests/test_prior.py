"""The popularity prior of the served score (training.prior): the blended score, the rule that
picks beta from earlier days' records, the distinct-user counts, and the index / query tower /
reference client that must rank by the same blended score. Expected values by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.context import RunContext
from indexing import artifacts as art
from indexing.builder import IndexSpec, build_index, prior_item_vectors, prior_queries
from indexing.publish import publish_day
from indexing.query import recommend
from indexing.staging import build_index_for_day
from storage.layout import Layout
from tests.conftest import make_config
from tests.test_index_support import make_candidate, metrics_evaluator
from training.data import distinct_click_users
from training.prior import (
    GridRecord,
    blended_scores,
    choose_beta,
    index_prior,
    prior_term,
    record_from_metrics,
)
from training.prior_context import prior_context, prior_record_days

D0, D1 = "2026-10-31", "2026-11-01"


# -- the score ---------------------------------------------------------------------------------


def test_blended_score_by_hand():
    # cos [[0.5, 0.2]], tau 0.5, beta 1, counts [0, 3]:
    #   item 0: 0.5 / 0.5 + 1 * log(1 + 0) = 1.0
    #   item 1: 0.2 / 0.5 + 1 * log(1 + 3) = 0.4 + 1.3862944 = 1.7862944  -> the prior flips the order
    got = blended_scores(np.array([[0.5, 0.2]]), np.array([0.0, 3.0]), beta=1.0, temperature=0.5)
    np.testing.assert_allclose(got, [[1.0, 1.7862944]], rtol=1e-7)
    # beta 0 is the model alone: cos / tau = [1.0, 0.4]
    np.testing.assert_allclose(blended_scores(np.array([[0.5, 0.2]]), np.array([0.0, 3.0]), 0.0, 0.5), [[1.0, 0.4]])
    # prior term alone: 2 * log(1 + 7) = 2 * 2.0794415 = 4.1588831
    np.testing.assert_allclose(prior_term(np.array([7.0]), 2.0), [4.1588831], rtol=1e-7)


def test_blended_score_refuses_bad_inputs():
    with pytest.raises(ValueError, match="temperature must be > 0"):
        blended_scores(np.zeros((1, 2)), np.zeros(2), 1.0, 0.0)
    with pytest.raises(ValueError, match="click counts must be >= 0"):
        prior_term(np.array([1.0, -1.0]), 1.0)


# -- the choice rule -------------------------------------------------------------------------


def test_choose_beta_pools_days_weighted_by_users():
    # day A, 10 users: beta 0 -> 0.20, 1 -> 0.30, 2 -> 0.25
    # day B, 30 users: beta 0 -> 0.40, 1 -> 0.30, 2 -> 0.36
    # pooled (users-weighted): beta 0 (2 + 12) / 40 = 0.35; beta 1 (3 + 9) / 40 = 0.30;
    #                          beta 2 (2.5 + 10.8) / 40 = 0.3325                  -> beta 0
    # (an unweighted mean of the days would give 0.30 / 0.30 / 0.305 and pick beta 2)
    records = [
        GridRecord("2026-10-30", 10, {0.0: 0.20, 1.0: 0.30, 2.0: 0.25}),
        GridRecord("2026-10-31", 30, {0.0: 0.40, 1.0: 0.30, 2.0: 0.36}),
    ]
    choice = choose_beta(records, (0.0, 1.0, 2.0))
    assert choice.beta == 0.0
    assert choice.chosen_on == ("2026-10-30", "2026-10-31") and choice.users == 40
    assert choice.pooled == pytest.approx({0.0: 0.35, 1.0: 0.30, 2.0: 0.3325})


def test_choose_beta_ties_missing_betas_and_no_record():
    # beta 1 and 2 tie at 0.5 (both above beta 0's 0.4): the smaller beta wins
    tie = [GridRecord("2026-10-31", 5, {0.0: 0.4, 1.0: 0.5, 2.0: 0.5})]
    assert choose_beta(tie, (0.0, 1.0, 2.0)).beta == 1.0
    # beta 4 is missing from one record, so it cannot compete even though it is best where present
    partial = [GridRecord("2026-10-30", 5, {0.0: 0.1, 4.0: 0.9}), GridRecord("2026-10-31", 5, {0.0: 0.1, 1.0: 0.2, 4.0: 0.9})]
    assert choose_beta(partial, (0.0, 1.0, 4.0)).beta == 4.0  # 4 is in both; 1 is not
    assert choose_beta([GridRecord("2026-10-30", 5, {0.0: 0.1})] + partial[1:], (0.0, 1.0, 4.0)).beta == 0.0
    # no record, or only records without users: beta 0 (the model alone)
    assert choose_beta([], (0.0, 1.0)).beta == 0.0 and choose_beta([], (0.0, 1.0)).chosen_on == ()
    assert choose_beta([GridRecord("2026-10-31", 0, {1.0: 0.9})], (0.0, 1.0)).beta == 0.0


def test_record_from_metrics_reads_the_grid():
    metrics = {"prior": {"beta": 0.0, "grid": [{"beta": 0.0, "recall@50": 0.1}, {"beta": 2.0, "recall@50": 0.3}], "grid_users": 17}}
    rec = record_from_metrics("2026-10-31", metrics)
    assert rec == GridRecord("2026-10-31", 17, {0.0: 0.1, 2.0: 0.3})
    assert record_from_metrics("2026-10-31", {"model": {}}) is None


def test_prior_record_days_never_reach_the_evaluation_days(tmp_path):
    cfg = make_config(tmp_path, training={"prior_history_days": 3})
    assert prior_record_days(RunContext.build(cfg, "2026-11-10")) == ["2026-11-09", "2026-11-08", "2026-11-07"]
    # two evaluation days (11-09, 11-10): day 11-09's record has seen 11-09, so it is not used
    cfg2 = make_config(tmp_path, training={"prior_history_days": 3}, etl={"eval_days": 2})
    assert prior_record_days(RunContext.build(cfg2, "2026-11-10")) == ["2026-11-08", "2026-11-07", "2026-11-06"]


# -- counts ------------------------------------------------------------------------------------


def _clicks(layout: Layout, day: str, pairs: list[tuple[str, str]]) -> None:
    part = layout.path_for("click_positives", day)
    part.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({
        "request_id": [f"r{i}" for i in range(len(pairs))], "user_id": [u for u, _ in pairs], "item_id": [i for _, i in pairs],
    }), part / "part-00000.parquet")


def test_distinct_click_users_counts_people_not_clicks(tmp_path):
    layout = Layout(make_config(tmp_path).paths)
    # a clicks N1 on both days (once), b clicks N1 twice on day 2 (two requests), a clicks N2
    _clicks(layout, D0, [("a", "N1"), ("a", "N2")])
    _clicks(layout, D1, [("a", "N1"), ("b", "N1"), ("b", "N1")])
    counts, found = distinct_click_users(layout, ["2026-10-30", D0, D1], np.array(["N1", "N2", "N3"], dtype=object))
    np.testing.assert_array_equal(counts, [2.0, 1.0, 0.0])  # N1: {a, b}; N2: {a}; N3: nobody
    assert found == [D0, D1]  # 10-30 has no partition


def test_prior_context_takes_beta_from_earlier_days_only(tmp_path):
    """Day D's beta comes from D-1's record, never from D's own (which is also on disk)."""
    cfg = make_config(tmp_path, training={"prior": "validated", "prior_days": 1, "prior_grid": [0.0, 1.0, 2.0]})
    layout = Layout(cfg.paths)
    for day, grid in ((D0, [0.1, 0.3, 0.2]), (D1, [0.1, 0.1, 0.9])):  # D1's own record would pick 2
        layout.model_dir(day).mkdir(parents=True)
        (layout.model_dir(day) / "metrics.json").write_text(json.dumps({"prior": {
            "grid": [{"beta": b, "recall@50": r} for b, r in zip((0.0, 1.0, 2.0), grid, strict=True)], "grid_users": 20}}))
    _clicks(layout, D0, [("a", "N1"), ("b", "N1")])
    ctx = prior_context(RunContext.build(cfg, D1), np.array(["N1", "N2"], dtype=object), temperature=0.1)
    assert ctx.choice.beta == 1.0 and ctx.choice.chosen_on == (D0,)
    # counts over prior_days = 1 day up to the last training day D0: N1 {a, b} = 2, N2 0
    assert ctx.count_days == [D0]
    np.testing.assert_array_equal(ctx.counts, [2.0, 0.0])
    assert prior_context(RunContext.build(make_config(tmp_path), D1), np.array(["N1"], dtype=object), 0.1) is None  # off


# -- index and serving -------------------------------------------------------------------------


def test_index_top_k_equals_brute_force_blended_score():
    rng = np.random.default_rng(3)
    users, items = rng.normal(size=(7, 8)).astype(np.float32), rng.normal(size=(40, 8)).astype(np.float32)
    counts = rng.integers(0, 50, size=40).astype(np.float64)
    beta, tau = 1.5, 0.1
    w = (beta * tau * np.log1p(counts)).astype(np.float32)
    ids = np.arange(100, 140, dtype=np.int64)
    index = build_index(prior_item_vectors(items, w), ids, IndexSpec("flat", "IDMap,Flat"), normalize=False)
    scores, labels = index.search(prior_queries(users), 10)
    un = users / np.linalg.norm(users, axis=1, keepdims=True)
    vn = items / np.linalg.norm(items, axis=1, keepdims=True)
    blended = blended_scores(un @ vn.T, counts, beta, tau)  # brute force, float64
    want = np.argsort(-blended, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(labels, ids[want])
    # the index's score is tau / sqrt(2) times the blended score
    np.testing.assert_allclose(scores, np.take_along_axis(blended, want, 1) * tau / math.sqrt(2), rtol=1e-5, atol=1e-6)


def _serving_inputs(layout: Layout) -> None:
    """D1's vocabulary and feature_stats as in tests/test_serving_client.py's fixture (users U<i>
    -> i, items N<j> -> j, regions r<k> / age bands a<k> -> k)."""
    import datetime as dt

    from tests.test_index_support import N_REGIONS
    from tests.test_serving_client import MEAN, N_ITEMS, STD, _write_partition

    rows = [("user_id", f"U{i}", i) for i in range(1, 901)] + [("item_id", f"N{j}", j) for j in range(1, 3 * N_ITEMS + 1)]
    rows += [(f"user.{f}", f"{p}{k}", k) for f, p in (("region", "r"), ("age_band", "a")) for k in range(1, N_REGIONS + 1)]
    _write_partition(layout, "vocabulary", D1, pa.table({
        "vocab": [r[0] for r in rows], "value": [r[1] for r in rows], "id": pa.array([r[2] for r in rows], pa.int64()),
        "first_ds": pa.array([dt.date(2026, 11, 1)] * len(rows), pa.date32())}))
    _write_partition(layout, "feature_stats", D1, pa.table({"feature": ["u_num_activity"], "mean": [MEAN], "std": [STD]}))


def _version_with_prior(tmp_path, beta: float):
    """make_candidate's version whose evaluation recorded ``beta`` (days 2), weights trained
    through D1, clicks on D0 and D1 (N3 by 3 users, N6 by 1, the rest by nobody)."""
    cfg = make_config(tmp_path)
    layout = Layout(cfg.paths)
    model_dir = make_candidate(cfg, D1)
    mc = json.loads((model_dir / "model_config.json").read_text())
    mc["extra"] = {"trained_days": [D0, D1]}
    (model_dir / "model_config.json").write_text(json.dumps(mc))
    metrics = json.loads((model_dir / "metrics.json").read_text())
    metrics["prior"] = {"mode": "validated", "beta": beta, "days": 2, "chosen_on": [D0], "chosen_on_users": 9, "count_days": [D0]}
    (model_dir / "metrics.json").write_text(json.dumps(metrics))
    _clicks(layout, D0, [("U1", "N3"), ("U2", "N3")])
    _clicks(layout, D1, [("U3", "N3"), ("U1", "N3"), ("U4", "N6")])
    _serving_inputs(layout)
    build_index_for_day(RunContext.build(cfg, D1), prior=index_prior)
    publish_day(RunContext.build(cfg, D1), evaluator=metrics_evaluator)
    return cfg, layout, art.load_version(layout)


def test_published_version_ranks_by_blended_score(tmp_path):
    _cfg, layout, v = _version_with_prior(tmp_path, beta=2.0)
    prior = v.manifest["prior"]
    assert prior["beta"] == 2.0 and prior["count_days"] == [D0, D1] and prior["chosen_on"] == [D0]
    # w = beta * tau * log(1 + c): N3 2 * 0.05 * log(4) = 0.1386294, N6 2 * 0.05 * log(2) = 0.0693147
    assert prior["weight_max"] == pytest.approx(0.1386294, rel=1e-6)
    assert v.manifest["dimension"] == 17 and v.index.d == 17  # DIM 16 + the prior column
    assert (v.path / art.QUERY_TOWER_FILE).is_file()
    bundle = json.loads((v.path / "serving" / "bundle.json").read_text())
    assert bundle["user_tower"]["file"] == "query_tower.pt" and bundle["user_tower"]["output"]["shape"] == ["B", 17]
    # Brute force in numpy: plain user tower, item embeddings, counts by hand.
    import torch

    from indexing.query import embed_users, user_inputs

    users = ["U1", "U5", "U9"]
    plain = torch.jit.load(str(v.path / "user_tower.pt")).eval()
    u = embed_users(plain, user_inputs(v.user_rows(users).set_index("user_id", drop=False).loc[users].reset_index(drop=True), v.model_config))
    emb = v.item_embeddings()
    item_ids = pq.read_table(v.path / "item_ids.parquet").column("item_id").to_pylist()
    counts = np.array([3.0 if i == "N3" else 1.0 if i == "N6" else 0.0 for i in item_ids])
    cos = (u / np.linalg.norm(u, axis=1, keepdims=True)) @ (emb / np.linalg.norm(emb, axis=1, keepdims=True)).T
    want = np.argsort(-blended_scores(cos, counts, 2.0, 0.05), axis=1, kind="stable")[:, :10]
    got = recommend(v, users, k=10)
    for row, res in zip(want, got, strict=True):
        assert [it["item_id"] for it in res["items"]] == [item_ids[j] for j in row], res["user_id"]


def test_beta_zero_keeps_todays_index(tmp_path):
    _cfg, _layout, v = _version_with_prior(tmp_path, beta=0.0)
    assert v.manifest["prior"] is None and v.index.d == 16
    assert not (v.path / art.QUERY_TOWER_FILE).exists()
    assert json.loads((v.path / "serving" / "bundle.json").read_text())["user_tower"]["file"] == "user_tower.pt"


def test_reference_client_ranks_by_blended_score(tmp_path):
    from tests.test_serving_client import _client, _raw_user

    _cfg, _layout, v = _version_with_prior(tmp_path, beta=4.0)
    frame = pq.read_table(v.path / "user_features.parquet").to_pandas().set_index("user_id", drop=False)
    raw = [_raw_user(frame.loc[u]) for u in ("U1", "U7")] + [{"user_id": "nobody", "history": []}]
    want = recommend(v, ["U1", "U7", "nobody"], k=15)
    got = _client(v.path, raw, 15, tmp_path)
    for g, w in zip(got, want, strict=True):
        assert [it["item_id"] for it in g["items"]] == [it["item_id"] for it in w["items"]], g["user_id"]
        np.testing.assert_allclose([it["score"] for it in g["items"]], [it["score"] for it in w["items"]], rtol=1e-5, atol=1e-6)
    assert any(it["item_id"] == "N3" for it in got[0]["items"])  # the popular item rises


def test_daily_evaluation_records_the_grid_and_the_next_day_uses_it(tmp_path):
    """The wiring on a trained model (tests.support.synthetic_etl's ETL tables): day D's evaluation records
    recall@50 for every beta of the grid with beta 0 chosen (no earlier record), so its model
    figure is the grid's beta-0 entry; a later day scored with D's record as its only one uses
    the beta that record favours, and its model figure is that beta's grid entry."""
    from tests.support.synthetic_etl import write_synthetic_etl
    from tests.support.training import train

    d1, d2 = "2026-11-04", "2026-11-05"
    cfg = make_config(
        tmp_path, etl={"window_days": 4},
        training={"batch_size": 256, "epochs": 1, "min_steps": 1, "shared_negatives": 128, "seed": 11,
                  "prior": "validated", "prior_days": 3, "prior_grid": [0.0, 1.0, 8.0], "warm_start": False},
    )
    layout = Layout(cfg.paths)
    write_synthetic_etl(layout, d1, seed=0)
    train(cfg, d1)
    m1 = json.loads((layout.model_dir(d1) / "metrics.json").read_text())
    p1 = m1["prior"]
    assert p1["beta"] == 0.0 and p1["chosen_on"] == [] and [g["beta"] for g in p1["grid"]] == [0.0, 1.0, 8.0]
    assert p1["grid"][0]["recall@50"] == pytest.approx(m1["model"]["recall@50"])
    assert p1["grid_users"] == m1["model"]["users_scored"]
    write_synthetic_etl(layout, d2, seed=0)
    train(cfg, d2)
    m2 = json.loads((layout.model_dir(d2) / "metrics.json").read_text())
    best = max(p1["grid"], key=lambda g: (g["recall@50"], -g["beta"]))["beta"]
    assert m2["prior"]["beta"] == best and m2["prior"]["chosen_on"] == [d1]
    chosen = next(g for g in m2["prior"]["grid"] if g["beta"] == best)
    assert chosen["recall@50"] == pytest.approx(m2["model"]["recall@50"])
