"""Retrieval losses as small objects that validate their arguments up front.

Conventions: embeddings are L2-normalised, so a dot product is a cosine in [-1, 1]. Per-example
weights ``r_i`` multiply each example's loss and the sum is divided by the batch size B (not by
the weight sum), as in Yi et al. 2019: the loss of a batch split over several workers then
averages to exactly the loss of the whole batch.

Shapes: B = batch, n = negatives per example, N = candidate pool, d = embedding dim.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

# Logit given to masked candidates: exp() underflows to 0 without producing NaN gradients.
MASKED_LOGIT = -1.0e9


def _check_pair(pos: Tensor, neg: Tensor, weights: Tensor | None, name: str) -> None:
    if pos.dim() != 1:
        raise ValueError(f"{name}: positive scores must be 1-D [B], got shape {tuple(pos.shape)}")
    if neg.dim() != 2 or neg.shape[0] != pos.shape[0]:
        raise ValueError(
            f"{name}: negative scores must be [B, n] with B={pos.shape[0]}, got shape {tuple(neg.shape)}"
        )
    if neg.shape[1] == 0:
        raise ValueError(f"{name}: needs at least one negative per example, got n=0")
    _check_weights(weights, pos.shape[0], name)


def _check_weights(weights: Tensor | None, batch: int, name: str) -> None:
    if weights is not None and (weights.dim() != 1 or weights.shape[0] != batch):
        raise ValueError(f"{name}: weights must be [B] with B={batch}, got shape {tuple(weights.shape)}")


def _reduce(per_example: Tensor, weights: Tensor | None) -> Tensor:
    if weights is not None:
        per_example = per_example * weights
    return per_example.sum() / max(per_example.shape[0], 1)


def _masked_mean(values: Tensor, mask: Tensor | None) -> Tensor:
    """Mean over dim 1 of [B, n] values, counting only ``mask`` (rows with no valid entry give 0)."""
    if mask is None:
        return values.mean(dim=1)
    m = mask.to(values.dtype)
    return (values * m).sum(dim=1) / m.sum(dim=1).clamp_min(1.0)


class PointwiseLoss:
    """Squared error pushing positive cosines to +1 and negative cosines to -1.

    ``loss_i = ((1 - pos_i)^2 + sum_j (1 + neg_ij)^2) / (1 + n_i)``; the positive:negative ratio
    is the number of negative columns (1:2 or 1:3 typical).
    """

    def __call__(self, pos: Tensor, neg: Tensor, weights: Tensor | None = None, neg_mask: Tensor | None = None) -> Tensor:
        """pos [B] cosines, neg [B, n] cosines, weights [B], neg_mask [B, n] bool (True = use)."""
        _check_pair(pos, neg, weights, "PointwiseLoss")
        m = torch.ones_like(neg) if neg_mask is None else neg_mask.to(neg.dtype)
        total = (1.0 - pos) ** 2 + (((1.0 + neg) ** 2) * m).sum(dim=1)
        return _reduce(total / (1.0 + m.sum(dim=1)), weights)


class TripletHingeLoss:
    """``max(0, cos(a, b-) + margin - cos(a, b+))`` averaged over an example's negatives."""

    def __init__(self, margin: float = 0.2) -> None:
        if margin < 0:
            raise ValueError(f"TripletHingeLoss: margin must be >= 0, got {margin}")
        self.margin = margin

    def __call__(self, pos: Tensor, neg: Tensor, weights: Tensor | None = None, neg_mask: Tensor | None = None) -> Tensor:
        """pos [B], neg [B, n] cosines; weights [B]; neg_mask [B, n] bool."""
        _check_pair(pos, neg, weights, "TripletHingeLoss")
        per_pair = torch.relu(neg + self.margin - pos[:, None])
        return _reduce(_masked_mean(per_pair, neg_mask), weights)


class TripletLogisticLoss:
    """``log(1 + exp(sigma * (cos(a, b-) - cos(a, b+))))`` averaged over an example's negatives."""

    def __init__(self, sigma: float = 10.0) -> None:
        if sigma <= 0:
            raise ValueError(f"TripletLogisticLoss: sigma must be > 0, got {sigma}")
        self.sigma = sigma

    def __call__(self, pos: Tensor, neg: Tensor, weights: Tensor | None = None, neg_mask: Tensor | None = None) -> Tensor:
        """pos [B], neg [B, n] cosines; weights [B]; neg_mask [B, n] bool."""
        _check_pair(pos, neg, weights, "TripletLogisticLoss")
        per_pair = F.softplus(self.sigma * (neg - pos[:, None]))  # softplus(x) = log(1 + e^x), stable
        return _reduce(_masked_mean(per_pair, neg_mask), weights)


