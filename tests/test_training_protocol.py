"""The training/evaluation protocol: the published weights have seen day D (continued training
after the gate's evaluation), out-of-catalogue targets counted as misses, the standard error of
recall@50, the gate's SE rule and popularity bars, the batch-size rule and the example age.
Expected values are computed by hand in the comments."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from core.config import PublishConfig, TrainingConfig
from core.context import RunContext, Window
from indexing.gate import gate_decision
from indexing.staging import _data_window
from storage.layout import Layout
from tests.conftest import make_config
from tests.support.synthetic_etl import write_synthetic_etl
from tests.support.training import train
from training.baselines import popularity_baselines
from training.data import Catalogue, EvalSet
from training.evaluate import evaluate_day
from training.final_training import train_final_day
from training.metrics import Ranker, missing_targets_per_user, standard_error
from training.stream import effective_batch_size, window_epochs
from training.towers import ModelSpec, TwoTowerModel

DS = "2026-11-04"


def _eval_set(targets, excludes):
    offsets = lambda lists: np.concatenate([[0], np.cumsum([len(x) for x in lists])]).astype(np.int64)  # noqa: E731
    flat = lambda lists: np.array([i for x in lists for i in x], dtype=np.int64)  # noqa: E731
    n = len(targets)
    return EvalSet(
        user_idx=torch.arange(1, n + 1), user_id=np.array([f"u{i}" for i in range(n)], dtype=object),
        user_cat=torch.zeros(n, 0, dtype=torch.long), user_num=torch.zeros(n, 0), hist=torch.zeros(n, 1, dtype=torch.long),
        target_offsets=offsets(targets), targets=flat(targets), exclude_offsets=offsets(excludes), excludes=flat(excludes),
    )


# -- evaluation ---------------------------------------------------------------------------


def test_out_of_catalogue_targets_are_misses_in_the_denominator():
    # Catalogue items 1, 2, 3 (scores 3 > 2 > 1 for everyone).
    # u0: targets {1, 9}; 9 is not in the catalogue -> 1 hit of 2 = 0.5 (it was 1/1 = 1.0).
    # u1: targets {9, 9} (a duplicate), nothing excluded -> 1 distinct miss: scored, recall 0.
    # u2: target {8}, excluded {8} (a re-click) -> no target: not scored.
    # mean recall@50 over u0, u1 = 0.25; SE = sd(0.5, 0) / sqrt(2) = 0.353553 / 1.414214 = 0.25.
    ev = _eval_set([[1, 9], [9, 9], [8]], [[], [], [8]])
    cand = np.array([1, 2, 3])
    ranker = Ranker(ev, cand, np.zeros(3, bool), np.zeros(3, bool), (10, 50), torch.device("cpu"))
    assert missing_targets_per_user(ev, ranker.t_pos).tolist() == [1, 1, 0]
    scores = torch.tensor([[3.0, 2.0, 1.0]] * 3)
    r = ranker.run(lambda rows: scores[rows])
    assert r["users_scored"] == 2
    assert r["recall@50"] == pytest.approx(0.25)
    assert r["recall@50_se"] == pytest.approx(0.25)
    assert r["targets_not_in_catalogue"] == 2
    # hitrate: u0 hit, u1 none -> 0.5; ndcg: u0 dcg 1 / ideal (1 + 1/log2(3)) = 0.613147, u1 0.
    assert r["hitrate@50"] == pytest.approx(0.5)
    assert r["ndcg@50"] == pytest.approx((1 / (1 + 1 / math.log2(3))) / 2)
    counts = ranker.counts()
    assert counts["eval_targets_not_in_catalogue"] == 4 and counts["eval_targets_not_in_catalogue_counted"] == 2


def test_a_shrunken_catalogue_cannot_raise_recall():
    # u0 targets {1, 2}; catalogue of 12 items, item 1 ranked 1st, item 2 last (12th: a miss
    # at 10). Full: recall@10 = 1/2. Dropping item 2 from the catalogue must not make it 1/1.
    ev = _eval_set([[1, 2]], [[]])
    full = np.arange(1, 13)
    s_full = torch.tensor([[100.0 if i == 1 else (0.5 if i == 2 else float(20 - i)) for i in full]])
    r_full = Ranker(ev, full, np.zeros(12, bool), np.zeros(12, bool), (10, 50), torch.device("cpu")).run(lambda rows: s_full)
    shrunk = np.array([i for i in full if i != 2])
    s_shrunk = torch.tensor([[100.0 if i == 1 else float(20 - i) for i in shrunk]])
    r_shrunk = Ranker(ev, shrunk, np.zeros(11, bool), np.zeros(11, bool), (10, 50), torch.device("cpu")).run(lambda rows: s_shrunk)
    assert r_full["recall@10"] == pytest.approx(0.5) and r_shrunk["recall@10"] == pytest.approx(0.5)


def test_standard_error_by_hand():
    # (1, 0, 0.5): mean 0.5, sample sd = sqrt((0.25 + 0.25 + 0) / 2) = 0.5, SE = 0.5 / sqrt(3).
    assert standard_error(np.array([1.0, 0.0, 0.5])) == pytest.approx(0.5 / math.sqrt(3))
    assert standard_error(np.array([0.3])) is None


def _write_clicks(layout: Layout, day: str, item_ids: list[str]) -> None:
    path = layout.path_for("click_positives", day)
    path.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"item_id": pa.array(item_ids, pa.string())}), path / "part-0.parquet")


def test_popularity_bars_over_1_7_28_days_and_the_window(tmp_path):
    # Window of 3 days ending 11-10 with 1 evaluation day: training days 11-08, 11-09.
    # click_positives: 11-09: b x2; 11-08: c x3; 11-01 (outside 7 days, inside 28): a x9.
    #   popularity_recent (11-09)        ranks b first
    #   popularity_7d (11-03..11-09)     finds 11-08, 11-09: c (3) before b (2)
    #   popularity_28d (10-13..11-09)    finds 11-01 too: a (9) first
    #   popularity_window (given counts) d first
    # One user whose only target is a; recall@1-style read through recall@10 on 14 items
    # where a is ranked past 10 by everyone except the 28-day bar.
    cfg = make_config(tmp_path, etl={"window_days": 3, "eval_days": 1})
    layout = Layout(cfg.paths)
    _write_clicks(layout, "2026-11-09", ["b", "b"])
    _write_clicks(layout, "2026-11-08", ["c", "c", "c"])
    _write_clicks(layout, "2026-11-01", ["a"] * 9)
    ids = ["a", "b", "c", "d"] + [f"x{i}" for i in range(10)]
    cat = Catalogue(
        item_idx=np.arange(1, 15), item_id=np.array(ids, dtype=object), active=np.ones(14, bool),
        cat_by_idx=torch.zeros(15, 0, dtype=torch.long), num_by_idx=torch.zeros(15, 0), cat_columns=(), num_columns=(),
    )
    rows = np.arange(14)
    # Window counts: d 5, x0..x9 4 each, a 0 -> a is ranked 12th+ by the window bar.
    window = np.array([0, 0, 0, 5] + [4] * 10, dtype=float)
    ev = _eval_set([[1]], [[]])
    ranker = Ranker(ev, cat.item_idx, np.zeros(14, bool), np.zeros(14, bool), (1, 10, 50), torch.device("cpu"))
    bars, days = popularity_baselines(RunContext.build(cfg, "2026-11-10"), cat, rows, window, ranker)
    assert days == {
        "popularity_window": ["2026-11-08", "2026-11-09"],
        "popularity_recent": ["2026-11-09"],
        "popularity_7d": ["2026-11-08", "2026-11-09"],
        "popularity_28d": ["2026-11-01", "2026-11-08", "2026-11-09"],
    }
    assert bars["popularity_28d"]["recall@1"] == 1.0  # a first
    # recent: b, then the zero-count items in catalogue order: a (idx 1) comes 2nd -> recall@1 0.
    assert bars["popularity_recent"]["recall@1"] == 0.0 and bars["popularity_7d"]["recall@1"] == 0.0
    assert bars["popularity_window"]["recall@10"] == 0.0  # d, x0..x9 fill the top 11


# -- gate -----------------------------------------------------------------------------------


def test_gate_does_not_call_a_difference_inside_one_se_a_regression():
    p = PublishConfig(max_recall_drop=0.1, min_ann_recall=0.95, gate_z=1.0, min_eval_users=100)
    # threshold 0.30 x 0.9 = 0.27; candidate 0.26 falls 0.01 short.
    # SEs 0.02 and 0.02 -> band sqrt(0.0004 + 0.0004) = 0.028284 > 0.01: undecided, passes.
    g = gate_decision(0.26, 0.30, 1.0, p, "v", candidate_se=0.02, published_se=0.02, eval_users=5000)
    assert g.passed and not g.decidable and g.undecided == ("drop",) and "too small to judge" in g.reason
    # SEs 0.005 and 0.005 -> band 0.007071 < 0.01: a regression, refused.
    g = gate_decision(0.26, 0.30, 1.0, p, "v", candidate_se=0.005, published_se=0.005, eval_users=5000)
    assert not g.passed and g.decidable
    # No SE recorded (older metrics): the plain threshold rule.
    assert not gate_decision(0.26, 0.30, 1.0, p, "v").passed


def test_gate_baseline_rule_with_se_and_a_held_out_set_too_small():
    p = PublishConfig(min_ann_recall=0.95, min_recall_vs_best_baseline=1.0, gate_z=1.0, min_eval_users=100)
    # floor 0.25; SEs 0.03 (candidate) and 0.04 (baseline) -> band 0.05.
    # 0.21 is 0.04 short: undecided, passes with the warning; 0.19 is 0.06 short: refused.
    kw = dict(candidate_se=0.03, baseline_se=0.04, baseline_name="popularity_7d", eval_users=400)
    g = gate_decision(0.21, None, 1.0, p, baseline_recall=0.25, **kw)
    assert g.passed and g.undecided == ("baseline",) and g.below_baseline and "WARNING" in g.reason
    g = gate_decision(0.19, None, 1.0, p, baseline_recall=0.25, **kw)
    assert not g.passed and "popularity_7d" in g.reason
    # 15 users (< min_eval_users 100): 0.10 against 0.30 published is not decided either way.
    g = gate_decision(0.10, 0.30, 1.0, p, "v", eval_users=15)
    assert g.passed and not g.decidable and "15 users scored < publish.min_eval_users 100" in g.reason
    d = g.to_dict()
    assert d["decidable"] is False and d["eval_users"] == 15
    # ANN recall still refuses on a small held-out set.
    assert not gate_decision(0.10, None, 0.5, p, eval_users=15).passed


def test_manifest_data_window_records_the_days_the_weights_saw(tmp_path):
    cfg = make_config(tmp_path, etl={"window_days": 3, "eval_days": 1})
    train_days = ["2026-11-08", "2026-11-09"]
    gate = {"model": "candidate", "trained_days": train_days, "evaluated_on": ["2026-11-10"]}
    after = {"extra": {"training_days": train_days, "trained_days": [*train_days, "2026-11-10"], "gate_evaluation": gate}}
    w = _data_window(Window.for_run(cfg, "2026-11-10"), after)
    assert w["weights_trained_days"] == ["2026-11-08", "2026-11-09", "2026-11-10"] and w["weights_saw_eval_days"]
    assert w["gate_evaluation"] == gate and w["eval_days"] == ["2026-11-10"]
    before = _data_window(Window.for_run(cfg, "2026-11-10"), {"extra": {"training_days": train_days}})
    assert before["weights_trained_days"] == train_days and not before["weights_saw_eval_days"]


# -- settings from the data's size ------------------------------------------------------------


def test_batch_size_rule_by_hand():
    # >= 8 batches of 1024 (8192 rows): the configured batch.
    assert effective_batch_size(8192, 1024) == 1024
    # 8191 rows: 8191 // 8 = 1023 -> largest power of two <= 1023 = 512.
    assert effective_batch_size(8191, 1024) == 512
    # 100 rows (fewer than one batch): 100 // 8 = 12 -> 8.
    assert effective_batch_size(100, 1024) == 8
    # 10 rows on 2 workers: 10 // 8 = 1 -> 1, raised to one row per worker = 2.
    assert effective_batch_size(10, 1024, world=2) == 2
    # 3 workers: 2000 // 8 = 250 -> 128 -> 126 (a multiple of 3).
    assert effective_batch_size(2000, 1024, world=3) == 126


def test_window_epochs_by_hand():
    t = TrainingConfig(epochs=1, min_steps=80, max_epochs=20)
    assert window_epochs(t, 176) == 1  # ceil(80 / 176) = 1
    assert window_epochs(t, 8) == 10  # ceil(80 / 8) = 10
    assert window_epochs(t, 1) == 20  # 80, capped at 20
    assert window_epochs(dataclasses.replace(t, epochs=30), 1) == 30  # explicit epochs win


# -- example age ------------------------------------------------------------------------------


def _spec(**kw) -> ModelSpec:
    base = dict(
        num_users=5, num_items=6, user_cat_columns=(), user_cat_sizes=(), user_num_columns=(),
        item_cat_columns=(), item_cat_sizes=(), item_num_columns=(), history_length=0, dim=4, id_dim=4,
        feature_dim=3, hidden=(8,),
    )
    base.update(kw)
    return ModelSpec(**base)


def test_example_age_is_a_user_field_and_serving_uses_age_zero():
    torch.manual_seed(0)
    model = TwoTowerModel(_spec(example_age_buckets=3), use_history=False).eval()
    users = torch.tensor([1, 2])
    none = torch.zeros(2, 0, dtype=torch.long), torch.zeros(2, 0), torch.zeros(2, 0, dtype=torch.long)
    at = lambda a: model.user.forward_heads(users, *none, torch.tensor(a))[0]  # noqa: E731
    served = model.user(users, *none)
    assert torch.allclose(served, at([0, 0]))  # serving = age 0
    assert not torch.allclose(at([1, 1]), served)  # the age changes the embedding
    assert torch.allclose(at([2, 2]), at([7, 9]))  # ages beyond the last bucket share it
    scripted = torch.jit.script(model.user)
    assert torch.allclose(scripted(users, *none), served)  # the exported signature is unchanged
    # Off (0 buckets): no age embedding in the MLP input (id 4 only; no numeric, no history).
    off = TwoTowerModel(_spec(), use_history=False)
    assert off.user.core.mlp[0].in_features == 4 and model.user.core.mlp[0].in_features == 4 + 3


# -- the published weights saw day D ------------------------------------------------------------


def _write_final_examples(layout: Layout, ds: str) -> int:
    """final_examples of ds: the fixture's train_examples rows re-dated to ds (same schema)."""
    return _write_final_examples_as_of(layout, ds, ds)


