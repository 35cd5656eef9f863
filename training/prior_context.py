"""The popularity prior of one day's evaluation (the rule itself is in :mod:`training.prior`).

Day D's model is scored with ``cos / tau + beta log(1 + c_i)``: beta chosen on the grid records
of earlier days only (each one's evaluation days all precede D's), counts ``c_i`` of distinct
users over the ``training.prior_days`` days up to the last training day (what the candidate's
weights saw). Every evaluation also records recall@50 of each beta of the grid: the record
later days choose from.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from core.config import ConfigError
from core.context import RunContext
from training.data import day_metrics, distinct_click_users
from training.metrics import Ranker
from training.prior import GridRecord, PriorChoice, choose_beta, prior_term, record_from_metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PriorContext:
    """The popularity prior of one evaluation (training.prior).

    Attributes:
        choice: beta and the earlier days it was chosen on.
        days: L, the days the counts cover.
        count_days: the ``click_positives`` days counted (ending at the last training day).
        counts: float64 [N] distinct users per candidate item (catalogue order of the ranker).
        temperature: the model's tau (the prior is in units of cos / tau).
    """

    choice: PriorChoice
    days: int
    count_days: list[str]
    counts: np.ndarray
    temperature: float

    def to_dict(self) -> dict[str, Any]:
        return {"mode": "validated", "days": self.days, "count_days": self.count_days, "temperature": self.temperature,
                **self.choice.to_dict()}


def prior_record_days(ctx: RunContext) -> list[str]:
    """The earlier days whose grid records day ``ctx.ds`` pools, newest first: they end at the
    window's last training day, so each one's evaluation days all precede ds's and no record
    has seen ds's held-out clicks."""
    return list(reversed(ctx.window.before(ctx.cfg.training.prior_history_days)))


def prior_records(ctx: RunContext) -> list[GridRecord]:
    """Grid records in the ``metrics.json`` of the days :func:`prior_record_days` names."""
    records = (record_from_metrics(day, m) for day, m in day_metrics(ctx.layout, prior_record_days(ctx)))
    return [r for r in records if r is not None]


def prior_context(ctx: RunContext, item_ids: np.ndarray, temperature: float) -> PriorContext | None:
    """Day ds's prior for scoring the model on ds (None when ``training.prior`` is off): beta
    chosen on earlier days' records, counts of the ``prior_days`` days up to the last training
    day (what the candidate's weights saw)."""
    t = ctx.cfg.training
    if t.prior == "off":
        return None
    if t.prior_days < 1 or not t.prior_grid:
        raise ConfigError(
            f"training.prior_days ({t.prior_days}) must be >= 1 and training.prior_grid ({list(t.prior_grid)}) non-empty "
            'when training.prior = "validated"'
        )
    choice = choose_beta(prior_records(ctx), t.prior_grid)
    counts, found = distinct_click_users(ctx.layout, list(ctx.window.before(t.prior_days)), item_ids)
    log.info("ds=%s: popularity prior beta %s (chosen on %s), counts over %s", ctx.ds, choice.beta, list(choice.chosen_on) or "no record", found)
    return PriorContext(choice, t.prior_days, found, counts, temperature)


def model_metrics(ranker: Ranker, user_emb: np.ndarray, item_emb: np.ndarray, prior: PriorContext | None = None,
                  beta: float | None = None) -> dict[str, float]:
    """The model's metrics; with a prior, ranked by ``cos / tau + beta log(1 + c)`` (beta: the
    prior's choice unless given). beta 0 ranks by the cosine alone, exactly as without a prior."""
    items = torch.from_numpy(item_emb).to(ranker.device)
    users = torch.from_numpy(user_emb).to(ranker.device)
    b = (prior.choice.beta if beta is None else beta) if prior is not None else 0.0
    if b == 0.0:
        return ranker.run(lambda rows: users[rows] @ items.T)
    term = torch.from_numpy(prior_term(prior.counts, b)).to(ranker.device, torch.float32)
    tau = prior.temperature
    return ranker.run(lambda rows: (users[rows] @ items.T) / tau + term[None, :])


def prior_grid(ranker: Ranker, user_emb: np.ndarray, item_emb: np.ndarray, prior: PriorContext, grid: tuple[float, ...]) -> dict[str, Any]:
    """recall@50 (and its SE) of every beta of ``grid`` on this day: the record later days choose from."""
    rows = []
    users = 0
    for b in grid:
        m = model_metrics(ranker, user_emb, item_emb, prior, beta=float(b))
        rows.append({"beta": float(b), "recall@50": m["recall@50"], "recall@50_se": m["recall@50_se"]})
        users = int(m["users_scored"])
    return {"grid": rows, "grid_users": users}
