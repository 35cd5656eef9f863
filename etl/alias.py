"""Walker/Vose alias table: O(1) draws from a fixed discrete distribution (numpy only).

Built on the driver from a catalogue-sized probability vector (8 bytes x items: 8 MB for a
million items). The construction is inherently sequential (Vose's small/large work lists) and
linear, so one numpy pass on the driver beats any distributed formulation; only this vector,
never per-event data, is collected.
"""

from __future__ import annotations

import numpy as np


def vose_alias(probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Alias table of a distribution.

    Args:
        probs: float64 [n], non-negative, sum > 0 (normalised here).

    Returns:
        (keep float64 [n], alias int64 [n]): draw slot i uniformly, keep i with probability
        keep[i], else take alias[i]. Slot i's mass keep[i] / n plus the mass aliased to i from
        other slots equals probs[i].
    """
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 1 or p.size == 0:
        raise ValueError(f"vose_alias: expected a non-empty 1-d probability vector, got shape {p.shape}")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise ValueError("vose_alias: probabilities must be finite and >= 0")
    total = p.sum()
    if total <= 0:
        raise ValueError("vose_alias: probabilities sum to 0")
    n = p.size
    scaled = p * (n / total)
    keep = np.ones(n, dtype=np.float64)
    alias = np.arange(n, dtype=np.int64)
    small = list(np.flatnonzero(scaled < 1.0)[::-1])
    large = list(np.flatnonzero(scaled >= 1.0)[::-1])
    # A Python loop over n slots: sequential by nature, run once per day on the driver.
    while small and large:
        s = small.pop()
        g = large.pop()
        keep[s] = scaled[s]
        alias[s] = g
        scaled[g] = (scaled[g] + scaled[s]) - 1.0
        (small if scaled[g] < 1.0 else large).append(g)
    # Leftovers are 1 up to rounding error.
    for i in small + large:
        keep[i] = 1.0
        alias[i] = i
    return keep, alias


def alias_draw(keep: np.ndarray, alias: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` slot indices drawn from an alias table (vectorised)."""
    slots = rng.integers(0, keep.size, size=size)
    take = rng.random(size) < keep[slots]
    return np.where(take, slots, alias[slots])


def alias_probabilities(keep: np.ndarray, alias: np.ndarray) -> np.ndarray:
    """The exact distribution an alias table encodes (for checks): float64 [n], sums to 1."""
    n = keep.size
    out = keep / n
    np.add.at(out, alias, (1.0 - keep) / n)
    return out