@pytest.fixture(scope="module")
def finalised(tmp_path_factory):
    root = tmp_path_factory.mktemp("final")
    cfg = make_config(
        root, etl={"window_days": 4},
        training={"batch_size": 256, "epochs": 2, "min_steps": 0, "shared_negatives": 64, "seed": 5},
        features={"history_length": 10},
    )
    layout = Layout(cfg.paths)
    write_synthetic_etl(layout, DS, seed=0)
    rows = _write_final_examples(layout, DS)
    train(cfg, DS)
    model_dir = layout.model_dir(DS)
    before_state = torch.load(model_dir / "model_state.pt", weights_only=True)
    before_metrics = json.loads((model_dir / "metrics.json").read_text())
    stats = train_final_day(RunContext.build(cfg, DS))
    return cfg, layout, rows, before_state, before_metrics, stats


def test_published_weights_have_trained_on_day_d(finalised):
    cfg, layout, rows, before_state, before_metrics, stats = finalised
    model_dir = layout.model_dir(DS)
    extra = json.loads((model_dir / "model_config.json").read_text())["extra"]
    # Window of 4 days ending 11-04, one evaluation day: training days 11-01..11-03, then 11-04.
    assert extra["training_days"] == ["2026-11-01", "2026-11-02", "2026-11-03"]
    assert extra["trained_days"] == ["2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04"]
    assert extra["gate_evaluation"]["trained_days"] == extra["training_days"]
    assert extra["gate_evaluation"]["evaluated_on"] == [DS]
    # 600 rows >= 8 x 256 is false: 600 // 8 = 75 -> batch 64, 9 steps per pass, 2 passes (the window's).
    fin = extra["final_training"]
    assert (fin["rows"], fin["batch_size"], fin["epochs"], fin["steps"]) == (rows, 64, 2, 18)
    after = torch.load(model_dir / "model_state.pt", weights_only=True)
    assert any(not torch.equal(after[k], before_state[k]) for k in before_state)  # the weights moved
    # The candidate the gate evaluated is kept unchanged beside them.
    cand = torch.load(model_dir / "candidate" / "model_state.pt", weights_only=True)
    assert all(torch.equal(cand[k], before_state[k]) for k in before_state)
    # metrics.json stays the candidate's evaluation, with the protocol recorded.
    m = json.loads((model_dir / "metrics.json").read_text())
    assert m["model"] == before_metrics["model"]
    assert m["protocol"]["published_trained_days"] == extra["trained_days"]


