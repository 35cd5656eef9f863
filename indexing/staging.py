"""Build and stage a version: index the day's candidate (:func:`build_index_for_day`) and write
it, checksummed, under ``<model_root>/_staging/<ds>/`` for :func:`indexing.publish.publish_day`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from core.context import RunContext, Window
from core.results.indexing import AnnResult, BuildIndexResult, TuningTrial
from core.version import code_version, utc_now
from indexing.candidate_checks import (
    CandidateMissing,
    check_embeddings,
    check_item_tower,
    missing_model_files,
    read_item_ids,
)
from indexing.checksums import checksum_dir
from indexing.loaded_version import (
    INDEX_FILE,
    ITEM_EMBEDDINGS_FILE,
    ITEM_IDS_FILE,
    MODEL_CONFIG_FILE,
    QUERY_TOWER_FILE,
    USER_FEATURES_FILE,
    USER_TOWER_FILE,
)
from indexing.manifest import FORMAT_VERSION, STATUS_STAGED, write_manifest
from indexing.version_store import STAGING
from storage.layout import atomic_dir

log = logging.getLogger(__name__)

# The popularity prior the index carries: (ctx, metrics.json, model_config.json, item ids in
# item_ids.parquet order) -> the manifest's ``prior`` entry plus ``weights`` float32 [N], or
# None for the plain index. The training stage owns the rule (``training.prior.index_prior``).
Prior = Callable[[RunContext, dict, dict, np.ndarray], dict | None]
# Item vectors sampled as ANN queries on a day without held-out users.
FALLBACK_QUERIES = 2000


def build_index_for_day(ctx: RunContext, *, prior: Prior | None = None) -> BuildIndexResult:
    """Index the candidate of day ``ctx.ds`` and stage it as a complete, checksummed version.

    Reads ``Layout.model_dir(ds)`` (the training stage's export) and the day's
    ``user_features`` partition; writes ``<model_root>/_staging/<ds>/`` atomically.

    Args:
        prior: computes the popularity prior the index carries (None: the plain index).

    Returns:
        The index spec, ntotal, dimension, ANN recall/QPS and timings, the tower check.
    """
    from indexing.builder import (
        build_index,
        choose_index,
        exact_index,
        measure_ann,
        prior_item_vectors,
        prior_queries,
        tune_search_params,
    )

    cfg, ds, layout = ctx.cfg, ctx.ds, ctx.layout
    model_dir = layout.model_dir(ds)
    missing = missing_model_files(model_dir)
    if missing:
        raise CandidateMissing(
            f"candidate model for ds={ds} at {model_dir} lacks {', '.join(missing)}; "
            f"run `twotower train --ds {ds}` first"
        )
    model_config = json.loads((model_dir / MODEL_CONFIG_FILE).read_text())
    metrics = json.loads((model_dir / "metrics.json").read_text())
    item_idx, item_id = read_item_ids(model_dir / ITEM_IDS_FILE)
    emb = np.load(model_dir / ITEM_EMBEDDINGS_FILE, allow_pickle=False)
    queries = np.load(model_dir / "eval_user_embeddings.npy", allow_pickle=False)
    check_embeddings(emb, item_idx, queries, model_config, model_dir)

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
    tower_check = check_item_tower(layout, ds, model_dir, model_config, item_idx, emb)

    prior_entry = None if prior is None else prior(ctx, metrics, model_config, item_id)
    if prior_entry is None:
        vectors, normalize = emb, True
    else:
        vectors, normalize = prior_item_vectors(emb, prior_entry.pop("weights")), False
    t0 = time.perf_counter()
    spec = choose_index(vectors.shape[0], vectors.shape[1], cfg.index)
    index = build_index(vectors, item_idx, spec, seed=cfg.training.seed, normalize=normalize)
    build_seconds = time.perf_counter() - t0
    source = "eval_user_embeddings"
    if queries.shape[0] == 0:
        # No held-out users this day: item vectors are the next best query distribution.
        rows = np.random.default_rng(0).choice(emb.shape[0], size=min(FALLBACK_QUERIES, emb.shape[0]), replace=False)
        queries, source = emb[rows], "item_embeddings (no held-out users)"
        log.warning("ds=%s: no held-out user embeddings; ANN recall measured with %d item vectors", ds, len(rows))
    if prior_entry is not None:
        queries = prior_queries(queries)
    reference = exact_index(vectors, item_idx, normalize=normalize)
    # Tune on the even rows, measure on the odd ones: the stored recall is not the tuned-on one.
    tune_q, measure_q = (queries[0::2], queries[1::2]) if len(queries) >= 2 else (queries, queries)
    t1 = time.perf_counter()
    spec, trials = tune_search_params(index, reference, tune_q, cfg.index.recall_k, spec, cfg.index.tune_target_recall)
    tune_seconds = time.perf_counter() - t1
    for note in spec.notes:
        log.info("index for ds=%s: %s", ds, note)
    ann = AnnResult(
        **measure_ann(index, reference, measure_q, cfg.index.recall_k),
        queries_source=source,
        tuning=tuple(TuningTrial(**t) for t in trials),
        build_seconds=build_seconds,
        tune_seconds=tune_seconds,
    )
    log.info(
        "ds=%s: %s over %d x %d; ANN recall@%d %.4f, %.0f QPS vs exact %.0f QPS",
        ds, spec.factory, index.ntotal, index.d, ann.k, ann.recall, ann.qps_ann, ann.qps_exact,
    )

    import faiss
    import pyarrow.parquet as pq

    from indexing.serving_bundle import write_query_tower, write_serving_bundle

    staging = layout.model_root / STAGING / ds
    with atomic_dir(staging) as tmp:
        for f in sorted(model_dir.iterdir()):
            if f.is_file() and not f.name.startswith("."):
                shutil.copy2(f, tmp / f.name)
        faiss.write_index(index, str(tmp / INDEX_FILE))
        pq.write_table(pq.read_table(user_features), tmp / USER_FEATURES_FILE)
        if prior_entry is not None:  # queries [u/|u|, 1]/sqrt(2): what the index's extra column needs
            write_query_tower(tmp / USER_TOWER_FILE, tmp / QUERY_TOWER_FILE)
        write_serving_bundle(layout, ds, tmp, model_config, spec.to_dict(), prior_entry)  # serving/: embed users from raw features
        manifest = {
            "format_version": FORMAT_VERSION,
            "version": ds,
            "ds": ds,
            "status": STATUS_STAGED,
            "data_window": _data_window(ctx.window, model_config),
            "created_at": utc_now(),
            "code_version": code_version(),
            "config_hash": cfg.hash(),
            "model_config_hash": _sha256_text((model_dir / MODEL_CONFIG_FILE).read_text()),
            "index": spec.to_dict(),
            "ntotal": int(index.ntotal),
            "dimension": int(index.d),
            "metrics": metrics,
            "prior": prior_entry,
            "ann": ann.to_dict(),
            "tower_check": tower_check.to_dict(),
            "files": checksum_dir(tmp),
        }
        write_manifest(tmp, manifest)
    return BuildIndexResult(
        ds=ds,
        staged=str(staging),
        index=spec,
        ntotal=int(index.ntotal),
        dimension=int(index.d),
        ann=ann,
        tower_check=tower_check,
        files=len(manifest["files"]),
    )


def _data_window(window: Window, mc: dict) -> dict[str, Any]:
    recorded = {**mc, **(mc.get("extra") or {})}  # the training stage keeps run metadata in "extra"
    train_days = list(recorded.get("training_days", window.train_days))
    eval_days = list(recorded.get("eval_days", window.eval_days))
    gate_eval = recorded.get("gate_evaluation") or {"model": "candidate", "trained_days": train_days, "evaluated_on": eval_days}
    return {
        "start": window.days[0],
        "end": window.days[-1],
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
    return hashlib.sha256(text.encode()).hexdigest()
