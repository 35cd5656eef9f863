"""The arithmetic of the real-data benchmark (bench/bench_real.py): folds, baselines, metrics.

numpy and scipy only (no Spark, no torch), so tests/test_bench_real.py checks every number on a
hand-computed example. Items and users are dense integers inside a fold: item j of a fold is
its j-th candidate (an item known before the cutoff), user u its u-th evaluated user.

Shapes: ``B`` users of a batch, ``N`` candidate items, ``K`` ranks kept (100).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

KS = (10, 50, 100)
NDCG_K = 50
DAY_S = 86_400


@dataclass(frozen=True)
class Fold:
    """One evaluation problem: what is known before ``cutoff`` and what happens in the test window.

    Attributes:
        item_ids: [N] candidate item ids (every item with an event before the cutoff), sorted.
        user_ids: [U] evaluated users (a click before the cutoff and a target in the window).
        train: csr [n_train_users, N] click counts before the cutoff; row r is ``train_user_ids[r]``.
        train_user_ids: [n_train_users] users with a click before the cutoff.
        user_rows: [U] row of each evaluated user in ``train``.
        targets: csr [U, N] 1 where the user clicked a candidate in the window that they had not
            clicked before the cutoff.
        unknown_targets: [U] window clicks on items first seen at or after the cutoff (misses for
            every method; they count in the recall denominator).
        recent: [N] distinct users clicking each item in [cutoff - window, cutoff).
    """

    cutoff: int
    window_s: int
    item_ids: np.ndarray
    user_ids: np.ndarray
    train: sp.csr_matrix
    train_user_ids: np.ndarray
    user_rows: np.ndarray
    targets: sp.csr_matrix
    unknown_targets: np.ndarray
    recent: np.ndarray

    @property
    def n_targets(self) -> np.ndarray:
        return np.asarray(self.targets.sum(axis=1)).ravel().astype(np.int64) + self.unknown_targets

    def exclude(self, rows: slice | np.ndarray) -> sp.csr_matrix:
        """csr [B, N]: the items each evaluated user clicked before the cutoff."""
        x = self.train[self.user_rows[rows]]
        x.data[:] = 1
        return x

    def summary(self) -> dict:
        return {
            "cutoff": pd.to_datetime(self.cutoff, unit="s").strftime("%Y-%m-%d"),
            "test_days": self.window_s // DAY_S,
            "candidates": len(self.item_ids),
            "train_users": len(self.train_user_ids),
            "train_clicks": int(self.train.sum()),
            "users": len(self.user_ids),
            "targets": int(self.n_targets.sum()),
            "targets_unknown_item": int(self.unknown_targets.sum()),
        }


def build_fold(events: pd.DataFrame, cutoff: int, window_s: int) -> Fold:
    """Split ``events`` (columns user_id, item_id, ts [unix s], click [bool]) at ``cutoff``.

    Candidates: items with any event (clicked or not) before the cutoff. Test: clicks in
    [cutoff, cutoff + window_s) of users with a click before the cutoff, minus the items they
    clicked before it; users left without a target are not evaluated.
    """
    before = events[events["ts"] < cutoff]
    item_ids = np.sort(before["item_id"].unique())
    clicks = before[before["click"]]
    train_user_ids = np.sort(clicks["user_id"].unique())
    r = np.searchsorted(train_user_ids, clicks["user_id"].to_numpy())
    c = np.searchsorted(item_ids, clicks["item_id"].to_numpy())
    train = sp.csr_matrix((np.ones(len(r), dtype=np.float32), (r, c)), shape=(len(train_user_ids), len(item_ids)))
    train.sum_duplicates()

    recent_clicks = clicks[clicks["ts"] >= cutoff - window_s].drop_duplicates(["user_id", "item_id"])
    recent = np.bincount(np.searchsorted(item_ids, recent_clicks["item_id"].to_numpy()), minlength=len(item_ids))

    window = events[(events["ts"] >= cutoff) & (events["ts"] < cutoff + window_s) & events["click"]]
    window = window[window["user_id"].isin(train_user_ids)].drop_duplicates(["user_id", "item_id"])
    wr = np.searchsorted(train_user_ids, window["user_id"].to_numpy())
    pos = np.searchsorted(item_ids, window["item_id"].to_numpy())
    known = (pos < len(item_ids)) & (item_ids[np.minimum(pos, len(item_ids) - 1)] == window["item_id"].to_numpy())
    # A known item the user already clicked is no target.
    seen = np.zeros(len(wr), dtype=bool)
    if known.any():
        seen[known] = np.asarray(train[wr[known], pos[known]]).ravel() > 0
    keep = ~seen
    wr, pos, known = wr[keep], pos[keep], known[keep]
    rows_with_target = np.unique(wr)
    user_index = np.searchsorted(rows_with_target, wr)
    targets = sp.csr_matrix(
        (np.ones(int(known.sum()), dtype=np.float32), (user_index[known], pos[known])),
        shape=(len(rows_with_target), len(item_ids)),
    )
    unknown = np.bincount(user_index[~known], minlength=len(rows_with_target))
    return Fold(
        cutoff=int(cutoff),
        window_s=int(window_s),
        item_ids=item_ids,
        user_ids=train_user_ids[rows_with_target],
        train=train,
        train_user_ids=train_user_ids,
        user_rows=rows_with_target,
        targets=targets,
        unknown_targets=unknown,
        recent=recent.astype(np.float32),
    )


# -- ranking and metrics ----------------------------------------------------------------------


def rank_topk(scores: np.ndarray, exclude: sp.csr_matrix, k: int = max(KS)) -> np.ndarray:
    """Top-``k`` item positions per row of ``scores`` [B, N], excluded items and -inf removed.

    Ties go to the lower item position (stable), so every method is deterministic. Returns
    int64 [B, k]; -1 where a row has fewer than ``k`` rankable items.
    """
    s = np.array(scores, dtype=np.float64, copy=True)
    ex = exclude.tocoo()
    s[ex.row, ex.col] = -np.inf
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    valid = np.isfinite(np.take_along_axis(s, order, axis=1))
    out = np.where(valid, order, -1)
    if out.shape[1] < k:
        out = np.hstack([out, np.full((out.shape[0], k - out.shape[1]), -1, dtype=out.dtype)])
    return out.astype(np.int64)


def hit_matrix(topk: np.ndarray, targets: sp.csr_matrix) -> np.ndarray:
    """bool [B, K]: whether the item at each rank is one of the row's targets."""
    dense = targets.toarray() > 0
    safe = np.maximum(topk, 0)
    return np.take_along_axis(dense, safe, axis=1) & (topk >= 0)


