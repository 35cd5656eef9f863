"""The popularity bars the model is compared with, on the same users, targets and exclusions."""

from __future__ import annotations

import logging

import numpy as np

from core.context import RunContext
from training.data import Catalogue, days_clicks
from training.metrics import Ranker, paired_difference_se

log = logging.getLogger(__name__)

# Popularity bars over the last N training days (ending at the last training day), besides the
# whole window: on real logs the best window varies, so the gate's bar is the strongest of them.
POPULARITY_DAYS = {"popularity_recent": 1, "popularity_7d": 7, "popularity_28d": 28}


def popularity_baselines(
    ctx: RunContext, catalogue: Catalogue, rows: np.ndarray, window_clicks: np.ndarray, ranker: Ranker,
    model_recall50: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[dict[str, dict[str, float]], dict[str, list[str]]]:
    """Popularity over the whole window (``item_sampling.clicks``) and over the last 1, 7 and
    28 training days (``click_positives`` of those days that exist), each ranked by
    :meth:`Ranker.run_global` on the same users, targets and exclusions as the model. A bar
    whose days are the same as a shorter one's (no older partitions) is not repeated.

    ``model_recall50`` (the model's per-user recall@50, ``Ranker.last_recall50``): each bar
    then also gets ``recall@50_diff_se``, the standard error of the per-user difference
    model - bar (paired by user: the gate's test of "beats popularity")."""
    window = ctx.window

    def _popularity(ranker: Ranker, counts: np.ndarray) -> dict[str, float]:
        out = popularity_ranking(ranker, counts)
        if model_recall50 is not None:
            out["recall@50_diff_se"] = paired_difference_se(model_recall50, ranker.last_recall50)
        return out

    results = {"popularity_window": _popularity(ranker, window_clicks)}
    days_of = {"popularity_window": list(window.train_days)}
    seen: dict[tuple[str, ...], str] = {}
    for name, n in POPULARITY_DAYS.items():
        counts, found = days_clicks(ctx.layout, list(window.before(n)), catalogue)
        if name != "popularity_recent" and (not found or tuple(found) in seen):
            continue
        if not found:
            log.warning("no click_positives for %s: the recent-day popularity baseline is empty", window.last_train_day)
        seen[tuple(found)] = name
        results[name] = _popularity(ranker, counts[rows])
        days_of[name] = found
    return results, days_of


def popularity_ranking(ranker: Ranker, counts: np.ndarray) -> dict[str, float]:
    """Everyone gets the same ranking by count; ties broken by catalogue order (deterministic)."""
    return ranker.run_global(np.argsort(-counts.astype(np.float64), kind="stable"))
