"""Streaming item-frequency estimation (Yi et al. 2019, "Sampling-bias-corrected neural modeling
for large corpus item recommendations", Algorithms 2 and 3).

For each of m hash functions h_k there are two arrays of size H: ``A_k[h]`` holds the last step
at which a bucket was seen and ``B_k[h]`` an exponential moving average (rate alpha) of the gap
between consecutive sightings. An item's estimated gap is ``max_k B_k[h_k(y)]`` (collisions only
make a bucket look more frequent, i.e. shrink B, so the largest is the least polluted), and its
sampling probability per step is ``1 / gap``.
"""

from __future__ import annotations

import torch
from torch import Tensor

_PRIME = 2_147_483_647  # 2^31 - 1, for universal hashing (a*x + b) mod P mod H


class StreamingFrequencyEstimator:
    """Estimates, for any item id, the expected number of occurrences per training step."""

    def __init__(self, buckets: int, num_hashes: int = 1, alpha: float = 0.01, seed: int = 0) -> None:
        if buckets <= 0:
            raise ValueError(f"StreamingFrequencyEstimator: buckets must be > 0, got {buckets}")
        if num_hashes <= 0:
            raise ValueError(f"StreamingFrequencyEstimator: num_hashes must be > 0, got {num_hashes}")
        if not 0 < alpha <= 1:
            raise ValueError(f"StreamingFrequencyEstimator: alpha must be in (0, 1], got {alpha}")
        self.buckets, self.num_hashes, self.alpha = buckets, num_hashes, alpha
        g = torch.Generator().manual_seed(seed)
        self._a = torch.randint(1, _PRIME - 1, (num_hashes, 1), generator=g, dtype=torch.int64)
        self._b = torch.randint(0, _PRIME - 1, (num_hashes, 1), generator=g, dtype=torch.int64)
        self.last_step = torch.zeros(num_hashes, buckets, dtype=torch.float64)  # A
        # B starts at one bucket-sweep: an unseen item looks rare rather than infinitely frequent.
        self.gap = torch.full((num_hashes, buckets), float(buckets), dtype=torch.float64)  # B
        self.step = 0

    def _hash(self, ids: Tensor) -> Tensor:
        """[m, n] bucket of each id under each hash function."""
        return ((self._a * ids.long()[None, :] + self._b) % _PRIME) % self.buckets

    def update(self, ids: Tensor) -> None:
        """Record one training step in which ``ids`` [n] were seen (duplicates count once)."""
        self.step += 1
        t = float(self.step)
        buckets = self._hash(torch.unique(ids))
        for k in range(self.num_hashes):
            # Several ids of one step may share a bucket: unique so each bucket updates once.
            h = torch.unique(buckets[k])
            self.gap[k, h] = (1.0 - self.alpha) * self.gap[k, h] + self.alpha * (t - self.last_step[k, h])
            self.last_step[k, h] = t

    def probability(self, ids: Tensor) -> Tensor:
        """[n] float64: estimated probability that an id occurs in a step (1 / max_k B_k)."""
        buckets = self._hash(ids)
        gaps = torch.gather(self.gap, 1, buckets).amax(dim=0)
        return 1.0 / gaps.clamp_min(1.0)
