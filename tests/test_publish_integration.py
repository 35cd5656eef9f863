"""The real chain on small ETL-shaped tables: training.train.train_day -> build_index_for_day ->
publish_day (gate evaluated by training.evaluate.evaluate_model_dir) -> twotower query."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from core.context import RunContext
from indexing import artifacts as art
from indexing.publish import PublishRejected, publish_day
from indexing.query import recommend
from indexing.staging import build_index_for_day
from storage.layout import Layout
from tests.conftest import make_config
from tests.support.synthetic_etl import write_synthetic_etl
from tests.support.training import train
from tests.test_index_support import real_evaluator

D1, D2 = "2026-11-04", "2026-11-05"


def _cfg(root, **publish):
    return make_config(
        root,
        etl={"window_days": 4},
        training={"batch_size": 256, "epochs": 2, "min_steps": 1, "shared_negatives": 128, "seed": 11},
        features={"history_length": 10},
        publish=publish,
    )


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    cfg = _cfg(tmp_path_factory.mktemp("chain"))
    layout = Layout(cfg.paths)
    write_synthetic_etl(layout, D1, seed=0)
    train(cfg, D1)
    built = build_index_for_day(RunContext.build(cfg, D1))
    first = publish_day(RunContext.build(cfg, D1), evaluator=real_evaluator)
    return cfg, layout, built, first


def test_real_candidate_is_indexed_and_published(published):
    cfg, layout, built, first = published
    assert built.tower_check.status == "ok" and built.tower_check.max_abs_diff < 1e-4
    assert built.ntotal == len(np.load(layout.model_dir(D1) / "item_embeddings.npy"))
    assert built.ann.recall == 1.0  # small catalogue: exact Flat
    assert first.decision == "published" and art.read_latest(layout) == D1
    m = art.load_version(layout).manifest
    assert m["metrics"]["model"]["recall@50"] == json.loads((layout.model_dir(D1) / "metrics.json").read_text())["model"]["recall@50"]
    assert m["data_window"]["train_days"] == ["2026-11-01", "2026-11-02", "2026-11-03"]


def test_query_known_user_returns_items(published):
    cfg, layout, _, _ = published
    v = art.load_version(layout)
    user = v.user_features["user_id"].iloc[0]
    res = recommend(v, [user], k=10)[0]
    assert res["known"] and len(res["items"]) == 10
    assert {it["item_id"] for it in res["items"]} <= set(v.item_ids_for(v._items[0]))


def test_gate_uses_evaluate_model_dir_on_the_same_held_out_set(published, tmp_path):
    cfg, layout, _, _ = published
    # Day 2's candidate barely trains (learning rates 1e-6, no warm start): the gate must refuse
    # it against version D1 re-evaluated on D2's held-out set (no drop allowed here).
    write_synthetic_etl(layout, D2, seed=0)
    strict = _cfg(cfg.paths.data_root.parent, max_recall_drop=0.0)
    weak = strict.replace(
        training=dataclasses.replace(strict.training, epochs=1, lr=1e-6, sparse_lr=1e-6, warm_start=False)
    )
    train(weak, D2)
    build_index_for_day(RunContext.build(weak, D2))
    with pytest.raises(PublishRejected) as exc:
        publish_day(RunContext.build(weak, D2), evaluator=real_evaluator)
    gate = json.loads((layout.model_root / art.REJECTED / f"{D2}-1" / "manifest.json").read_text())["gate"]
    assert gate["published_version"] == D1 and gate["candidate"] < gate["published"]
    assert f"{gate['candidate']:.4f}" in str(exc.value) and f"{gate['published']:.4f}" in str(exc.value)
    assert art.read_latest(layout) == D1