class ListwiseSoftmaxLoss:
    """Softmax cross-entropy of one positive against its own n negatives (logits = cos / T)."""

    def __init__(self, temperature: float = 0.05) -> None:
        if temperature <= 0:
            raise ValueError(f"ListwiseSoftmaxLoss: temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def __call__(self, pos: Tensor, neg: Tensor, weights: Tensor | None = None, neg_mask: Tensor | None = None) -> Tensor:
        """pos [B], neg [B, n] cosines; weights [B]; neg_mask [B, n] bool."""
        _check_pair(pos, neg, weights, "ListwiseSoftmaxLoss")
        logits = torch.cat([pos[:, None], neg], dim=1) / self.temperature
        if neg_mask is not None:
            keep = torch.cat([torch.ones_like(neg_mask[:, :1]), neg_mask], dim=1)
            logits = logits.masked_fill(~keep, MASKED_LOGIT)
        return _reduce(-torch.log_softmax(logits, dim=1)[:, 0], weights)


class InBatchSoftmaxLoss:
    """Sampled softmax over a shared candidate pool with the logQ correction (Yi et al. 2019).

    ``logit_ij = cos(q_i, c_j) / T - log Q_j`` where ``Q_j`` is the expected number of times
    candidate j is in the pool (so the sign is *minus*: popular items, over-represented as
    negatives, are discounted). A pool entry carrying the same item id as row i's positive but
    sitting elsewhere (an accidental hit) is masked out. Optional per-row hard negatives are
    appended as extra columns (no correction: they are not drawn from a known distribution).
    """

    def __init__(self, temperature: float = 0.05, remove_accidental_hits: bool = True) -> None:
        if temperature <= 0:
            raise ValueError(f"InBatchSoftmaxLoss: temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.remove_accidental_hits = remove_accidental_hits

    def __call__(
        self,
        query: Tensor,
        candidates: Tensor,
        candidate_ids: Tensor,
        positive_index: Tensor | None = None,
        log_q: Tensor | None = None,
        weights: Tensor | None = None,
        hard: Tensor | None = None,
        hard_ids: Tensor | None = None,
        hard_mask: Tensor | None = None,
    ) -> Tensor:
        """Mean weighted cross-entropy of each query's positive among the pool.

        Args:
            query: [B, d] query embeddings.
            candidates: [N, d] pool; row ``positive_index[i]`` is query i's positive.
            candidate_ids: [N] int64 item ids of the pool (for accidental-hit masking).
            positive_index: [B] int64 (default ``arange(B)``: the first B pool rows are the positives).
            log_q: [N] log of each candidate's expected count in the pool, or None (no correction).
            weights: [B] per-example weights r_i.
            hard: [B, h, d] per-row hard negatives, with ``hard_ids`` [B, h] and ``hard_mask`` [B, h] bool.
        """
        name = "InBatchSoftmaxLoss"
        if query.dim() != 2 or candidates.dim() != 2 or query.shape[1] != candidates.shape[1]:
            raise ValueError(
                f"{name}: query [B, d] and candidates [N, d] must share d, got {tuple(query.shape)} and {tuple(candidates.shape)}"
            )
        b, n = query.shape[0], candidates.shape[0]
        if candidate_ids.shape != (n,):
            raise ValueError(f"{name}: candidate_ids must be [N]={n}, got shape {tuple(candidate_ids.shape)}")
        if positive_index is None:
            if n < b:
                raise ValueError(f"{name}: pool of {n} candidates is smaller than the batch {b}; pass positive_index")
            positive_index = torch.arange(b, device=query.device)
        if positive_index.shape != (b,):
            raise ValueError(f"{name}: positive_index must be [B]={b}, got shape {tuple(positive_index.shape)}")
        if log_q is not None and log_q.shape != (n,):
            raise ValueError(f"{name}: log_q must be [N]={n}, got shape {tuple(log_q.shape)}")
        if log_q is not None and not torch.isfinite(log_q).all():
            raise ValueError(f"{name}: log_q has non-finite values (a candidate with Q=0 cannot be in the pool)")
        _check_weights(weights, b, name)

        logits = query @ candidates.T / self.temperature  # [B, N]
        if log_q is not None:
            logits = logits - log_q[None, :]
        if self.remove_accidental_hits:
            pos_ids = candidate_ids[positive_index]  # [B]
            hit = candidate_ids[None, :] == pos_ids[:, None]
            hit[torch.arange(b, device=query.device), positive_index] = False
            logits = logits.masked_fill(hit, MASKED_LOGIT)
        if hard is not None:
            if hard.dim() != 3 or hard.shape[0] != b or hard.shape[2] != query.shape[1]:
                raise ValueError(f"{name}: hard must be [B, h, d], got shape {tuple(hard.shape)}")
            hard_logits = torch.einsum("bd,bhd->bh", query, hard) / self.temperature
            mask = torch.ones_like(hard_logits, dtype=torch.bool) if hard_mask is None else hard_mask.clone()
            if hard_ids is not None and self.remove_accidental_hits:
                mask &= hard_ids != candidate_ids[positive_index][:, None]
            logits = torch.cat([logits, hard_logits.masked_fill(~mask, MASKED_LOGIT)], dim=1)
        per_example = F.cross_entropy(logits, positive_index, reduction="none")
        return _reduce(per_example, weights)
