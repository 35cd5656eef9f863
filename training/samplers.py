"""Catalogue negative sampling from a Walker/Vose alias table (O(1) per draw, vectorised).

The ETL writes the table (``item_sampling``: ``alias_prob``, ``alias_idx`` over item_idx order,
for p_i ∝ (clicks_i + smoothing)^alpha); :meth:`AliasSampler.from_probs` builds one from any
distribution (tests, the resampling ablation).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


class AliasSampler:
    """Draws item ids i with probability ``neg_prob_i``.

    Slot s (uniform over the table's rows) keeps its own item ``item_idx[s]`` with probability
    ``alias_prob[s]``, otherwise gives ``alias_idx[s]``.
    """

    def __init__(self, item_idx: Tensor, alias_prob: Tensor, alias_idx: Tensor, probs: Tensor | None = None) -> None:
        n = item_idx.shape[0]
        if n == 0:
            raise ValueError("AliasSampler: the alias table is empty (no catalogue items to sample)")
        if alias_prob.shape != (n,) or alias_idx.shape != (n,):
            raise ValueError(
                f"AliasSampler: item_idx, alias_prob and alias_idx must all be [{n}], got "
                f"{tuple(alias_prob.shape)} and {tuple(alias_idx.shape)}"
            )
        if (alias_prob < 0).any() or (alias_prob > 1 + 1e-6).any():
            raise ValueError("AliasSampler: alias_prob must lie in [0, 1]")
        self.item_idx = item_idx.long()
        self.alias_prob = alias_prob.double()
        self.alias_idx = alias_idx.long()
        # Probability of each item (same order as item_idx), for the logQ correction of sampled negatives.
        self.probs = probs.double() if probs is not None else None

    @classmethod
    def from_probs(cls, item_idx: np.ndarray, probs: np.ndarray) -> AliasSampler:
        """Vose's alias method over ``probs`` (any non-negative weights; normalised here)."""
        p = np.asarray(probs, dtype=np.float64)
        if p.ndim != 1 or len(p) != len(item_idx) or len(p) == 0 or (p < 0).any() or p.sum() <= 0:
            raise ValueError("AliasSampler.from_probs: need a non-empty 1-D array of non-negative weights with a positive sum")
        n = len(p)
        scaled = p / p.sum() * n
        prob = np.ones(n)
        alias = np.arange(n)
        small = [i for i in range(n) if scaled[i] < 1.0]
        large = [i for i in range(n) if scaled[i] >= 1.0]
        while small and large:
            s, g = small.pop(), large.pop()
            prob[s], alias[s] = scaled[s], g
            scaled[g] -= 1.0 - scaled[s]
            (small if scaled[g] < 1.0 else large).append(g)
        ids = np.asarray(item_idx, dtype=np.int64)
        return cls(torch.from_numpy(ids), torch.from_numpy(prob), torch.from_numpy(ids[alias]), torch.from_numpy(p / p.sum()))

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` item ids [n] int64."""
        slot = torch.randint(0, self.item_idx.shape[0], (n,), generator=generator)
        keep = torch.rand(n, generator=generator, dtype=torch.float64) < self.alias_prob[slot]
        return torch.where(keep, self.item_idx[slot], self.alias_idx[slot])