def test_reevaluating_a_finalised_day_scores_the_candidate_not_the_weights_that_saw_d(finalised):
    cfg, layout, _rows, _state, before_metrics, _stats = finalised
    again = evaluate_day(RunContext.build(cfg, DS))
    assert again.model["recall@50"] == pytest.approx(before_metrics["model"]["recall@50"], rel=1e-6)
    assert again.protocol is not None


def test_final_training_reruns_from_the_candidate_deterministically(finalised, tmp_path):
    cfg, layout, _rows, _state, _m, _stats = finalised
    model_dir = layout.model_dir(DS)
    first = torch.load(model_dir / "model_state.pt", weights_only=True)
    train_final_day(RunContext.build(cfg, DS))
    second = torch.load(model_dir / "model_state.pt", weights_only=True)
    assert all(torch.equal(first[k], second[k]) for k in first)


def _one_pass_day(tmp_path):
    """Synthetic ETL tables of DS and a one-pass config (batch 256, no min_steps raise)."""
    cfg = make_config(
        tmp_path, etl={"window_days": 4},
        training={"batch_size": 256, "epochs": 1, "min_steps": 0, "shared_negatives": 64, "seed": 5},
        features={"history_length": 10},
    )
    layout = Layout(cfg.paths)
    write_synthetic_etl(layout, DS, seed=0)
    return cfg, layout


