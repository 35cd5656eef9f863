"""The popularity prior of the served score and the rule that picks its weight.

The in-batch softmax with the logQ correction (``s(u, i) - log p_i``) trains scores from which
item popularity has been removed by design; on real logs popularity, and what is rising now,
carries much of tomorrow's clicks. Production retrieval adds it back at serving::

    score(u, i) = cos(u, i) / tau + beta * log(1 + c_i)

``c_i`` = distinct users who clicked item i in the last ``L`` days up to the last day the
weights saw; ``beta = 0`` is the model alone. ``beta`` is never chosen on the day it is judged
on: every daily evaluation (candidate trained through D-1, scored on D) records recall@50 for
each beta of a grid (one extra score term, no retraining), and day D takes the beta with the
best recall@50 pooled over the earlier days' records (:func:`choose_beta`), so the gate's
figure on D is an honest out-of-sample estimate of what the published index serves.

Pure numpy: the readers of ``click_positives`` and ``metrics.json`` live in ``training.data``
and ``training.prior_context``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.context import RunContext


def prior_term(counts: np.ndarray, beta: float) -> np.ndarray:
    """float64 [N]: ``beta * log(1 + c_i)`` for click counts ``counts`` [N] (>= 0)."""
    c = np.asarray(counts, dtype=np.float64)
    if c.size and c.min() < 0:
        raise ValueError(f"popularity prior: click counts must be >= 0, got min {c.min()}")
    return float(beta) * np.log1p(c)


def blended_scores(cos: np.ndarray, counts: np.ndarray, beta: float, temperature: float) -> np.ndarray:
    """float64 [B, N]: ``cos / temperature + beta * log(1 + c)``.

    Args:
        cos: [B, N] cosine similarities of B users with N items.
        counts: [N] distinct-user click counts of the items.
        beta: weight of the prior, in units of the model's logits (cos / temperature).
        temperature: the model's softmax temperature (> 0).
    """
    if temperature <= 0:
        raise ValueError(f"popularity prior: temperature must be > 0, got {temperature}")
    return np.asarray(cos, dtype=np.float64) / temperature + prior_term(counts, beta)[None, :]


@dataclass(frozen=True)
class GridRecord:
    """One earlier day's evaluation of the grid: recall@50 per beta over ``users`` users."""

    day: str
    users: int
    recall_at_50: dict[float, float]


@dataclass(frozen=True)
class PriorChoice:
    """The beta day D uses and where it came from.

    Attributes:
        beta: the chosen weight (0 = no prior).
        chosen_on: the earlier evaluation days whose records were pooled (empty: no record, beta 0).
        users: evaluation users summed over those days.
        pooled: beta -> recall@50 pooled over those days (users-weighted mean).
    """

    beta: float
    chosen_on: tuple[str, ...] = ()
    users: int = 0
    pooled: dict[float, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "beta": self.beta,
            "chosen_on": list(self.chosen_on),
            "chosen_on_users": self.users,
            "pooled_recall@50": [{"beta": b, "recall@50": r} for b, r in sorted(self.pooled.items())],
        }


def pooled_recall(records: Sequence[Any], keys: Sequence[Any]) -> tuple[list[Any], list[Any], int, dict[Any, float]]:
    """recall@50 of each key pooled over earlier days' records (``users`` and ``recall_at_50``:
    a :class:`GridRecord` or a ``training.search.SearchRecord``): records without users are
    skipped, only keys present in every used record compete, each day weighs by its users.

    Returns:
        (used records, competing keys in ``keys`` order, total users, key -> pooled recall@50).
    """
    used = [r for r in records if r.users > 0 and r.recall_at_50]
    competing = [k for k in keys if all(k in r.recall_at_50 for r in used)]
    total = sum(r.users for r in used)
    pooled = {k: sum(r.users * r.recall_at_50[k] for r in used) / total for k in competing} if used else {}
    return used, competing, total, pooled


def choose_beta(records: Sequence[GridRecord], grid: Sequence[float]) -> PriorChoice:
    """The grid's beta with the best recall@50 pooled over ``records`` (earlier days only).

    Pooling weights each day by its evaluation users (the same as scoring all their users
    together), so a day with few users does not count like one with many. Only betas present in
    every used record compete; records without users are skipped. Ties go to the smaller
    ``|beta|`` (the plainer model); no usable record gives beta 0.
    """
    used, betas, total, pooled = pooled_recall(records, [float(b) for b in grid])
    if not used or not betas:
        return PriorChoice(beta=0.0)
    best = min(betas, key=lambda b: (-pooled[b], abs(b), b))
    return PriorChoice(beta=best, chosen_on=tuple(sorted(r.day for r in used)), users=total, pooled=pooled)


def record_from_metrics(day: str, metrics: dict[str, Any]) -> GridRecord | None:
    """The grid record in a day's ``metrics.json`` (``prior.grid``), or None when it has none."""
    prior = metrics.get("prior") or {}
    grid = prior.get("grid") or []
    if not grid:
        return None
    users = int(prior.get("grid_users") or 0)
    return GridRecord(day=day, users=users, recall_at_50={float(g["beta"]): float(g["recall@50"]) for g in grid})


def index_prior(ctx: RunContext, metrics: dict, model_config: dict, item_id: np.ndarray) -> dict[str, Any] | None:
    """The popularity prior the index carries, or None for the plain index (what
    ``indexing.staging.build_index_for_day`` takes as its ``prior``).

    beta is the one the day's evaluation used (``metrics.json`` ``prior.beta``: the gate's
    figure and the index agree); the counts are distinct users over the ``prior.days`` days up
    to the last day the published weights saw (D after the continued training on D). Returns
    the manifest's ``prior`` entry plus ``weights`` float32 [N] = beta * tau * log(1 + c_i) in
    ``item_ids.parquet`` order.
    """
    from contracts.days import day_range
    from core.errors import PipelineError
    from training.data import distinct_click_users

    recorded = metrics.get("prior") or {}
    beta = float(recorded.get("beta") or 0.0)
    if beta == 0.0:
        return None
    tau = float(model_config["temperature"])
    trained = (model_config.get("extra") or {}).get("trained_days") or list(ctx.window.train_days)
    days = int(recorded.get("days") or ctx.cfg.training.prior_days)
    counts, found = distinct_click_users(ctx.layout, day_range(trained[-1], days), item_id)
    if not found:
        raise PipelineError(
            f"popularity prior for ds={ctx.ds}: beta {beta} but no click_positives partition among the {days} days up to "
            f"{trained[-1]}; run the ETL for those days or set training.prior = \"off\""
        )
    weights = (beta * tau * np.log1p(counts)).astype(np.float32)
    return {
        "beta": beta, "days": days, "temperature": tau, "count_days": found,
        "chosen_on": recorded.get("chosen_on", []), "chosen_on_users": recorded.get("chosen_on_users"),
        "gate_count_days": recorded.get("count_days", []),
        "weight_max": float(weights.max(initial=0.0)), "items_with_clicks": int((counts > 0).sum()),
        "score": "(cos(u, i) + beta * tau * log(1 + c_i)) / sqrt(2); query [u/|u|, 1]/sqrt(2), item [v/|v|, beta*tau*log(1 + c_i)]",
        "weights": weights,
    }
