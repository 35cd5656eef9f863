"""The sampling state of a training run (:class:`training.loop.Negatives`) from the ETL's
``item_sampling`` table: the alias table of catalogue negatives, p_j of the logQ correction,
the resampling weights of its ablation, and the items' features as of each training day.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from contracts.days import parse_ds
from contracts.outputs import FRESHNESS_FEATURES
from core.context import RunContext
from training.data import Catalogue, load_item_day_features, load_item_sampling
from training.frequency import StreamingFrequencyEstimator
from training.loop import Negatives
from training.samplers import AliasSampler

log = logging.getLogger(__name__)


def build_negatives(
    ctx: RunContext, catalogue: Catalogue, size: int, ablate: frozenset[str], stream_items: np.ndarray | None = None,
) -> Negatives:
    """Sampling state of a training run. ``stream_items`` (the item_idx of every row of the
    stream, for the continued training on the evaluation days): p_j of the logQ correction is
    then those rows' item distribution, and negatives take the catalogue's features (as of D,
    the rows' own day) instead of ``item_day_features``."""
    cfg, layout, ds = ctx.cfg, ctx.layout, ctx.ds
    t = load_item_sampling(layout, ds)
    idx = t.column("item_idx").to_numpy().astype(np.int64)
    size = max(size, int(idx.max(initial=0)) + 1)
    if stream_items is not None and len(stream_items):
        size = max(size, int(stream_items.max()) + 1)
    neg_prob = np.zeros(size)
    neg_prob[idx] = t.column("neg_prob").to_numpy()
    # p_j describes the stream actually batched: the resampled positives.
    inbatch = np.zeros(size)
    resampled = t.column("clicks_resampled").to_numpy().astype(np.float64)
    inbatch[idx] = resampled / max(resampled.sum(), 1.0)
    if stream_items is not None:
        counts = np.bincount(np.clip(stream_items, 0, None), minlength=size).astype(np.float64)
        inbatch = counts / max(counts.sum(), 1.0)
    # Ablating resampling re-weights each example by clicks / clicks_resampled of its item,
    # which restores the original click distribution in expectation (importance weights).
    undo = None
    if "resampling" in ablate:
        clicks = t.column("clicks").to_numpy().astype(np.float64)
        undo = np.zeros(size, dtype=np.float32)
        undo[idx] = np.where(resampled > 0, clicks / np.maximum(resampled, 1.0), 0.0)
    sampler = AliasSampler(
        torch.from_numpy(idx),
        torch.from_numpy(t.column("alias_prob").to_numpy().copy()),
        torch.from_numpy(t.column("alias_idx").to_numpy().astype(np.int64)),
        torch.from_numpy(t.column("neg_prob").to_numpy().copy()),
    )
    estimator = None
    if cfg.training.logq == "streaming":
        buckets = cfg.training.freq_buckets or 2 * size
        estimator = StreamingFrequencyEstimator(buckets, cfg.training.freq_hashes, cfg.training.freq_alpha, cfg.training.seed)
    last_train_day = parse_ds(ctx.window.last_train_day)
    day_features = None if stream_items is not None else load_item_day_features(layout, ds, catalogue.num_columns, last_train_day)
    if day_features is None and stream_items is None and any(c in catalogue.num_columns for c in FRESHNESS_FEATURES):
        log.warning(
            "item_day_features ds=%s is missing: sampled negatives get the catalogue's freshness as of "
            "the run day while positives carry their own day's (rerun `twotower etl --ds %s --stage datasets`)",
            ds, ds,
        )
    return Negatives(
        catalogue, sampler, torch.from_numpy(inbatch), torch.from_numpy(neg_prob), estimator,
        None if undo is None else torch.from_numpy(undo), day_features,
    )
