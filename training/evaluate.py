"""Held-out evaluation of an exported model: the model, the popularity bars and (when the caller
has one, e.g. the simulator's truth) an oracle, on the same users, targets and exclusions,
scoring the whole active catalogue (protocol in :mod:`training.metrics`).

Entry points: :func:`evaluate_day` (the pipeline's evaluate step: day ds's model against the
bars, rewrites its metrics.json) and :func:`evaluate_model_dir` (any exported directory, e.g.
the published version the publish gate compares with).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.context import RunContext
from core.errors import UserError
from core.results.training import EvaluateResult
from training.baselines import popularity_baselines
from training.data import Catalogue, EvalSet, load_catalogue, load_eval_set, load_item_sampling
from training.embed import embed_items, embed_users, load_exported
from training.export import gate_model_dir, write_metrics
from training.metrics import Ranker, tail_and_cold
from training.prior_context import model_metrics, prior_context, prior_grid
from training.towers import ModelSpec

log = logging.getLogger(__name__)

# (user ids [U], item ids [N], strings) -> float [U, N] scores; KeyError for an id it does not know.
Oracle = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class _Inputs:
    """What one evaluation scores: the active catalogue rows, the held-out users, the ranker."""

    catalogue: Catalogue
    ev: EvalSet
    rows: np.ndarray  # active catalogue rows, the ranker's candidate order
    window_clicks: np.ndarray  # [len(rows)] training-window clicks (item_sampling)
    ranker: Ranker


def _inputs(ctx: RunContext, spec: ModelSpec) -> _Inputs:
    layout, t = ctx.layout, ctx.cfg.training
    catalogue = load_catalogue(layout, ctx.ds, spec.item_cat_columns, spec.item_num_columns)
    ev = load_eval_set(layout, ctx.ds, spec.user_cat_columns, spec.user_num_columns, max(spec.history_length, 1))
    rows = np.flatnonzero(catalogue.active)
    sampling = load_item_sampling(layout, ctx.ds)
    clicks_by_idx = np.zeros(int(max(catalogue.item_idx.max(), sampling.column("item_idx").to_numpy().max(initial=0))) + 1)
    clicks_by_idx[sampling.column("item_idx").to_numpy()] = sampling.column("clicks").to_numpy()
    window_clicks = clicks_by_idx[catalogue.item_idx[rows]]
    tail, cold = tail_and_cold(window_clicks, t.head_click_share)
    device = torch.device("cuda" if (t.device != "cpu" and torch.cuda.is_available()) else "cpu")
    ranker = Ranker(ev, catalogue.item_idx[rows], tail, cold, t.eval_k, device)
    return _Inputs(catalogue, ev, rows, window_clicks, ranker)


def evaluate_model_dir(ctx: RunContext, model_dir: Path, *, oracle: Oracle | None = None) -> dict[str, Any]:
    """Evaluate any exported model directory (candidate or published version) on day ds's
    held-out set: ``model`` metrics and the counts (plus ``oracle`` when one is given). Only the
    TorchScript towers and model_config.json are used, so an older version works: ids beyond
    its tables map to OOV inside the towers. With the popularity prior on, the model is scored
    with day ds's beta and counts, the same as the candidate, so the gate compares the two
    weights under one serving rule."""
    user, item, spec = load_exported(Path(model_dir))
    x = _inputs(ctx, spec)
    prior = prior_context(ctx, x.catalogue.item_id[x.rows], spec.temperature)
    out = {"model": model_metrics(x.ranker, embed_users(user, x.ev), embed_items(item, x.catalogue, x.rows), prior),
           **x.ranker.counts()}
    if prior is not None:
        out["prior"] = prior.to_dict()
    if oracle is not None:
        out["oracle"] = oracle_metrics(x, oracle)
    return out


def evaluate_with_baselines(ctx: RunContext, model_dir: Path, *, oracle: Oracle | None = None) -> dict[str, Any]:
    """Model + the popularity bars + the oracle (``oracle`` None: the ``oracle`` entry is None)."""
    user, item, spec = load_exported(Path(model_dir))
    x = _inputs(ctx, spec)
    out: dict[str, Any] = {"ds": ctx.ds, **x.ranker.counts()}
    user_emb, item_emb = embed_users(user, x.ev), embed_items(item, x.catalogue, x.rows)
    prior = prior_context(ctx, x.catalogue.item_id[x.rows], spec.temperature)
    out["model"] = model_metrics(x.ranker, user_emb, item_emb, prior)
    model_r50 = x.ranker.last_recall50
    out["baselines"], out["baseline_days"] = popularity_baselines(ctx, x.catalogue, x.rows, x.window_clicks, x.ranker, model_r50)
    if prior is not None:
        out["prior"] = {**prior.to_dict(), **prior_grid(x.ranker, user_emb, item_emb, prior, ctx.cfg.training.prior_grid)}
    out["oracle"] = oracle_metrics(x, oracle) if oracle is not None else None
    m50 = out["model"]["recall@50"]
    best_name = max(out["baselines"], key=lambda k: out["baselines"][k]["recall@50"])
    best = out["baselines"][best_name]["recall@50"]
    out["best_baseline"] = best_name
    out["lift_recall@50_vs_best_baseline"] = (m50 / best - 1.0) if best > 0 else None
    return out


def oracle_metrics(x: _Inputs, oracle: Oracle) -> dict[str, float] | None:
    """The metrics of ranking by the oracle's scores; None (with a warning) when it does not
    know some evaluation user or item (data not from the simulation it describes)."""
    item_ids = x.catalogue.item_id[x.rows]
    try:
        return x.ranker.run(lambda rows: torch.from_numpy(np.asarray(oracle(x.ev.user_id[rows], item_ids), dtype=np.float32)))
    except KeyError as exc:
        log.warning("oracle skipped: the simulator truth does not know some eval ids (%s)", exc)
        return None


def evaluate_day(ctx: RunContext, *, oracle: Oracle | None = None) -> EvaluateResult:
    """Re-evaluate ``Layout.model_dir(ds)`` on day ds's held-out set against the popularity bars
    and the oracle; rewrites metrics.json (idempotent) and returns it."""
    model_dir = ctx.layout.model_dir(ctx.ds)
    if not (model_dir / "user_tower.pt").is_file():
        raise UserError(f"no trained model for ds={ctx.ds} in {model_dir}: run `twotower train --ds {ctx.ds}` first")
    # After the continued training on ds the gate's model is the kept candidate (never trained on ds).
    metrics = evaluate_with_baselines(ctx, gate_model_dir(model_dir), oracle=oracle)
    old = model_dir / "metrics.json"
    if old.is_file():
        recorded = json.loads(old.read_text())
        for key in ("train", "protocol", "search"):
            if recorded.get(key) is not None:
                metrics[key] = recorded[key]
    write_metrics(model_dir, metrics)
    return EvaluateResult.from_dict(metrics)
