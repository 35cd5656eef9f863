"""``twotower query``: features -> user tower -> index search, checked against numpy."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from core.context import RunContext
from indexing import artifacts as art
from indexing.publish import publish_day
from indexing.query import recommend, user_inputs
from indexing.staging import build_index_for_day
from storage.layout import Layout
from tests.conftest import make_config
from tests.test_index_support import HIST, make_candidate, metrics_evaluator
from twotower.cli import main

D1 = "2026-11-01"


@pytest.fixture
def version(tmp_path):
    cfg = make_config(tmp_path)
    make_candidate(cfg, D1)
    build_index_for_day(RunContext.build(cfg, D1))
    publish_day(RunContext.build(cfg, D1), evaluator=metrics_evaluator)
    return cfg, art.load_version(Layout(cfg.paths))


def _reference_top_k(vdir, user_id: str, k: int):
    """Independent path: the user's row read with pyarrow, tensors built by hand, brute-force cosine."""
    row = pq.read_table(vdir / "user_features.parquet").to_pandas().set_index("user_id").loc[user_id]
    hist = np.zeros((1, HIST), np.int64)
    h = list(row["u_hist"])[:HIST]
    hist[0, : len(h)] = h
    tower = torch.jit.load(str(vdir / "user_tower.pt"))
    with torch.no_grad():
        u = tower(
            torch.tensor([row["user_idx"]]),
            torch.tensor([[row["u_cat_region"], row["u_cat_age_band"]]]),
            torch.tensor([[row["u_num_activity"]]], dtype=torch.float32),
            torch.from_numpy(hist),
        ).numpy()[0]
    emb = np.load(vdir / "item_embeddings.npy")
    ids = pq.read_table(vdir / "item_ids.parquet").column("item_id").to_pylist()
    scores = emb @ u / np.linalg.norm(emb, axis=1) / np.linalg.norm(u)
    order = np.argsort(-scores)[:k]
    return [ids[i] for i in order], scores[order]


@pytest.mark.parametrize("user_id", ["U1", "U7", "U40"])
def test_known_user_matches_brute_force(version, user_id):
    _, v = version
    res = recommend(v, [user_id], k=20)[0]
    want_ids, want_scores = _reference_top_k(v.path, user_id, 20)
    assert res["known"]
    assert [it["item_id"] for it in res["items"]] == want_ids
    np.testing.assert_allclose([it["score"] for it in res["items"]], want_scores, rtol=1e-4, atol=1e-5)
    assert [it["rank"] for it in res["items"]] == list(range(1, 21))


def test_batch_and_single_queries_agree(version):
    _, v = version
    batch = recommend(v, ["U3", "nobody", "U5"], k=5)
    assert [r["user_id"] for r in batch] == ["U3", "nobody", "U5"]
    assert [r["known"] for r in batch] == [True, False, True]
    assert batch[2]["items"] == recommend(v, ["U5"], k=5)[0]["items"]


def test_user_inputs_pads_history_and_fills_nulls():
    import pandas as pd

    frame = pd.DataFrame(
        {
            "user_idx": [4, 9],
            "user_id": ["a", "b"],
            "u_cat_region": [2, None],
            "u_num_activity": [0.5, None],
            "u_hist": [[7, 8, 9, 10], []],
        }
    )
    mc = {"user_cat_columns": ["region"], "user_num_columns": ["u_num_activity"], "history_length": 3}
    x = user_inputs(frame, mc)
    # History cut to 3 (newest first kept), empty history all padding; null cat -> OOV 0, null num -> 0.0.
    np.testing.assert_array_equal(x.hist, [[7, 8, 9], [0, 0, 0]])
    np.testing.assert_array_equal(x.user_cat, [[2], [0]])
    np.testing.assert_array_equal(x.user_num, np.array([[0.5], [0.0]], np.float32))
    np.testing.assert_array_equal(x.user_idx, [4, 9])


def test_unknown_user_gets_documented_cold_start(version):
    _, v = version
    res = recommend(v, ["no-such-user"], k=10)[0]
    assert not res["known"] and len(res["items"]) == 10
    # Cold start = the OOV user: user_idx 0, OOV categories, mean numerics, empty history.
    tower = torch.jit.load(str(v.path / "user_tower.pt"))
    with torch.no_grad():
        u = tower(torch.zeros(1, dtype=torch.long), torch.zeros(1, 2, dtype=torch.long), torch.zeros(1, 1), torch.zeros(1, HIST, dtype=torch.long)).numpy()[0]
    emb = np.load(v.path / "item_embeddings.npy")
    ids = pq.read_table(v.path / "item_ids.parquet").column("item_id").to_pylist()
    assert [it["item_id"] for it in res["items"]] == [ids[i] for i in np.argsort(-(emb @ u))[:10]]


def _cli(cfg, monkeypatch, *argv):
    monkeypatch.setenv("TWOTOWER_DATA_ROOT", str(cfg.paths.data_root))
    monkeypatch.setenv("TWOTOWER_ARTIFACT_ROOT", str(cfg.paths.artifact_root))
    return main(list(argv))


def test_cli_query_prints_items_for_known_user(version, monkeypatch, capsys):
    cfg, v = version
    assert _cli(cfg, monkeypatch, "query", "--user-id", "U7", "-k", "5", "--json") == 0
    out = json.loads(capsys.readouterr().out)
    want_ids, _ = _reference_top_k(v.path, "U7", 5)
    assert out["version"] == D1 and [it["item_id"] for it in out["items"]] == want_ids

    assert _cli(cfg, monkeypatch, "query", "--user-id", "U7", "-k", "3", "--version", D1) == 0
    text = capsys.readouterr().out
    assert "top 3 for user 'U7' from version 2026-11-01" in text and want_ids[0] in text

    assert _cli(cfg, monkeypatch, "query", "--user-id", "ghost", "-k", "3") == 0
    assert "not among the 40 users" in capsys.readouterr().out


def test_cli_query_refuses_tampered_version_and_missing_version(version, monkeypatch, capsys):
    cfg, v = version
    assert _cli(cfg, monkeypatch, "query", "--user-id", "U1", "--version", "2020-01-01") == 2
    assert "not found" in capsys.readouterr().err
    (v.path / "index.faiss").write_bytes(b"garbage")
    assert _cli(cfg, monkeypatch, "query", "--user-id", "U1") == 1
    assert "index.faiss" in capsys.readouterr().err


def test_cli_query_before_any_publish(tmp_path, monkeypatch, capsys):
    cfg = make_config(tmp_path)
    assert _cli(cfg, monkeypatch, "query", "--user-id", "U1") == 2
    assert "nothing published yet" in capsys.readouterr().err
