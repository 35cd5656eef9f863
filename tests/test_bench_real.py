"""The real-data benchmark's fold split, baselines and metrics on a hand-computed example.

Example (cutoff 100, test window 50 s; every event a click unless said otherwise):

    before the cutoff           in [100, 150)                    later
    A: i1@10 i2@60 (i4@40 shown) A: i3@110 i2@120 i5@130          A: i1@150
    B: i2@20 i3@70               B: i1@105
    C: i2@80                     C: i4@140
                                 D: i1@101 (no click before: not evaluated)

Candidates = items with an event before 100 = i1 i2 i3 i4 (i4 only shown). Train clicks
(rows A B C, columns i1..i4): A 1100, B 0110, C 0100. Targets: A {i3} + i5 (first seen at 130:
an unknown item, a miss for everyone; i2 was clicked before, so no target), B {i1}, C {i4}.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from bench import real_eval as re_


def _events() -> pd.DataFrame:
    rows = [
        ("A", "i1", 10, True), ("A", "i4", 40, False), ("A", "i2", 60, True), ("B", "i2", 20, True),
        ("B", "i3", 70, True), ("C", "i2", 80, True), ("A", "i3", 110, True), ("A", "i2", 120, True),
        ("A", "i5", 130, True), ("B", "i1", 105, True), ("C", "i4", 140, True), ("D", "i1", 101, True),
        ("A", "i1", 150, True),
    ]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "ts", "click"])


@pytest.fixture
def fold() -> re_.Fold:
    return re_.build_fold(_events(), cutoff=100, window_s=50)


def test_fold_split(fold):
    assert list(fold.item_ids) == ["i1", "i2", "i3", "i4"]
    assert list(fold.user_ids) == ["A", "B", "C"]
    assert fold.train.toarray().tolist() == [[1, 1, 0, 0], [0, 1, 1, 0], [0, 1, 0, 0]]
    assert fold.targets.toarray().tolist() == [[0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 1]]
    assert fold.unknown_targets.tolist() == [1, 0, 0]
    assert fold.n_targets.tolist() == [2, 1, 1]
    # Recent popularity over [50, 100): A i2@60, B i3@70, C i2@80 -> distinct users 0, 2, 1, 0.
    assert fold.recent.tolist() == [0, 2, 1, 0]
    # Popularity: all clicks before 100 -> i1 1 (A), i2 3 (A B C), i3 1 (B), i4 0.
    assert re_.popularity_scores(fold).tolist() == [1, 3, 1, 0]


def test_rank_topk_excludes_and_breaks_ties_by_position():
    scores = np.array([[1.0, 3.0, 1.0, 0.0], [5.0, -np.inf, 2.0, 2.0]])
    exclude = sp.csr_matrix(np.array([[0, 1, 0, 0], [1, 0, 0, 0]]))
    # Row 0: i2 excluded; i1 and i3 tie at 1 -> i1 first. Row 1: i1 excluded, i2 unrankable (-inf).
    assert re_.rank_topk(scores, exclude, k=4).tolist() == [[0, 2, 3, -1], [2, 3, -1, -1]]


def test_metrics_by_hand():
    # One user with 3 targets, hits at ranks 2 and 5 (of 100): recall@10 = 2/3; NDCG@50 =
    # (1/log2(3) + 1/log2(6)) / (1 + 1/log2(3) + 1/log2(4)) = (0.63093 + 0.38685) / 2.13093 = 0.47762.
    hits = np.zeros((1, 100), dtype=bool)
    hits[0, [1, 4]] = True
    m = re_.user_metrics(hits, np.array([3]))
    assert m["recall@10"][0] == pytest.approx(2 / 3)
    assert m["ndcg@50"][0] == pytest.approx(0.47762, abs=1e-5)


def test_popularity_end_to_end(fold):
    pop = re_.popularity_scores(fold)
    res = re_.evaluate(fold, lambda rows: np.tile(pop, (len(rows), 1)))
    # A: i1 i2 excluded -> [i3, i4], i3 hit at rank 1, 1 of 2 targets -> recall 0.5,
    #    NDCG 1 / (1 + 1/log2 3) = 0.61315.
    # B: i2 i3 excluded -> [i1, i4], hit at rank 1 -> recall 1, NDCG 1.
    # C: i2 excluded -> i1 and i3 tie at 1 -> [i1, i3, i4], hit at rank 3 -> recall 1, NDCG 1/log2 4 = 0.5.
    assert res["recall@10"] == pytest.approx((0.5 + 1 + 1) / 3)
    assert res["ndcg@50"] == pytest.approx((0.61315 + 1 + 0.5) / 3, abs=1e-5)
    # SE of recall@50 over [0.5, 1, 1]: std (ddof 1) = sqrt(0.16667 / 2) = 0.28868; / sqrt(3) = 0.16667.
    assert res["recall@50_se"] == pytest.approx(0.16667, abs=1e-5)
    assert res["users"] == 3


def test_itemcf_by_hand(fold):
    # Users per item: i1 {A}, i2 {A, B, C}, i3 {B}, i4 {}. Co-clicks: (i1, i2) = 1 (A), (i2, i3) = 1 (B).
    # Cosine: 1 / sqrt(1 * 3) = 0.57735 for both pairs; i1-i3 0; diagonal 0; i4 nothing.
    s = re_.itemcf_similarity(fold.train).toarray()
    c = 1 / np.sqrt(3)
    np.testing.assert_allclose(s, [[0, c, 0, 0], [c, 0, c, 0], [0, c, 0, 0], [0, 0, 0, 0]], atol=1e-12)
    # C clicked i2 only: scores i1 = i3 = 0.57735, i2 = 0 (own similarity), i4 = 0.
    np.testing.assert_allclose(re_.itemcf_scores(fold, re_.itemcf_similarity(fold.train), np.array([2]))[0], [c, 0, c, 0])


def test_als_cg_matches_the_exact_normal_equations():
    # Reference: for each user u, solve (Y^T Y + reg I + Y^T diag(alpha r_u) Y) x_u = Y^T (1 + alpha r_u) p_u
    # directly with numpy; f CG steps on an f-dimensional system reach it (exact arithmetic).
    rng = np.random.default_rng(1)
    r = sp.csr_matrix(np.array([[2, 0, 1, 0, 0], [0, 1, 0, 0, 3], [0, 0, 0, 0, 0]], dtype=np.float32))
    y = rng.standard_normal((5, 3))
    reg, alpha = 0.5, 2.0
    x = re_._cg_solve(r, np.zeros((3, 3)), y, reg, alpha, steps=3)
    for u in range(3):
        ru = r.toarray()[u]
        a = y.T @ y + reg * np.eye(3) + y.T @ np.diag(alpha * ru) @ y
        b = y.T @ ((1 + alpha * ru) * (ru > 0))
        np.testing.assert_allclose(x[u], np.linalg.solve(a, b), rtol=1e-6, atol=1e-9)


def test_als_fit_recovers_the_block_structure():
    # Two groups of users, each clicking its own 3 items: the held-out item of a group scores
    # higher for that group's users than the other group's items.
    block = np.zeros((6, 6), dtype=np.float32)
    block[:3, :3] = 1
    block[3:, 3:] = 1
    block[0, 2] = 0  # user 0 has not clicked item 2 (its own group's)
    x, y = re_.als_fit(sp.csr_matrix(block), factors=2, reg=0.1, alpha=5.0, iterations=10)
    s = x @ y.T
    assert s[0, 2] > s[0, 3:].max()
