"""The publish gate: the pure rule (:func:`gate_decision`) and its inputs for a staged
candidate (:func:`gate_candidate`): the candidate's held-out recall@50 against the published
model re-evaluated on the SAME held-out set, the best popularity bar, and the ANN recall.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.config import PublishConfig
from core.context import RunContext
from core.errors import PipelineError
from core.published import list_versions
from core.results.indexing import GateResult
from indexing.loaded_version import LoadedVersion
from storage.layout import Layout

GATE_METRIC = "recall@50"

# Evaluates a version directory on day ``ctx.ds``'s held-out set; returns metrics shaped like
# ``metrics.json`` (``{"model": {"recall@50": ..., "recall@50_se": ...}, ...}``).
Evaluator = Callable[[RunContext, Path], dict[str, Any]]


def gate_decision(
    candidate_recall: float,
    published_recall: float | None,
    ann_recall: float,
    cfg: PublishConfig,
    published_version: str | None = None,
    baseline_recall: float | None = None,
    *,
    candidate_se: float | None = None,
    published_se: float | None = None,
    baseline_se: float | None = None,
    baseline_name: str | None = None,
    eval_users: int | None = None,
    baseline_diff_se: float | None = None,
) -> GateResult:
    """Pure gate rule, decided with the held-out set's standard errors (SE of recall@50).

    With ``z = cfg.gate_z`` and ``se(a, b) = sqrt(se_a^2 + se_b^2)``:

    * drop rule (not for a first version, ``published_recall`` None): refuse when
      ``candidate < published * (1 - max_recall_drop)`` AND that shortfall exceeds
      ``z * se(candidate, published)``;
    * baseline rule (``min_recall_vs_best_baseline`` > 0, a first version too): with
      ``floor = baseline * min_recall_vs_best_baseline`` (``baseline_recall``: the strongest
      popularity bar on the same held-out users), refuse when ``candidate < floor`` AND
      ``floor - candidate > z * se(candidate, min_recall_vs_best_baseline * baseline_se)``, or,
      when ``baseline_diff_se`` (the SE of the per-user difference model - bar, paired on the
      same users) is known and the ratio is 1, ``> z * baseline_diff_se``;
    * refuse when ``ann_recall < min_ann_recall``.

    A rule whose threshold is crossed by less than ``z`` SE is *undecided*: it does not refuse,
    and the reason says the held-out set is too small to judge. The same holds when fewer than
    ``cfg.min_eval_users`` users were scored (every recall rule undecided). Missing SEs count
    as 0 (the plain threshold rule).
    """
    z = cfg.gate_z
    reasons: list[str] = []
    notes: list[str] = []
    undecided: list[str] = []
    threshold = None
    too_few = eval_users is not None and eval_users < cfg.min_eval_users
    if too_few:
        notes.append(
            f"held-out set too small to judge: {eval_users} users scored < publish.min_eval_users "
            f"{cfg.min_eval_users}; the recall rules did not decide (raise etl.eval_days or evaluate more users)"
        )
    below_baseline = baseline_recall is not None and candidate_recall < baseline_recall
    se_txt = f" +- {candidate_se:.4f}" if candidate_se is not None else ""
    if baseline_recall is not None and cfg.min_recall_vs_best_baseline > 0:
        floor = baseline_recall * cfg.min_recall_vs_best_baseline
        if baseline_diff_se is not None and cfg.min_recall_vs_best_baseline == 1.0:
            band = z * baseline_diff_se  # paired by user: the per-user noise common to both cancels
        else:
            band = z * _combined_se(candidate_se, None if baseline_se is None else cfg.min_recall_vs_best_baseline * baseline_se)
        if candidate_recall < floor:
            text = (
                f"{GATE_METRIC} {candidate_recall:.4f}{se_txt} is below publish.min_recall_vs_best_baseline "
                f"{cfg.min_recall_vs_best_baseline:g} x the best popularity baseline's {baseline_recall:.4f} "
                f"({baseline_name or 'popularity'}; minimum allowed {floor:.4f})"
            )
            if too_few:
                undecided.append("baseline")
            elif floor - candidate_recall > band:
                reasons.append(text + ": serving it would do worse than recommending popular items")
            else:
                undecided.append("baseline")
                notes.append(f"{text}, by {floor - candidate_recall:.4f}, within {z:g} SE ({band:.4f}): too small to judge")
    if published_recall is not None:
        threshold = published_recall * (1.0 - cfg.max_recall_drop)
        band = z * _combined_se(candidate_se, published_se)
        if candidate_recall < threshold:
            text = (
                f"{GATE_METRIC} {candidate_recall:.4f}{se_txt} is more than {cfg.max_recall_drop:.0%} below the published "
                f"version {published_version}'s {published_recall:.4f} on the same held-out set "
                f"(minimum allowed {threshold:.4f})"
            )
            if too_few:
                undecided.append("drop")
            elif threshold - candidate_recall > band:
                reasons.append(text)
            else:
                undecided.append("drop")
                notes.append(f"{text}, by {threshold - candidate_recall:.4f}, within {z:g} SE ({band:.4f}): too small to judge")
    if ann_recall < cfg.min_ann_recall:
        reasons.append(f"ANN recall {ann_recall:.4f} is below publish.min_ann_recall {cfg.min_ann_recall:.4f}")
    if reasons:
        reason = "; ".join(reasons)
    elif published_recall is None:
        reason = "first version: nothing to compare with; ANN recall ok"
    else:
        reason = f"{GATE_METRIC} {candidate_recall:.4f}{se_txt} >= {threshold:.4f}; ANN recall {ann_recall:.4f} ok"
    if notes and not reasons:
        reason += "; UNDECIDED: " + "; ".join(notes)
    if below_baseline and not reasons:
        reason += (
            f"; WARNING: below the best popularity baseline ({baseline_recall:.4f}); "
            "publish.min_recall_vs_best_baseline would refuse it"
        )
    return GateResult(
        passed=not reasons, reason=reason, metric=GATE_METRIC, candidate_recall=candidate_recall,
        published_recall=published_recall, published_version=published_version, ann_recall=ann_recall,
        threshold=threshold, best_baseline_recall=baseline_recall, below_baseline=below_baseline,
        candidate_se=candidate_se, published_se=published_se, best_baseline_se=baseline_se,
        best_baseline_name=baseline_name, eval_users=eval_users, decidable=not (too_few or undecided),
        undecided=tuple(undecided), best_baseline_diff_se=baseline_diff_se,
    )


def best_baseline(metrics: dict[str, Any]) -> tuple[str, float, float | None, float | None] | None:
    """(name, recall@50, its SE, SE of the paired per-user difference model - bar) of the
    strongest popularity bar in an evaluation (None: none)."""
    rows = [
        (name, float(b[GATE_METRIC]), b.get(f"{GATE_METRIC}_se"), b.get(f"{GATE_METRIC}_diff_se"))
        for name, b in (metrics.get("baselines") or {}).items()
        if isinstance(b, dict) and b.get(GATE_METRIC) is not None
    ]
    return max(rows, key=lambda r: r[1]) if rows else None


def best_baseline_recall(metrics: dict[str, Any]) -> float | None:
    """The best popularity baseline's gate metric in an evaluation (None: no baseline)."""
    best = best_baseline(metrics)
    return None if best is None else best[1]