def test_without_final_examples_the_candidate_is_published_and_says_so(tmp_path):
    cfg, layout = _one_pass_day(tmp_path)
    shutil.rmtree(layout.path_for("final_examples", DS), ignore_errors=True)
    train(cfg, DS)
    out = train_final_day(RunContext.build(cfg, DS))
    assert out.to_dict()["final_training"] == "skipped"
    extra = json.loads((layout.model_dir(DS) / "model_config.json").read_text())["extra"]
    assert extra["trained_days"] == ["2026-11-01", "2026-11-02", "2026-11-03"]
    assert not (layout.model_dir(DS) / "candidate").exists()


def test_time_decayed_example_weights_and_their_ablation_by_hand():
    from training.loop import Negatives, Trainer

    model = TwoTowerModel(_spec(), use_history=False)
    cat = Catalogue(
        item_idx=np.arange(1, 6), item_id=np.array(list("abcde"), dtype=object), active=np.ones(5, bool),
        cat_by_idx=torch.zeros(6, 0, dtype=torch.long), num_by_idx=torch.zeros(6, 0), cat_columns=(), num_columns=(),
    )
    neg = Negatives(cat, None, torch.zeros(6), torch.zeros(6))
    t = TrainingConfig(time_decay_half_life_days=2.0, shared_negatives=0)
    batch = {
        "weight": torch.tensor([1.0, 1.0, 2.0]), "hist": torch.zeros(3, 1, dtype=torch.long),
        "item_idx": torch.tensor([1, 2, 3]), "age_days": torch.tensor([0, 2, 4]), "label_liked": torch.zeros(3),
    }
    # 0.5^(age / 2): ages 0, 2, 4 -> 1, 0.5, 0.25 (times the row weights 1, 1, 2).
    w = Trainer(model, t, neg, torch.device("cpu"))._example_weights(batch, "click")
    assert w.tolist() == pytest.approx([1.0, 0.5, 0.5])
    off = Trainer(model, t, neg, torch.device("cpu"), ablate=frozenset({"time_decay"}))._example_weights(batch, "click")
    assert off.tolist() == pytest.approx([1.0, 1.0, 2.0])


