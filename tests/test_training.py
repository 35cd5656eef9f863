"""Training end to end on small ETL-shaped fixtures (tests.support.synthetic_etl), the evaluation metrics
on a hand-built case, export format, determinism, warm start and OOV handling."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from core.context import RunContext
from storage.layout import Layout
from tests.conftest import make_config
from tests.support.synthetic_etl import write_synthetic_etl
from tests.support.training import train
from training.data import EvalSet
from training.evaluate import evaluate_day, evaluate_model_dir
from training.export import FILES
from training.metrics import Ranker, tail_and_cold
from training.towers import ModelSpec, TwoTowerModel
from training.warm_start import warm_start
from twotower import pipeline

DS = "2026-11-04"


def _cfg(tmp_path, **training):
    t = {"batch_size": 256, "epochs": 3, "min_steps": 0, "shared_negatives": 128, "seed": 11}
    t.update(training)
    return make_config(tmp_path, etl={"window_days": 4}, training=t, features={"history_length": 10})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    cfg = _cfg(root)
    write_synthetic_etl(Layout(cfg.paths), DS, seed=0)
    stats = train(cfg, DS)
    return cfg, stats


def test_model_dir_has_exactly_the_contract_files(trained):
    cfg, stats = trained
    model_dir = Layout(cfg.paths).model_dir(DS)
    assert sorted(p.name for p in model_dir.iterdir()) == sorted(FILES)
    metrics = json.loads((model_dir / "metrics.json").read_text())
    for key in ("recall@10", "recall@50", "recall@100", "hitrate@50", "ndcg@50", "coverage", "recall@50_tail", "recall@50_cold"):
        assert key in metrics["model"]
        assert key in metrics["baselines"]["popularity_window"]
        assert key in metrics["baselines"]["popularity_recent"]
    assert metrics["oracle"] is None  # fixtures have no simulator truth
    assert metrics["eval_users"] == len(pq.read_table(model_dir / "eval_user_ids.parquet"))
    assert metrics["eval_targets"] > 0
    stats_file = json.loads((model_dir / "train_stats.json").read_text())
    assert stats_file["steps"] == stats.steps > 0


def test_model_beats_popularity_on_planted_signal(trained):
    # The fixture's clicks depend on user x item latent vectors driven by region and category,
    # which popularity cannot see; the model must do better than both popularity baselines.
    cfg, _ = trained
    m = json.loads((Layout(cfg.paths).model_dir(DS) / "metrics.json").read_text())
    assert m["model"]["recall@50"] > 1.05 * m["baselines"]["popularity_window"]["recall@50"]
    assert m["model"]["recall@50"] > 1.05 * m["baselines"]["popularity_recent"]["recall@50"]


def test_exported_towers_load_without_training_code(trained):
    cfg, _ = trained
    model_dir = Layout(cfg.paths).model_dir(DS)
    conf = json.loads((model_dir / "model_config.json").read_text())
    user = torch.jit.load(str(model_dir / "user_tower.pt"))
    item = torch.jit.load(str(model_dir / "item_tower.pt"))
    cu, nu, ci, ni = (len(conf[k]) for k in ("user_cat_columns", "user_num_columns", "item_cat_columns", "item_num_columns"))
    b, h = 3, conf["history_length"]
    # ids beyond the tables (10**6) and negative ids are OOV -> the same as id 0
    u = user(torch.tensor([1, 10**6, 0]), torch.ones(b, cu, dtype=torch.long), torch.zeros(b, nu), torch.zeros(b, h, dtype=torch.long))
    assert u.shape == (b, conf["dim"]) and u.dtype == torch.float32
    torch.testing.assert_close(u[1], u[2])
    torch.testing.assert_close(u.norm(dim=1), torch.ones(b))
    i = item(torch.tensor([1, -5, 0]), torch.ones(b, ci, dtype=torch.long), torch.zeros(b, ni))
    torch.testing.assert_close(i[1], i[2])
    # state dict loads with weights_only (no arbitrary pickles) into a rebuilt model
    model = TwoTowerModel.from_artifact(model_dir)
    emb = np.load(model_dir / "item_embeddings.npy")
    ids = pq.read_table(model_dir / "item_ids.parquet")
    assert emb.shape == (ids.num_rows, conf["dim"]) and emb.dtype == np.float32
    # row i of the embeddings is item_ids row i, embedded by the exported tower
    first = torch.tensor(ids.column("item_idx").to_numpy()[:5])
    with torch.no_grad():
        np.testing.assert_allclose(model.item(first, *_item_feats(cfg, first)).numpy(), emb[:5], atol=1e-5)


def _item_feats(cfg, idx):
    from training.data import load_catalogue

    conf = json.loads((Layout(cfg.paths).model_dir(DS) / "model_config.json").read_text())
    cat = load_catalogue(Layout(cfg.paths), DS, tuple(conf["item_cat_columns"]), tuple(conf["item_num_columns"]))
    return cat.features(idx)


def test_evaluate_day_and_model_dir_agree(trained):
    cfg, _ = trained
    model_dir = Layout(cfg.paths).model_dir(DS)
    before = json.loads((model_dir / "metrics.json").read_text())
    again = evaluate_day(RunContext.build(cfg, DS))
    assert again.model["recall@50"] == pytest.approx(before["model"]["recall@50"])
    only = evaluate_model_dir(RunContext.build(cfg, DS), model_dir)
    assert only["model"]["recall@50"] == pytest.approx(before["model"]["recall@50"])
    assert only["eval_users"] == before["eval_users"]


def test_training_is_deterministic(tmp_path):
    cfg = _cfg(tmp_path, epochs=1)
    write_synthetic_etl(Layout(cfg.paths), DS, seed=1, n_users=200, n_items=100)
    a = train(cfg, DS)
    state_a = torch.load(Layout(cfg.paths).model_dir(DS) / "model_state.pt", weights_only=True)
    b = train(cfg, DS)  # rerun of the same day: replaces the directory
    state_b = torch.load(Layout(cfg.paths).model_dir(DS) / "model_state.pt", weights_only=True)
    assert a.loss_curve == b.loss_curve
    assert a.headline.recall_at_50 == b.headline.recall_at_50
    for k in state_a:
        torch.testing.assert_close(state_a[k], state_b[k], rtol=0, atol=0)
    # a different seed gives different weights (the test can fail)
    other = dataclasses.replace(cfg, training=dataclasses.replace(cfg.training, seed=99))
    train(other, DS)
    state_c = torch.load(Layout(cfg.paths).model_dir(DS) / "model_state.pt", weights_only=True)
    assert not torch.equal(state_a["item.core.id_emb.weight"], state_c["item.core.id_emb.weight"])


@pytest.mark.parametrize(
    "overrides",
    [
        {"loss": "pointwise"},
        {"loss": "triplet_hinge"},
        {"loss": "triplet_logistic"},
        {"loss": "listwise"},
        {"logq": "streaming", "senet": True, "objectives": ["click", "like"], "objective_weights": [1.0, 0.5],
         "time_decay_half_life_days": 2.0},
    ],
    ids=["pointwise", "triplet_hinge", "triplet_logistic", "listwise", "streaming+senet+multiobjective"],
)
def test_every_method_trains(tmp_path, overrides):
    cfg = _cfg(tmp_path, epochs=2, **overrides)
    write_synthetic_etl(Layout(cfg.paths), DS, seed=2, n_users=200, n_items=100)
    stats = train(cfg, DS)
    assert np.isfinite(stats.final_loss)
    assert stats.epoch_losses[-1] < stats.epoch_losses[0]  # it learns something
    conf = json.loads((Layout(cfg.paths).model_dir(DS) / "model_config.json").read_text())
    assert conf["objectives"] == list(cfg.training.objectives)


def test_ablation_writes_beside_the_candidate(tmp_path):
    cfg = _cfg(tmp_path, epochs=1)
    write_synthetic_etl(Layout(cfg.paths), DS, seed=3, n_users=200, n_items=100)
    stats = train(cfg, DS, ablate=frozenset({"logq", "hard_negatives", "resampling"}))
    assert stats.negatives.hard_per_example == 0
    assert stats.model_dir.endswith("ds=2026-11-04.ablate-hard_negatives+logq+resampling")
    assert not Layout(cfg.paths).model_dir(DS).exists()
    from core.errors import UserError

    with pytest.raises(UserError, match="unknown switch"):
        train(cfg, DS, ablate=frozenset({"bogus"}))


def test_warm_start_keeps_known_ids_and_initialises_new_ones(tmp_path):
    spec = ModelSpec(num_users=5, num_items=6, user_cat_columns=("u_cat_a",), user_cat_sizes=(3,), user_num_columns=(),
                     item_cat_columns=(), item_cat_sizes=(), item_num_columns=("i_num_q",), history_length=4)
    old = TwoTowerModel(spec)
    torch.save(old.state_dict(), tmp_path / "model_state.pt")
    (tmp_path / "model_config.json").write_text(spec.to_json())
    bigger = dataclasses.replace(spec, num_users=8, num_items=9, user_cat_sizes=(4,))
    torch.manual_seed(123)
    new = TwoTowerModel(bigger)
    fresh_rows = new.item.core.id_emb.weight[6:].detach().clone()
    report = warm_start(new, tmp_path)
    assert report.tables_extended >= 3  # user ids, item ids (shared with history), user category
    torch.testing.assert_close(new.item.core.id_emb.weight[:6], old.item.core.id_emb.weight)
    torch.testing.assert_close(new.user.core.id_emb.weight[:5], old.user.core.id_emb.weight)
    torch.testing.assert_close(new.item.core.id_emb.weight[6:], fresh_rows)
    torch.testing.assert_close(new.user.core.mlp[0].weight, old.user.core.mlp[0].weight)


def test_warm_start_matches_categorical_tables_by_feature_name(tmp_path):
    # Old model: user features (b, c) with 3 and 4 ids, item feature (y) with 2. New model:
    # (a, b, c) with 5, 4 and 4 ids, item features (x, y): a and x sort first, so by position
    # they would take b's and y's old rows. Expected rows are read from the saved old state.
    spec = ModelSpec(num_users=5, num_items=6, user_cat_columns=("u_cat_b", "u_cat_c"), user_cat_sizes=(3, 4),
                     user_num_columns=(), item_cat_columns=("i_cat_y",), item_cat_sizes=(2,), item_num_columns=(),
                     history_length=0)
    torch.manual_seed(1)
    torch.save(TwoTowerModel(spec, use_history=False).state_dict(), tmp_path / "model_state.pt")
    (tmp_path / "model_config.json").write_text(spec.to_json())
    old = torch.load(tmp_path / "model_state.pt", weights_only=True)
    bigger = dataclasses.replace(spec, user_cat_columns=("u_cat_a", "u_cat_b", "u_cat_c"), user_cat_sizes=(5, 4, 4),
                                 item_cat_columns=("i_cat_x", "i_cat_y"), item_cat_sizes=(3, 2))
    torch.manual_seed(2)
    new = TwoTowerModel(bigger, use_history=False)
    fresh = {k: v.detach().clone() for k, v in new.state_dict().items()}
    report = warm_start(new, tmp_path)
    got = new.state_dict()
    # a (new, position 0) and x (new, position 0): their fresh initialisation, untouched.
    torch.testing.assert_close(got["user.core.cat_embs.0.weight"], fresh["user.core.cat_embs.0.weight"], rtol=0, atol=0)
    torch.testing.assert_close(got["item.core.cat_embs.0.weight"], fresh["item.core.cat_embs.0.weight"], rtol=0, atol=0)
    # b: old position 0 (3 ids) -> new position 1 (4 ids): ids 0..2 old, id 3 fresh.
    torch.testing.assert_close(got["user.core.cat_embs.1.weight"][:3], old["user.core.cat_embs.0.weight"], rtol=0, atol=0)
    torch.testing.assert_close(got["user.core.cat_embs.1.weight"][3:], fresh["user.core.cat_embs.1.weight"][3:], rtol=0, atol=0)
    # c: old position 1 -> new position 2, same size: every row old.
    torch.testing.assert_close(got["user.core.cat_embs.2.weight"], old["user.core.cat_embs.1.weight"], rtol=0, atol=0)
    # y: old item position 0 -> new position 1.
    torch.testing.assert_close(got["item.core.cat_embs.1.weight"], old["item.core.cat_embs.0.weight"], rtol=0, atol=0)
    assert {"user.core.cat_embs.0.weight", "item.core.cat_embs.0.weight"} <= set(report.tensors_skipped)
    # The id tables keep their old rows (same sizes).
    torch.testing.assert_close(got["user.core.id_emb.weight"], old["user.core.id_emb.weight"], rtol=0, atol=0)


def test_train_day_warm_starts_from_latest(trained, tmp_path):
    cfg, version = _day_with_published_model(trained, tmp_path)
    stats = pipeline.train(cfg, DS).to_dict()
    assert stats["warm_start_from"] == str(version)
    assert pipeline.train(cfg, DS, full_retrain=True).to_dict()["warm_start_from"] is None


def test_a_warm_started_model_gets_the_configured_passes_not_the_min_steps_ones(trained, tmp_path):
    # min_steps 10,000 would raise a cold model to max_epochs (20) passes; warm-started, the
    # model keeps training.epochs (1): more passes over rows it has seen only overfit it.
    cfg, _version = _day_with_published_model(trained, tmp_path)
    cfg = cfg.replace(training=dataclasses.replace(cfg.training, min_steps=10_000))
    assert pipeline.train(cfg, DS).to_dict()["epochs"] == 1
    assert pipeline.train(cfg, DS, full_retrain=True).to_dict()["epochs"] == 20


def _day_with_published_model(trained, tmp_path):
    """A config whose day has ETL tables and whose LATEST is the ``trained`` model (2026-01-01)."""
    cfg_src, _ = trained
    cfg = _cfg(tmp_path, epochs=1)
    layout = Layout(cfg.paths)
    write_synthetic_etl(layout, DS, seed=0)
    return cfg, _published_copy(layout, Layout(cfg_src.paths).model_dir(DS), "2026-01-01")


def _published_copy(layout, model_dir, version_name):
    """A published version holding a trained model's state, with a manifest of its sha256s."""
    from indexing.checksums import checksum_dir
    from indexing.manifest import REQUIRED_FIELDS, STATUS_PUBLISHED, write_manifest

    version = layout.version_dir(version_name)
    version.mkdir(parents=True)
    for name in ("model_state.pt", "model_config.json"):
        (version / name).write_bytes((model_dir / name).read_bytes())
    manifest = dict.fromkeys(REQUIRED_FIELDS, 0) | {
        "format_version": 1, "version": version_name, "ds": version_name, "status": STATUS_PUBLISHED,
        "index": {}, "metrics": {}, "ann": {}, "files": checksum_dir(version),
    }
    write_manifest(version, manifest)
    layout.latest_pointer.write_text(version_name + "\n")
    return version


