"""The indexing stage: build and stage a version (:func:`build_index_for_day`), then gate and
publish it atomically (:func:`publish_day`).

Publishing is a transaction (details and the crash analysis in docs/artifacts.md):

1. recover what a crashed publish left (``.tmp-*``, a version moved aside);
2. verify the staged version's checksums;
3. quality gate: the candidate's held-out recall@50 against the published model evaluated on
   the SAME held-out set (``training.evaluate.evaluate_model_dir``), and its ANN recall;
   a refused candidate moves to ``_rejected/<ds>-<n>/`` with the reason and
   :class:`PublishRejected` is raised (``force=True`` publishes anyway);
4. copy the staged files into ``.tmp-<ds>-*`` beside the versions (same filesystem) with
   the final manifest;
5. verify the copy's checksums and run a smoke query on it;
6. swap it into place as ``<ds>/`` (one ``renameat2(RENAME_EXCHANGE)`` when ``<ds>`` exists);
7. switch ``LATEST`` (temp file + ``os.replace``);
8. retention; 9. delete the staging directory.

A crash before 7 leaves ``LATEST`` on the previous complete version; a crash after 7 leaves it
on the new complete one. The staging directory survives until the end, so rerunning
``publish_day`` (or ``twotower index``) always finishes the job.

``crash_after`` exists only for the crash tests: it makes the process ``os._exit`` right
after the named step. Production callers never pass it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from contracts.days import day_range, ds_str
from core.config import Config, PublishConfig
from core.errors import PipelineError
from core.version import code_version, utc_now
from indexing import artifacts as art
from indexing.checksums import checksum_dir, verify_checksums
from indexing.manifest import (
    FORMAT_VERSION,
    STATUS_PUBLISHED,
    STATUS_REJECTED,
    STATUS_STAGED,
    read_manifest,
    write_manifest,
)
from storage.layout import Layout, atomic_dir

log = logging.getLogger(__name__)

# Files the training stage writes into Layout.model_dir(ds) that a version cannot do without.
REQUIRED_MODEL_FILES = (
    art.USER_TOWER_FILE,
    art.ITEM_TOWER_FILE,
    art.MODEL_CONFIG_FILE,
    art.ITEM_EMBEDDINGS_FILE,
    art.ITEM_IDS_FILE,
    "eval_user_embeddings.npy",
    "metrics.json",
)
GATE_METRIC = "recall@50"
# Steps of publish_day after which ``crash_after`` may kill the process (tests only).
PUBLISH_STEPS = ("recovered", "staging_verified", "gated", "copied", "smoke_tested", "renamed", "latest_switched", "retention_done")
CRASH_EXIT_CODE = 70
# Catalogue rows re-embedded with the exported item tower to check item_embeddings.npy.
TOWER_CHECK_ITEMS = 2048
TOWER_CHECK_TOLERANCE = 1e-3


class CandidateMissing(PipelineError):
    """The candidate model directory (or a file in it) or the staged version is missing."""


class PublishRejected(PipelineError):
    """The quality gate refused the candidate (kept under ``_rejected/``); ``--force`` overrides."""


# -- build + stage ---------------------------------------------------------------------------


def build_index_for_day(cfg: Config, ds: str) -> dict[str, Any]:
    """Index the candidate of day ``ds`` and stage it as a complete, checksummed version.

    Reads ``Layout.model_dir(ds)`` (the training stage's export) and the day's
    ``user_features`` partition; writes ``<model_root>/_staging/<ds>/`` atomically.

    Returns:
        Statistics for the run report: index spec, ntotal, dimension, ANN recall/QPS, timings.
    """
    import time

    from indexing.builder import (
        build_index,
        choose_index,
        exact_index,
        measure_ann,
        prior_item_vectors,
        prior_queries,
        tune_search_params,
    )

    ds = ds_str(ds)
    layout = Layout(cfg.paths)
    model_dir = layout.model_dir(ds)
    missing = [f for f in REQUIRED_MODEL_FILES if not (model_dir / f).is_file()]
    if missing:
        raise CandidateMissing(
            f"candidate model for ds={ds} at {model_dir} lacks {', '.join(missing)}; "
            f"run `twotower train --ds {ds}` first"
        )
    model_config = json.loads((model_dir / art.MODEL_CONFIG_FILE).read_text())
    metrics = json.loads((model_dir / "metrics.json").read_text())
    item_idx, _item_id = _read_item_ids(model_dir / art.ITEM_IDS_FILE)
    emb = np.load(model_dir / art.ITEM_EMBEDDINGS_FILE, allow_pickle=False)
    queries = np.load(model_dir / "eval_user_embeddings.npy", allow_pickle=False)
    _check_embeddings(emb, item_idx, queries, model_config, model_dir)

    # Serving's user features (history through day D); ETL outputs from before that table
    # existed only have the training-time user_features.
    user_features = layout.path_for("serving_user_features", ds)
    if not user_features.is_dir():
        user_features = layout.path_for("user_features", ds)
    if not user_features.is_dir():
        raise CandidateMissing(
            f"table user_features, partition ds={ds}: missing at {user_features}; the version needs it "
            f"to answer queries. Run the ETL for ds={ds} (`twotower etl --ds {ds}`)"
        )
    tower_check = _check_item_tower(layout, ds, model_dir, model_config, item_idx, emb)

    prior = index_prior(cfg, layout, ds, metrics, model_config, _item_id)
    vectors, normalize = (emb, True) if prior is None else (prior_item_vectors(emb, prior.pop("weights")), False)
    t0 = time.perf_counter()
    spec = choose_index(vectors.shape[0], vectors.shape[1], cfg.index)
    index = build_index(vectors, item_idx, spec, seed=cfg.training.seed, normalize=normalize)
    build_seconds = time.perf_counter() - t0
    source = "eval_user_embeddings"
    if queries.shape[0] == 0:
        # No held-out users this day: item vectors are the next best query distribution.
        rows = np.random.default_rng(0).choice(emb.shape[0], size=min(2000, emb.shape[0]), replace=False)
        queries, source = emb[rows], "item_embeddings (no held-out users)"
        log.warning("ds=%s: no held-out user embeddings; ANN recall measured with %d item vectors", ds, len(rows))
    if prior is not None:
        queries = prior_queries(queries)
    reference = exact_index(vectors, item_idx, normalize=normalize)
    # Tune on the even rows, measure on the odd ones: the stored recall is not the tuned-on one.
    tune_q, measure_q = (queries[0::2], queries[1::2]) if len(queries) >= 2 else (queries, queries)
    t1 = time.perf_counter()
    spec, trials = tune_search_params(index, reference, tune_q, cfg.index.recall_k, spec, cfg.index.tune_target_recall)
    tune_seconds = time.perf_counter() - t1
    for note in spec.notes:
        log.info("index for ds=%s: %s", ds, note)
    ann = measure_ann(index, reference, measure_q, cfg.index.recall_k)
    ann["queries_source"] = source
    ann["tuning"] = trials
    ann["build_seconds"] = build_seconds
    ann["tune_seconds"] = tune_seconds
    log.info(
        "ds=%s: %s over %d x %d; ANN recall@%d %.4f, %.0f QPS vs exact %.0f QPS",
        ds, spec.factory, index.ntotal, index.d, ann["k"], ann["recall"], ann["qps_ann"], ann["qps_exact"],
    )

    import faiss
    import pyarrow.parquet as pq

    from indexing.serving_bundle import write_query_tower, write_serving_bundle

    staging = layout.model_root / art.STAGING / ds
    with atomic_dir(staging) as tmp:
        for f in sorted(model_dir.iterdir()):
            if f.is_file() and not f.name.startswith("."):
                shutil.copy2(f, tmp / f.name)
        faiss.write_index(index, str(tmp / art.INDEX_FILE))
        pq.write_table(pq.read_table(user_features), tmp / art.USER_FEATURES_FILE)
        if prior is not None:  # queries [u/|u|, 1]/sqrt(2): what the index's extra column needs
            write_query_tower(tmp / art.USER_TOWER_FILE, tmp / art.QUERY_TOWER_FILE)
        write_serving_bundle(layout, ds, tmp, model_config, spec.to_dict(), prior)  # serving/: embed users from raw features
        manifest = {
            "format_version": FORMAT_VERSION,
            "version": ds,
            "ds": ds,
            "status": STATUS_STAGED,
            "data_window": _data_window(cfg, ds, model_config),
            "created_at": utc_now(),
            "code_version": code_version(),
            "config_hash": cfg.hash(),
            "model_config_hash": _sha256_text((model_dir / art.MODEL_CONFIG_FILE).read_text()),
            "index": spec.to_dict(),
            "ntotal": int(index.ntotal),
            "dimension": int(index.d),
            "metrics": metrics,
            "prior": prior,
            "ann": ann,
            "tower_check": tower_check,
            "files": checksum_dir(tmp),
        }
        write_manifest(tmp, manifest)
    return {
        "ds": ds,
        "staged": str(staging),
        "index": spec.to_dict(),
        "ntotal": int(index.ntotal),
        "dimension": int(index.d),
        "ann": ann,
        "tower_check": tower_check,
        "files": len(manifest["files"]),
    }


def index_prior(cfg: Config, layout: Layout, ds: str, metrics: dict, model_config: dict, item_id: np.ndarray) -> dict[str, Any] | None:
    """The popularity prior the index carries (training.prior), or None for today's plain index.

    beta is the one the day's evaluation used (``metrics.json`` ``prior.beta``: the gate's
    figure and the index agree); the counts are distinct users over the ``prior.days`` days up
    to the last day the published weights saw (D after the continued training on D). Returns
    the manifest's ``prior`` entry plus ``weights`` float32 [N] = beta * tau * log(1 + c_i) in
    ``item_ids.parquet`` order.
    """
    from training.data import distinct_click_users
    from training.evaluate import training_days

    recorded = metrics.get("prior") or {}
    beta = float(recorded.get("beta") or 0.0)
    if beta == 0.0:
        return None
    tau = float(model_config["temperature"])
    trained = (model_config.get("extra") or {}).get("trained_days") or training_days(cfg, ds)
    days = int(recorded.get("days") or cfg.training.prior_days)
    counts, found = distinct_click_users(layout, day_range(trained[-1], days), item_id)
    if not found:
        raise PipelineError(
            f"popularity prior for ds={ds}: beta {beta} but no click_positives partition among the {days} days up to "
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


def _read_item_ids(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["item_idx", "item_id"])
    return table.column("item_idx").to_numpy().astype(np.int64), np.asarray(table.column("item_id").to_pylist(), dtype=object)


def _check_embeddings(emb: np.ndarray, item_idx: np.ndarray, queries: np.ndarray, mc: dict, model_dir: Path) -> None:
    where = f"candidate model {model_dir}"
    if emb.ndim != 2 or emb.dtype != np.float32:
        raise PipelineError(f"{where}: item_embeddings.npy is {emb.dtype} {emb.shape}, expected float32 [N, d]")
    if emb.shape[0] != item_idx.shape[0]:
        raise PipelineError(f"{where}: {emb.shape[0]} item embeddings but {item_idx.shape[0]} rows in item_ids.parquet")
    if emb.shape[0] == 0:
        raise PipelineError(f"{where}: the catalogue is empty (0 item embeddings); nothing to index")
    if "dim" in mc and int(mc["dim"]) != emb.shape[1]:
        raise PipelineError(f"{where}: embeddings have dimension {emb.shape[1]}, model_config.json says {mc['dim']}")
    bad = int((~np.isfinite(emb)).any(axis=1).sum())
    if bad:
        raise PipelineError(f"{where}: {bad:,} item embeddings contain NaN/inf; the model diverged, do not publish it")
    if queries.shape[0] and (queries.ndim != 2 or queries.shape[1] != emb.shape[1]):
        raise PipelineError(
            f"{where}: eval_user_embeddings.npy is {queries.shape}, expected [U, {emb.shape[1]}] "
            "(the held-out users measure ANN recall)"
        )
    if np.unique(item_idx).size != item_idx.size:
        raise PipelineError(f"{where}: item_ids.parquet has duplicate item_idx values")


def _check_item_tower(layout: Layout, ds: str, model_dir: Path, mc: dict, item_idx: np.ndarray, emb: np.ndarray) -> dict:
    """Re-embed up to 2,048 catalogue items with the exported item tower and compare with
    item_embeddings.npy: the index must hold what the served tower produces."""
    from contracts.schemas import ITEM_CAT_PREFIX, ITEM_NUM_PREFIX

    cat_path = layout.path_for("item_catalogue", ds)
    if not cat_path.is_dir():
        return {"status": "skipped", "reason": f"no item_catalogue partition at {cat_path}"}
    import pyarrow.parquet as pq
    import torch

    frame = pq.read_table(cat_path).to_pandas()
    rng = np.random.default_rng(0)
    sample = np.sort(rng.choice(item_idx, size=min(TOWER_CHECK_ITEMS, item_idx.size), replace=False))
    frame = frame[frame["item_idx"].isin(sample)].drop_duplicates("item_idx").sort_values("item_idx")
    if frame.empty:
        raise PipelineError(f"table item_catalogue, partition ds={ds}: none of the indexed items is in the catalogue")

    def col(name: str, prefix: str) -> str:
        if name in frame.columns:
            return name
        if prefix + name in frame.columns:
            return prefix + name
        raise PipelineError(f"table item_catalogue, partition ds={ds}, column {name}: listed in model_config.json but absent")

    cats = [col(c, ITEM_CAT_PREFIX) for c in mc.get("item_cat_columns", [])]
    nums = [col(c, ITEM_NUM_PREFIX) for c in mc.get("item_num_columns", [])]
    idx_t = torch.from_numpy(frame["item_idx"].to_numpy(dtype=np.int64))
    cat_t = torch.from_numpy(np.stack([frame[c].fillna(0).to_numpy(dtype=np.int64) for c in cats], 1) if cats else np.zeros((len(frame), 0), np.int64))
    num_t = torch.from_numpy(np.stack([frame[c].fillna(0.0).to_numpy(dtype=np.float32) for c in nums], 1) if nums else np.zeros((len(frame), 0), np.float32))
    tower = torch.jit.load(str(model_dir / art.ITEM_TOWER_FILE), map_location="cpu").eval()
    with torch.inference_mode():
        fresh = tower(idx_t, cat_t, num_t).float().numpy()
    rows = np.searchsorted(item_idx, frame["item_idx"].to_numpy()) if np.all(np.diff(item_idx) > 0) else None
    if rows is None:
        order = np.argsort(item_idx)
        rows = order[np.searchsorted(item_idx[order], frame["item_idx"].to_numpy())]
    diff = float(np.abs(fresh - emb[rows]).max())
    if diff > TOWER_CHECK_TOLERANCE:
        raise PipelineError(
            f"candidate model {model_dir}: item_tower.pt re-embeds {len(frame)} catalogue items up to {diff:.4f} "
            f"away from item_embeddings.npy (tolerance {TOWER_CHECK_TOLERANCE}); the exported tower and the "
            "embeddings disagree, so the index would not match serving. Retrain/re-export the day"
        )
    return {"status": "ok", "items": int(len(frame)), "max_abs_diff": diff}


def _data_window(cfg: Config, ds: str, mc: dict) -> dict[str, Any]:
    days = day_range(ds, cfg.etl.window_days)
    n_eval = min(cfg.etl.eval_days, len(days))
    recorded = {**mc, **(mc.get("extra") or {})}  # the training stage keeps run metadata in "extra"
    train_days = list(recorded.get("training_days", days[: len(days) - n_eval]))
    eval_days = list(recorded.get("eval_days", days[len(days) - n_eval :]))
    gate_eval = recorded.get("gate_evaluation") or {"model": "candidate", "trained_days": train_days, "evaluated_on": eval_days}
    return {
        "start": days[0],
        "end": days[-1],
        "train_days": train_days,
        "eval_days": eval_days,
        # Exactly the days whose clicks the published weights were trained on (the window's
        # training days, plus the evaluation days after the continued training on them).
        "weights_trained_days": list(recorded.get("trained_days", train_days)),
        "weights_saw_eval_days": all(d in recorded.get("trained_days", train_days) for d in eval_days),
        # What the gate's metrics measured: which weights (trained through which days) on which days.
        "gate_evaluation": gate_eval,
        "final_training": recorded.get("final_training"),
    }


def _sha256_text(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


# -- gate ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GateResult:
    passed: bool
    reason: str
    candidate_recall: float
    published_recall: float | None
    published_version: str | None
    ann_recall: float
    threshold: float | None
    best_baseline_recall: float | None = None
    below_baseline: bool = False
    candidate_se: float | None = None
    published_se: float | None = None
    best_baseline_se: float | None = None
    best_baseline_name: str | None = None
    eval_users: int | None = None
    # False when the held-out set cannot resolve the rules' margins (see gate_decision).
    decidable: bool = True
    undecided: tuple[str, ...] = ()
    best_baseline_diff_se: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "reason": self.reason,
            "metric": GATE_METRIC,
            "candidate": self.candidate_recall,
            "candidate_se": self.candidate_se,
            "published": self.published_recall,
            "published_se": self.published_se,
            "published_version": self.published_version,
            "min_allowed": self.threshold,
            "ann_recall": self.ann_recall,
            "best_baseline": self.best_baseline_recall,
            "best_baseline_se": self.best_baseline_se,
            "best_baseline_diff_se": self.best_baseline_diff_se,
            "best_baseline_name": self.best_baseline_name,
            "below_best_baseline": self.below_baseline,
            "eval_users": self.eval_users,
            "decidable": self.decidable,
            "undecided": list(self.undecided),
        }


def _combined_se(a: float | None, b: float | None) -> float:
    """SE of a difference of two means on the same users, taken as independent: sqrt(a^2 + b^2)
    (an upper bound for positively correlated per-user recalls, i.e. the cautious side)."""
    return math.sqrt((a or 0.0) ** 2 + (b or 0.0) ** 2)


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
        not reasons, reason, candidate_recall, published_recall, published_version, ann_recall, threshold,
        baseline_recall, below_baseline, candidate_se, published_se, baseline_se, baseline_name, eval_users,
        not (too_few or undecided), tuple(undecided), baseline_diff_se,
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


def _metric(metrics: dict[str, Any], where: str) -> float:
    model = metrics.get("model", metrics)
    if not isinstance(model, dict) or GATE_METRIC not in model:
        raise PipelineError(f"{where}: metrics have no model {GATE_METRIC} (keys: {', '.join(map(str, model))})")
    return float(model[GATE_METRIC])


Evaluator = Callable[[Config, str, Path], dict[str, Any]]


def _default_evaluator(cfg: Config, ds: str, model_dir: Path) -> dict[str, Any]:
    from training.evaluate import evaluate_model_dir

    return evaluate_model_dir(cfg, ds, model_dir)


# -- publish ----------------------------------------------------------------------------------


def publish_day(
    cfg: Config,
    ds: str,
    force: bool = False,
    *,
    evaluator: Evaluator | None = None,
    crash_after: str | None = None,
) -> dict[str, Any]:
    """Gate the staged version of day ``ds`` and publish it atomically (see module docstring).

    Args:
        force: publish even if the quality gate refuses (the refusal is still recorded).
        evaluator: evaluates a version directory on day ``ds``'s held-out set (default
            ``training.evaluate.evaluate_model_dir``).
        crash_after: tests only: ``os._exit`` after this step of :data:`PUBLISH_STEPS`.

    Returns:
        Statistics: version, previous LATEST, gate result, smoke query, retention.

    Raises:
        PublishRejected: the gate refused and ``force`` is False (LATEST unchanged).
        CandidateMissing: nothing staged for ``ds`` and ``ds`` is not already published.
    """
    if crash_after is not None and crash_after not in PUBLISH_STEPS:
        raise ValueError(f"crash_after must be one of {PUBLISH_STEPS}, got {crash_after!r}")
    ds = ds_str(ds)
    layout = Layout(cfg.paths)
    evaluator = evaluator or _default_evaluator

    def step(name: str) -> None:
        log.debug("publish ds=%s: %s", ds, name)
        if crash_after == name:
            os._exit(CRASH_EXIT_CODE)

    with art.publish_lock(layout):
        recovered = art.recover(layout)
        step("recovered")
        staging = layout.model_root / art.STAGING / ds
        if not staging.is_dir():
            return _already_published(layout, ds, recovered)
        staged = read_manifest(staging)
        verify_checksums(staging, staged["files"])
        step("staging_verified")

        previous = art.read_latest(layout)
        gate = _gate(cfg, ds, staged, layout, comparison_version(layout, ds, previous), evaluator)
        step("gated")
        if not gate.passed and not force:
            rejected = _reject(layout, ds, staging, staged, gate)
            raise PublishRejected(
                f"candidate for ds={ds} not published: {gate.reason}. Kept at {rejected}; LATEST stays "
                f"{previous}. Use `twotower index --ds {ds} --force` to publish it anyway"
            )

        final = layout.version_dir(ds)
        tmp = layout.model_root / f".tmp-{ds}-{uuid.uuid4().hex[:8]}"
        try:
            shutil.copytree(staging, tmp)
            manifest = dict(
                staged,
                status=STATUS_PUBLISHED,
                published_at=utc_now(),
                gate=dict(gate.to_dict(), forced=bool(force and not gate.passed)),
                previous_latest=previous,
            )
            write_manifest(tmp, manifest)
            step("copied")

            from indexing.query import smoke_query

            smoke = smoke_query(art.LoadedVersion.load(tmp, verify=True), cfg.publish.smoke_queries)
            step("smoke_tested")

            art.swap_into_place(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)  # nothing half-written stays beside the versions
            raise
        step("renamed")
        # A backfilled older day is published as a version but never moves LATEST backwards
        # (serving keeps the newest model; `twotower artifacts rollback` is the deliberate way back).
        latest_moved = previous is None or ds >= previous
        if latest_moved:
            art.write_latest(layout, ds)
        else:
            log.warning("ds=%s published as a version; LATEST stays at the newer %s", ds, previous)
        step("latest_switched")
        deleted = art.apply_retention(layout, cfg.publish.retention)
        step("retention_done")
        shutil.rmtree(staging, ignore_errors=True)
        with contextlib.suppress(OSError):
            staging.parent.rmdir()  # only when no other day is staged

    if not gate.passed:
        log.warning("ds=%s published with --force despite the gate: %s", ds, gate.reason)
    log.info("published %s (LATEST was %s); retention deleted %s", ds, previous, deleted or "nothing")
    return {
        "ds": ds,
        "status": STATUS_PUBLISHED,
        "published": True,
        "version": ds,
        "index_kind": manifest["index"]["kind"],
        "n_items": manifest["ntotal"],
        "path": str(final),
        "previous_latest": previous,
        "latest": ds if latest_moved else previous,
        "gate": manifest["gate"],
        "smoke": smoke,
        "retention_deleted": deleted,
        "recovered": recovered,
    }


def _already_published(layout: Layout, ds: str, recovered: list[str]) -> dict[str, Any]:
    """Rerun after a publish that completed (staging already removed): verify and report."""
    latest = art.read_latest(layout)
    if latest is not None and latest >= ds and layout.version_dir(ds).is_dir():
        loaded = art.LoadedVersion.load(layout.version_dir(ds), verify=True)
        return {
            "ds": ds,
            "status": "already_published",
            "published": True,
            "version": ds,
            "index_kind": loaded.manifest["index"]["kind"],
            "n_items": loaded.manifest["ntotal"],
            "path": str(loaded.path),
            "gate": loaded.manifest.get("gate"),
            "recovered": recovered,
        }
    raise CandidateMissing(
        f"nothing staged for ds={ds} under {layout.model_root / art.STAGING} and LATEST is "
        f"{art.read_latest(layout)}; build it first (`twotower index --ds {ds}` builds and publishes)"
    )


def comparison_version(layout: Layout, ds: str, latest: str | None) -> str | None:
    """The published version a candidate for ``ds`` is gated against.

    LATEST when it is not newer than ``ds``; otherwise (a backfill of an older day) the newest
    published version of a day <= ``ds``. A version of a later day trained on ``ds``'s held-out
    clicks, so comparing against it would be unfair to the candidate.
    """
    if latest is not None and latest <= ds:
        return latest
    earlier = [v for v in art.list_versions(layout) if v <= ds]
    return earlier[-1] if earlier else None


def _gate(cfg: Config, ds: str, staged: dict, layout: Layout, previous: str | None, evaluator: Evaluator) -> GateResult:
    metrics = staged["metrics"]
    candidate = _metric(metrics, f"staged version {ds}")
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
    art.LoadedVersion.load(published_dir, verify=True)
    evaluated = evaluator(cfg, ds, published_dir)
    published = _metric(evaluated, f"published version {previous} evaluated on ds={ds}")
    published_se = evaluated.get("model", evaluated).get(f"{GATE_METRIC}_se")
    return gate_decision(candidate, published, ann_recall, cfg.publish, previous, baseline, published_se=published_se, **kw)


def _reject(layout: Layout, ds: str, staging: Path, staged: dict, gate: GateResult) -> Path:
    root = layout.model_root / art.REJECTED
    root.mkdir(parents=True, exist_ok=True)
    n = 1 + max((int(p.name.rsplit("-", 1)[1]) for p in root.glob(f"{ds}-*") if p.name.rsplit("-", 1)[1].isdigit()), default=0)
    target = root / f"{ds}-{n}"
    write_manifest(staging, dict(staged, status=STATUS_REJECTED, rejected_at=utc_now(), gate=gate.to_dict()))
    os.rename(staging, target)  # old rejected candidates are pruned by the next publish's retention
    log.error("ds=%s rejected: %s (kept at %s)", ds, gate.reason, target)
    return target
