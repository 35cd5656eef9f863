"""The pure index factory: choice by catalogue size + config, builds, recall measurement."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from core.config import IndexConfig
from indexing.builder import (
    IndexSpec,
    build_index,
    choose_index,
    exact_index,
    measure_ann,
    normalized,
    recall_at_k,
    tune_search_params,
)


def cfg(**kw) -> IndexConfig:
    return dataclasses.replace(IndexConfig(), **kw)


def test_small_catalogue_is_exact_flat():
    spec = choose_index(500, 64, cfg(flat_max_items=500))
    assert (spec.kind, spec.factory, spec.exact) == ("flat", "IDMap,Flat", True)


def test_ivf_above_flat_with_config_params():
    # 100,000 items // 39 points per list = 2,564 lists allowed >= the configured 1,024: no cap.
    spec = choose_index(100_000, 64, cfg(flat_max_items=50_000, kind_above_flat="ivf_flat", ivf_nlist=1024, ivf_nprobe=32))
    assert spec.factory == "IVF1024,Flat"
    assert spec.params == {"nlist": 1024, "nprobe": 32}
    assert spec.notes == ()


def test_ivf_nlist_capped_by_training_points():
    # 1,000 items // 39 = 25 lists (not 1,024); nprobe 32 is capped to 25 = nlist.
    spec = choose_index(1000, 16, cfg(flat_max_items=500, ivf_nlist=1024, ivf_nprobe=32))
    assert spec.factory == "IVF25,Flat"
    assert spec.params == {"nlist": 25, "nprobe": 25}
    assert any("capped 1024 -> 25" in n for n in spec.notes)


def test_ivf_falls_back_to_flat_when_too_few_lists():
    # 600 // 39 = 15 lists < 16: exact search, and it says why.
    spec = choose_index(600, 16, cfg(flat_max_items=500))
    assert spec.kind == "flat"
    assert any("falling back to exact Flat" in n for n in spec.notes)


def test_hnsw_is_wrapped_in_idmap():
    spec = choose_index(60_000, 64, cfg(flat_max_items=50_000, kind_above_flat="hnsw", hnsw_m=24, hnsw_ef_search=96))
    assert spec.factory == "IDMap,HNSW24"
    assert spec.params["efSearch"] == 96


def test_ivf_pq_needs_enough_points_and_divisible_dim():
    # PQ 8 bits: 39 * 256 = 9,984 training points needed.
    ok = choose_index(60_000, 64, cfg(flat_max_items=50_000, kind_above_flat="ivf_pq", pq_m=16, ivf_nlist=256))
    assert ok.factory == "IVF256,PQ16x8"
    few = choose_index(5_000, 64, cfg(flat_max_items=1000, kind_above_flat="ivf_pq", pq_m=16, ivf_nlist=64))
    assert few.kind == "ivf_flat" and any("9984" in n for n in few.notes)
    odd = choose_index(60_000, 60, cfg(flat_max_items=50_000, kind_above_flat="ivf_pq", pq_m=16))
    assert odd.kind == "ivf_flat" and any("does not divide" in n for n in odd.notes)


def test_empty_catalogue_is_an_error():
    with pytest.raises(ValueError, match="empty catalogue"):
        choose_index(0, 64, IndexConfig())


def test_recall_at_k_hand_computed():
    # query 1 shares {1, 2} of 3 -> 2/3; query 2 shares all 3 -> 3/3; mean = 5/6.
    approx = np.array([[1, 2, 3], [7, 8, 9]])
    exact = np.array([[1, 2, 4], [9, 8, 7]])
    assert recall_at_k(approx, exact) == pytest.approx(5 / 6)


def test_normalized_rows():
    x = normalized(np.array([[3.0, 4.0], [0.0, 0.0]]))
    np.testing.assert_allclose(x, [[0.6, 0.8], [0.0, 0.0]])


def _data(n=2000, d=16, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(20, d))
    x = (centres[rng.integers(0, 20, n)] + 0.3 * rng.normal(size=(n, d))).astype(np.float32)
    ids = np.arange(n, dtype=np.int64) * 7 + 3  # custom, non-contiguous labels
    return x, ids


def test_flat_index_matches_numpy_cosine_with_custom_ids():
    x, ids = _data()
    q = np.random.default_rng(1).normal(size=(5, 16)).astype(np.float32)
    index = build_index(x, ids, IndexSpec("flat", "IDMap,Flat"))
    scores, labels = index.search(normalized(q), 10)
    # Independent reference: cosine similarity by numpy.
    cos = normalized(q) @ normalized(x).T
    want = ids[np.argsort(-cos, axis=1)[:, :10]]
    np.testing.assert_array_equal(labels, want)
    np.testing.assert_allclose(scores, np.sort(cos, axis=1)[:, ::-1][:, :10], rtol=1e-5)


@pytest.mark.parametrize("kind", ["ivf_flat", "hnsw"])
def test_ann_indexes_return_catalogue_labels_and_high_recall(kind):
    x, ids = _data()
    spec = choose_index(len(x), 16, cfg(flat_max_items=100, kind_above_flat=kind, ivf_nlist=32, ivf_nprobe=32))
    index = build_index(x, ids, spec)
    assert index.ntotal == len(x)
    q = np.random.default_rng(2).normal(size=(50, 16)).astype(np.float32)
    res = measure_ann(index, exact_index(x, ids), q, k=20, min_seconds=0.01)
    _, labels = index.search(normalized(q), 20)
    assert set(labels.ravel()) <= set(ids)
    if kind == "ivf_flat":
        # nprobe = nlist scans every list: IVF-Flat is then exact (recall exactly 1).
        assert res["recall"] == 1.0
    else:
        assert res["recall"] >= 0.9
    assert res["qps_ann"] > 0 and res["qps_exact"] > 0 and res["k"] == 20


def test_ivf_with_few_probes_loses_recall():
    # Probing 1 of 32 lists must miss some true neighbours: the measurement is able to fail.
    x, ids = _data()
    index = build_index(x, ids, IndexSpec("ivf_flat", "IVF32,Flat", {"nlist": 32, "nprobe": 1}))
    q = np.random.default_rng(3).normal(size=(50, 16)).astype(np.float32)
    res = measure_ann(index, exact_index(x, ids), q, k=50, min_seconds=0.01)
    assert res["recall"] < 0.95


def test_duplicate_ids_rejected():
    x, _ = _data(n=10)
    with pytest.raises(ValueError, match="not unique"):
        build_index(x, np.zeros(10, np.int64), IndexSpec("flat", "IDMap,Flat"))


def test_auto_nlist_is_four_sqrt_n():
    # 4 * sqrt(250,000) = 2,000; 250,000 // 39 = 6,410 lists allowed: no cap.
    spec = choose_index(250_000, 64, cfg(flat_max_items=100_000, ivf_nlist=0))
    assert spec.params["nlist"] == 2000


def test_tuning_doubles_nprobe_until_target():
    x, ids = _data()
    spec = IndexSpec("ivf_flat", "IVF32,Flat", {"nlist": 32, "nprobe": 1})
    index = build_index(x, ids, spec)
    reference = exact_index(x, ids)
    q = np.random.default_rng(4).normal(size=(40, 16)).astype(np.float32)
    tuned, trials = tune_search_params(index, reference, q, 20, spec, target=0.99)
    values = [t["value"] for t in trials]
    assert values == [1, 2, 4, 8, 16, 32][: len(values)]
    assert tuned.params["nprobe"] == values[-1] and tuned.params["nlist"] == 32
    # Independent check of the chosen setting: numpy cosine top-20 vs the index at that nprobe.
    cos = normalized(q) @ normalized(x).T
    want = ids[np.argsort(-cos, axis=1)[:, :20]]
    _, got = index.search(normalized(q), 20)
    assert recall_at_k(got, want) == pytest.approx(trials[-1]["recall"])
    assert trials[-1]["recall"] >= 0.99 or values[-1] == 32
    # Exact indexes and target 0 are left alone.
    assert tune_search_params(index, reference, q, 20, spec, target=0.0) == (spec, [])