def test_paired_difference_se_by_hand_and_in_the_popularity_bars(tmp_path):
    from training.metrics import paired_difference_se

    # Users 0, 1, 2 in a; 1, 2, 3 in b. Common users 1, 2: differences 0.5 - 0.0 = 0.5 and
    # 1.0 - 0.5 = 0.5 -> sd 0 -> SE 0 (identical gaps are a certain difference).
    a = (np.array([0, 1, 2]), np.array([0.2, 0.5, 1.0]))
    b = (np.array([1, 2, 3]), np.array([0.0, 0.5, 0.9]))
    assert paired_difference_se(a, b) == pytest.approx(0.0)
    # Differences 1, 0 (users 0, 1) -> sd sqrt(0.5) -> SE sqrt(0.5) / sqrt(2) = 0.5.
    assert paired_difference_se((np.array([0, 1]), np.array([1.0, 0.5])), (np.array([0, 1]), np.array([0.0, 0.5]))) == pytest.approx(0.5)
    # Wired into the bars: the model's per-user recall vs each bar's, on the same users.
    cfg = make_config(tmp_path, etl={"window_days": 2, "eval_days": 1})
    layout = Layout(cfg.paths)
    _write_clicks(layout, "2026-11-09", ["b"])
    cat = Catalogue(
        item_idx=np.arange(1, 4), item_id=np.array(["a", "b", "c"], dtype=object), active=np.ones(3, bool),
        cat_by_idx=torch.zeros(4, 0, dtype=torch.long), num_by_idx=torch.zeros(4, 0), cat_columns=(), num_columns=(),
    )
    # u0 target a, u1 target b, u2 target c; recall@1 read through ks (1, 50): with 3 items every
    # item is in the top 50, so recall@50 is 1 for everyone, model and bars: differences 0.
    ev = _eval_set([[1], [2], [3]], [[], [], []])
    ranker = Ranker(ev, cat.item_idx, np.zeros(3, bool), np.zeros(3, bool), (1, 50), torch.device("cpu"))
    ranker.run(lambda rows: torch.tensor([[3.0, 2.0, 1.0]] * (rows.stop - rows.start)))
    model = ranker.last_recall50
    assert model[0].tolist() == [0, 1, 2] and model[1].tolist() == [1.0, 1.0, 1.0]
    bars, _days = popularity_baselines(RunContext.build(cfg, "2026-11-10"), cat, np.arange(3), np.array([0.0, 0.0, 1.0]), ranker, model)
    assert bars["popularity_recent"]["recall@50_diff_se"] == pytest.approx(0.0)