def test_train_day_refuses_to_warm_start_from_a_damaged_published_model(trained, tmp_path):
    from indexing.checksums import TamperedArtifact

    cfg, version = _day_with_published_model(trained, tmp_path)
    state = version / "model_state.pt"
    data = bytearray(state.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte changed after publishing
    state.write_bytes(bytes(data))
    with pytest.raises(TamperedArtifact, match="model_state.pt"):
        pipeline.train(cfg, DS)
    assert pipeline.train(cfg, DS, full_retrain=True).to_dict()["warm_start_from"] is None  # the explicit way out


def test_ranker_metrics_by_hand():
    # Catalogue items 1..60. User A: targets {2, 4}, excluded {1}; user B: target {3}.
    # A's scores: item1 .9 (excluded), item2 .8, item4 .5, item3 .1, item k>=5: k/1e4
    #   -> ranking 2, 4, 3, 60, 59, ... : both targets in the top 2.
    # B's scores: item k>=5: k/100 (56 items), item1..4: .04 .03 .02 .01 -> item 3 is 59th.
    n = 60
    cand = np.arange(1, n + 1)
    sa = np.array([k / 1e4 for k in cand])
    sa[[0, 1, 3, 2]] = [0.9, 0.8, 0.5, 0.1]
    sb = np.array([k / 100 for k in cand])
    sb[:4] = [0.04, 0.03, 0.02, 0.01]
    scores = torch.tensor(np.stack([sa, sb]), dtype=torch.float32)
    ev = EvalSet(
        user_idx=torch.tensor([1, 2]), user_id=np.array(["a", "b"], dtype=object),
        user_cat=torch.zeros(2, 0, dtype=torch.long), user_num=torch.zeros(2, 0), hist=torch.zeros(2, 1, dtype=torch.long),
        target_offsets=np.array([0, 2, 3]), targets=np.array([2, 4, 3]),
        exclude_offsets=np.array([0, 1, 1]), excludes=np.array([1]),
    )
    # clicks: item1 10, item2 5, item3 1, others 0 -> head (50% of 16 clicks) = {1}; tail = {2, 3};
    # cold = {4..60}
    clicks = np.zeros(n)
    clicks[:3] = [10, 5, 1]
    tail, cold = tail_and_cold(clicks, 0.5)
    assert tail[:4].tolist() == [False, True, True, False] and cold[3:].all() and not cold[:3].any()
    r = Ranker(ev, cand, tail, cold, (10, 50, 100), torch.device("cpu")).run(lambda rows: scores[rows])
    assert r["recall@10"] == pytest.approx(0.5)  # A 2/2, B 0/1
    assert r["recall@50"] == pytest.approx(0.5)
    assert r["recall@100"] == pytest.approx(1.0)  # B's item 3 at rank 59
    assert r["hitrate@50"] == pytest.approx(0.5)
    # ndcg@50: A hits at ranks 1, 2 = ideal -> 1; B no hit in 50 -> 0
    assert r["ndcg@50"] == pytest.approx(0.5)
    # coverage: A's top 50 = {2, 4, 3} + 47 items 60..14; B's = 60..11 -> {2, 3, 4} + {11..60} = 53
    assert r["coverage"] == pytest.approx(53 / 60)
    assert r["recall@50_tail"] == pytest.approx(0.5)  # A: tail target 2 hit; B: tail target 3 missed
    assert r["recall@50_cold"] == pytest.approx(1.0)  # only A has a cold target (4), hit
    assert r["users_scored"] == 2


def _reference_metrics(scores, cand, targets_per_user, excludes_per_user, tail, cold, ks):
    """Plain per-user metrics, written independently of Ranker (sets and sorted lists)."""
    pos_of = {int(i): p for p, i in enumerate(cand)}
    n = len(cand)
    sums = {f"recall@{k}": 0.0 for k in ks} | {"hitrate@50": 0.0, "ndcg@50": 0.0}
    tail_sum = cold_sum = 0.0
    scored = tail_users = cold_users = 0
    covered = set()
    per_user_r50 = []
    for u, (tg, ex) in enumerate(zip(targets_per_user, excludes_per_user, strict=True)):
        excl = {pos_of[i] for i in ex if i in pos_of}
        wanted = set(tg) - set(ex)  # distinct held-out clicks that are not re-clicks
        tset = {pos_of[i] for i in wanted if i in pos_of}
        # Targets outside the catalogue cannot be recommended: misses in every denominator.
        denom = len(tset) + len([i for i in wanted if i not in pos_of])
        if not denom:
            continue
        scored += 1
        kept = [p for p in range(n) if p not in excl]
        # Highest score first; ties by position (torch.topk on these distinct scores has none).
        ranked = sorted(kept, key=lambda p: (-scores[u, p], p))
        for k in ks:
            sums[f"recall@{k}"] += len(tset & set(ranked[:k])) / denom
        per_user_r50.append(len(tset & set(ranked[:50])) / denom)
        top50 = ranked[:50]
        sums["hitrate@50"] += float(bool(tset & set(top50)))
        dcg = sum(1 / np.log2(r + 2) for r, p in enumerate(top50) if p in tset)
        ideal = sum(1 / np.log2(r + 2) for r in range(min(denom, 50)))
        sums["ndcg@50"] += dcg / ideal
        covered |= set(top50)
        for mask, kind in ((tail, "tail"), (cold, "cold")):
            kt = {p for p in tset if mask[p]}
            if kt:
                r = len(kt & set(top50)) / len(kt)
                if kind == "tail":
                    tail_sum, tail_users = tail_sum + r, tail_users + 1
                else:
                    cold_sum, cold_users = cold_sum + r, cold_users + 1
    out = {k: v / scored for k, v in sums.items()}
    mean = sum(per_user_r50) / scored
    se = (sum((r - mean) ** 2 for r in per_user_r50) / (scored - 1) / scored) ** 0.5
    out.update(coverage=len(covered) / n, users_scored=scored, se=se,
               recall_tail=tail_sum / tail_users if tail_users else None,
               recall_cold=cold_sum / cold_users if cold_users else None)
    return out


def _random_eval_set(rng, n_users=1300, n_items=700):
    """Random eval set: targets with duplicates, ids outside the catalogue, re-clicks excluded."""
    cand = np.sort(rng.choice(np.arange(1, 900), size=n_items, replace=False))
    targets, excludes = [], []
    for _ in range(n_users):
        targets.append(rng.choice(np.arange(1, 900), size=rng.integers(0, 6)).tolist())
        ex = rng.choice(np.arange(1, 900), size=rng.integers(0, 40), replace=False).tolist()
        if targets[-1] and rng.random() < 0.3:
            ex.append(targets[-1][0])  # a re-click: excluded, so not a target
        excludes.append(ex)
    offsets = lambda lists: np.concatenate([[0], np.cumsum([len(x) for x in lists])])  # noqa: E731
    flat = lambda lists: np.array([i for x in lists for i in x], dtype=np.int64)  # noqa: E731
    ev = EvalSet(
        user_idx=torch.arange(1, n_users + 1), user_id=np.array([f"u{i}" for i in range(n_users)], dtype=object),
        user_cat=torch.zeros(n_users, 0, dtype=torch.long), user_num=torch.zeros(n_users, 0),
        hist=torch.zeros(n_users, 1, dtype=torch.long),
        target_offsets=offsets(targets), targets=flat(targets), exclude_offsets=offsets(excludes), excludes=flat(excludes),
    )
    tail, cold = rng.random(n_items) < 0.3, rng.random(n_items) < 0.2
    return ev, cand, targets, excludes, tail, cold


def _assert_matches_reference(got, want):
    for key in ("recall@10", "recall@50", "recall@100", "hitrate@50", "ndcg@50", "coverage", "users_scored"):
        assert got[key] == pytest.approx(want[key], rel=1e-9), key
    assert got["recall@50_se"] == pytest.approx(want["se"], rel=1e-9)
    assert got["recall@50_tail"] == pytest.approx(want["recall_tail"], rel=1e-9)
    assert got["recall@50_cold"] == pytest.approx(want["recall_cold"], rel=1e-9)


def test_ranker_matches_a_per_user_reference_on_random_data():
    # 1,300 users (three user batches, the last one partial), 700 catalogue items.
    rng = np.random.default_rng(5)
    ev, cand, targets, excludes, tail, cold = _random_eval_set(rng)
    scores = rng.random((len(targets), len(cand))).astype(np.float32)
    st = torch.from_numpy(scores)
    got = Ranker(ev, cand, tail, cold, (10, 50, 100), torch.device("cpu")).run(lambda rows: st[rows])
    _assert_matches_reference(got, _reference_metrics(scores, cand, targets, excludes, tail, cold, (10, 50, 100)))


def test_global_ranking_scores_only_its_head_and_matches_the_reference():
    # One ranking for everyone (popularity): run_global scores only the top 100 + 40 items
    # (kmax + most exclusions) of 700, and must give the full per-user reference's metrics.
    rng = np.random.default_rng(11)
    ev, cand, targets, excludes, tail, cold = _random_eval_set(rng)
    shared = rng.permutation(len(cand)).astype(np.float32)  # distinct scores
    ranker = Ranker(ev, cand, tail, cold, (10, 50, 100), torch.device("cpu"))
    widths = []
    order = np.argsort(-shared, kind="stable")
    got = ranker.run_global(order)
    ranker_run = ranker.run
    ranker.run = lambda score, subset=None: widths.append(len(subset)) or ranker_run(score, subset)
    ranker.run_global(order)
    want = _reference_metrics(np.tile(shared, (len(targets), 1)), cand, targets, excludes, tail, cold, (10, 50, 100))
    _assert_matches_reference(got, want)
    assert widths == [100 + int(np.diff(ev.exclude_offsets).max())]


def test_item_day_features_give_each_item_its_values_as_of_the_asked_day(tmp_path):
    # Two training days (11-05 = age 1, 11-06 = age 0); items 1 and 3; the model's numeric
    # columns are (quality, clicks_1d): only clicks_1d is time-dependent.
    import datetime as dt

    import pyarrow as pa
    import pyarrow.parquet as pq

    from training.data import load_item_day_features

    cfg = _cfg(tmp_path)
    layout = Layout(cfg.paths)
    part = layout.path_for("item_day_features", "2026-11-07")
    part.mkdir(parents=True)
    day = dt.date.fromisoformat
    pq.write_table(pa.table({
        "item_idx": pa.array([1, 3, 1, 3], pa.int64()),
        "event_ds": pa.array([day("2026-11-05"), day("2026-11-05"), day("2026-11-06"), day("2026-11-06")]),
        "i_num_clicks_1d": pa.array([0.5, -1.0, 2.0, 0.25], pa.float32()),
    }), part / "part-0.parquet")
    feats = load_item_day_features(layout, "2026-11-07", ("i_num_quality", "i_num_clicks_1d"), day("2026-11-06"))
    assert feats.positions == (1,)
    num = torch.tensor([[9.0, 7.0], [8.0, 7.0], [6.0, 7.0], [5.0, 7.0]])  # catalogue values (as of D)
    idx = torch.tensor([1, 1, 3, 2])  # item 2 has no row: its time-dependent value is 0 (the mean)
    out = feats.as_of(idx, torch.tensor([1, 0, 1, 0]), num)
    assert out.tolist() == [[9.0, 0.5], [8.0, 2.0], [6.0, -1.0], [5.0, 0.0]]
    assert num[:, 1].tolist() == [7.0] * 4  # the input is not modified
    assert load_item_day_features(layout, "2026-11-08", ("i_num_clicks_1d",), day("2026-11-07")) is None


def test_negative_ages_follow_the_rows_days():
    from training.loop import negative_ages

    row_age = torch.tensor([2, 0, 1])
    # 4 shared negatives take rows 0, 1, 2, 0; then 2 per-example negatives per row.
    assert negative_ages(row_age, 4, 2).tolist() == [2, 0, 1, 2, 2, 2, 0, 0, 1, 1]
    assert negative_ages(row_age, 0, 1).tolist() == [2, 0, 1]