def _combined_se(a: float | None, b: float | None) -> float:
    """SE of a difference of two means on the same users, taken as independent: sqrt(a^2 + b^2)
    (an upper bound for positively correlated per-user recalls, i.e. the cautious side)."""
    return math.sqrt((a or 0.0) ** 2 + (b or 0.0) ** 2)


def metric_of(metrics: dict[str, Any], where: str) -> float:
    """The model's gate metric in an evaluation (``metrics.json`` or an evaluator's result)."""
    model = metrics.get("model", metrics)
    if not isinstance(model, dict) or GATE_METRIC not in model:
        raise PipelineError(f"{where}: metrics have no model {GATE_METRIC} (keys: {', '.join(map(str, model))})")
    return float(model[GATE_METRIC])


def comparison_version(layout: Layout, ds: str, latest: str | None) -> str | None:
    """The published version a candidate for ``ds`` is gated against.

    LATEST when it is not newer than ``ds``; otherwise (a backfill of an older day) the newest
    published version of a day <= ``ds``. A version of a later day trained on ``ds``'s held-out
    clicks, so comparing against it would be unfair to the candidate.
    """
    if latest is not None and latest <= ds:
        return latest
    earlier = [v for v in list_versions(layout) if v <= ds]
    return earlier[-1] if earlier else None


def gate_candidate(ctx: RunContext, staged: dict, previous: str | None, evaluator: Evaluator) -> GateResult:
    """Decide on the staged version of ``ctx.ds`` (its manifest ``staged``) against the
    published version ``previous`` (None: a first version), re-evaluated by ``evaluator``."""
    cfg, ds, layout = ctx.cfg, ctx.ds, ctx.layout
    metrics = staged["metrics"]
    candidate = metric_of(metrics, f"staged version {ds}")
    model = metrics.get("model", metrics)
    ann_recall = float(staged["ann"]["recall"])
    best = best_baseline(metrics)
    kw: dict[str, Any] = {
        "candidate_se": model.get(f"{GATE_METRIC}_se"),
        "eval_users": model.get("users_scored"),
        "baseline_se": best[2] if best else None,
        "baseline_diff_se": best[3] if best else None,
        "baseline_name": best[0] if best else None,
    }
    baseline = best[1] if best else None
    if previous is None:
        return gate_decision(candidate, None, ann_recall, cfg.publish, baseline_recall=baseline, **kw)
    published_dir = layout.version_dir(previous)
    # The published model is re-evaluated on THIS day's held-out set: same users, same targets.
    LoadedVersion.load(published_dir, verify=True)
    evaluated = evaluator(ctx, published_dir)
    published = metric_of(evaluated, f"published version {previous} evaluated on ds={ds}")
    published_se = evaluated.get("model", evaluated).get(f"{GATE_METRIC}_se")
    return gate_decision(candidate, published, ann_recall, cfg.publish, previous, baseline, published_se=published_se, **kw)