def test_gate_baseline_rule_uses_the_paired_se_when_known():
    p = PublishConfig(min_ann_recall=0.95, min_recall_vs_best_baseline=1.0, gate_z=1.0, min_eval_users=100)
    # 0.026 vs 0.032: 0.006 short. Unpaired band sqrt(0.0055^2 + 0.0057^2) = 0.00792 -> undecided;
    # paired band 0.004 -> refused.
    kw = dict(candidate_se=0.0055, baseline_se=0.0057, eval_users=952)
    assert gate_decision(0.026, None, 1.0, p, baseline_recall=0.032, **kw).passed
    g = gate_decision(0.026, None, 1.0, p, baseline_recall=0.032, baseline_diff_se=0.004, **kw)
    assert not g.passed and g.to_dict()["best_baseline_diff_se"] == 0.004


def test_candidate_training_ends_with_the_last_training_days_own_clicks(tmp_path):
    # The steady state: the previous run left final_examples of the last training day (11-03).
    # The candidate then ends with passes over those rows, as the published weights of 11-03
    # ended with 11-03's: 600 rows -> batch 64 (600 // 8 = 75 -> 64), 9 steps a pass, 1 pass.
    cfg, layout = _one_pass_day(tmp_path)
    rows = _write_final_examples_as_of(layout, DS, "2026-11-03")
    stats = train(cfg, DS).to_dict()
    assert stats["last_training_day_pass"] == {"day": "2026-11-03", "rows": rows, "batch_size": 64, "epochs": 1, "steps": 9}
    # A first run of the window (no final_examples of the last training day): no such pass.
    shutil.rmtree(layout.path_for("final_examples", "2026-11-03"))
    assert train(cfg, DS).last_training_day_pass is None


def _write_final_examples_as_of(layout: Layout, src_ds: str, ds: str) -> int:
    """final_examples of ds: the fixture's train_examples rows of src_ds re-dated to ds."""
    src = layout.path_for("train_examples", src_ds)
    t = pa.concat_tables([pq.read_table(f) for f in sorted(src.rglob("*.parquet"))]).slice(0, 600)
    t = t.set_column(t.schema.get_field_index("event_ds"), "event_ds", pa.array([dt.date.fromisoformat(ds)] * t.num_rows, pa.date32()))
    out = layout.path_for("final_examples", ds)
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(t, out / "part-0.parquet")
    return t.num_rows