def user_metrics(hits: np.ndarray, n_targets: np.ndarray) -> dict[str, np.ndarray]:
    """Per-user recall@10/50/100 (hits / targets) and NDCG@50 with binary gains."""
    out = {f"recall@{k}": hits[:, :k].sum(axis=1) / n_targets for k in KS}
    disc = 1.0 / np.log2(np.arange(2, NDCG_K + 2))
    dcg = (hits[:, :NDCG_K] * disc).sum(axis=1)
    idcg = np.cumsum(disc)[np.minimum(n_targets.astype(np.int64), NDCG_K) - 1]
    out[f"ndcg@{NDCG_K}"] = dcg / idcg
    return out


def summarise(per_user: dict[str, np.ndarray]) -> dict[str, float]:
    """Means over users, the standard error of recall@50 (std / sqrt(n)) and the user count."""
    n = len(per_user["recall@50"])
    out = {k: float(np.mean(v)) for k, v in per_user.items()}
    out["recall@50_se"] = float(np.std(per_user["recall@50"], ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    out["users"] = n
    return out


def evaluate(fold: Fold, score_batch, batch: int = 1024) -> dict[str, float]:
    """Score every evaluated user with ``score_batch(rows) -> float [B, N]`` and summarise.

    ``rows`` are positions into ``fold.user_ids``; -inf marks an item the method cannot rank.
    """
    parts: dict[str, list[np.ndarray]] = {}
    n_t = fold.n_targets
    for start in range(0, len(fold.user_ids), batch):
        rows = np.arange(start, min(start + batch, len(fold.user_ids)))
        topk = rank_topk(score_batch(rows), fold.exclude(rows))
        m = user_metrics(hit_matrix(topk, fold.targets[rows]), n_t[rows])
        for k, v in m.items():
            parts.setdefault(k, []).append(v)
    return summarise({k: np.concatenate(v) for k, v in parts.items()})


# -- baselines --------------------------------------------------------------------------------


def popularity_scores(fold: Fold) -> np.ndarray:
    """[N] clicks before the cutoff."""
    return np.asarray(fold.train.sum(axis=0)).ravel()


def itemcf_similarity(train: sp.csr_matrix) -> sp.csr_matrix:
    """Item-item cosine over co-clicks: S_ij = |U_i & U_j| / sqrt(|U_i| |U_j|), S_ii = 0."""
    x = train.copy()
    x.data[:] = 1.0
    co = (x.T @ x).tocsr().astype(np.float64)
    n = co.diagonal()
    inv = np.where(n > 0, 1.0 / np.sqrt(np.maximum(n, 1e-300)), 0.0)
    s = sp.diags(inv) @ co @ sp.diags(inv)
    s = s.tolil()
    s.setdiag(0.0)
    s = s.tocsr()
    s.eliminate_zeros()
    return s


def itemcf_scores(fold: Fold, sim: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
    """[B, N] sum of the similarities of each item to the user's clicked items."""
    return np.asarray((fold.exclude(rows) @ sim).todense())


def _cg_solve(r: sp.csr_matrix, x: np.ndarray, y: np.ndarray, reg: float, alpha: float, steps: int) -> np.ndarray:
    """A few conjugate-gradient steps on every row at once (Hu, Koren & Volinsky's normal equations).

    For row u with observed columns i (count r_ui): ``(Y^T Y + reg I + sum_i alpha r_ui y_i y_i^T) x_u
    = sum_i (1 + alpha r_ui) y_i``; confidence 1 + alpha r_ui, preference 1 on observed cells
    and 0 elsewhere. The matrix is never formed: its product with all rows is Y^T Y part + a
    sparse product over the observed cells (Takács et al. 2011, as in the `implicit` library).
    """
    f = y.shape[1]
    yty = y.T @ y + reg * np.eye(f, dtype=y.dtype)
    rows = np.repeat(np.arange(r.shape[0]), np.diff(r.indptr))
    cols = r.indices
    w = (alpha * r.data).astype(y.dtype)

    def a_mul(v: np.ndarray) -> np.ndarray:
        d = np.einsum("ij,ij->i", v[rows], y[cols]) * w
        return v @ yty + sp.csr_matrix((d, cols, r.indptr), shape=r.shape) @ y

    b = sp.csr_matrix(((1.0 + alpha * r.data).astype(y.dtype), cols, r.indptr), shape=r.shape) @ y
    res = b - a_mul(x)
    p = res.copy()
    rs_old = np.einsum("ij,ij->i", res, res)
    for _ in range(steps):
        ap = a_mul(p)
        denom = np.einsum("ij,ij->i", p, ap)
        step = np.divide(rs_old, denom, out=np.zeros_like(rs_old), where=denom > 0)
        x = x + step[:, None] * p
        res = res - step[:, None] * ap
        rs_new = np.einsum("ij,ij->i", res, res)
        beta = np.divide(rs_new, rs_old, out=np.zeros_like(rs_new), where=rs_old > 0)
        p = res + beta[:, None] * p
        rs_old = rs_new
    return x


def als_fit(
    train: sp.csr_matrix, factors: int, reg: float, alpha: float, iterations: int = 15, cg_steps: int = 3, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Implicit ALS (Hu, Koren & Volinsky 2008) on click counts; returns (user [n_u, f], item [N, f])."""
    rng = np.random.default_rng(seed)
    r = train.tocsr().astype(np.float32)
    rt = r.T.tocsr()
    x = (rng.standard_normal((r.shape[0], factors)) * 0.01).astype(np.float32)
    y = (rng.standard_normal((r.shape[1], factors)) * 0.01).astype(np.float32)
    for _ in range(iterations):
        x = _cg_solve(r, x, y, reg, alpha, cg_steps)
        y = _cg_solve(rt, y, x, reg, alpha, cg_steps)
    return x, y
