"""Streaming frequency estimator on synthetic streams with known frequencies."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from training.frequency import StreamingFrequencyEstimator


def _stream(probs: np.ndarray, steps: int, seed: int) -> np.ndarray:
    """One item per step, drawn i.i.d. from ``probs`` (so P(item j in a step) = p_j exactly)."""
    return np.random.default_rng(seed).choice(len(probs), size=steps, p=probs)


def _run(est: StreamingFrequencyEstimator, stream: np.ndarray) -> None:
    for item in stream:
        est.update(torch.tensor([int(item)]))


def _rel_error(est: StreamingFrequencyEstimator, probs: np.ndarray) -> float:
    p_hat = est.probability(torch.arange(len(probs))).numpy()
    return float(np.mean(np.abs(p_hat - probs) / probs))


def test_estimate_converges_without_collisions():
    # 5 items with p = [0.4, 0.3, 0.15, 0.1, 0.05]; with no collisions (H >> n) the average gap
    # between sightings of item j is 1 / p_j, so 1 / B -> p_j.
    probs = np.array([0.4, 0.3, 0.15, 0.1, 0.05])
    stream = _stream(probs, 20_000, seed=0)
    early = StreamingFrequencyEstimator(buckets=4096, num_hashes=1, alpha=0.01, seed=0)
    _run(early, stream[:200])
    late = StreamingFrequencyEstimator(buckets=4096, num_hashes=1, alpha=0.01, seed=0)
    _run(late, stream)
    p_hat = late.probability(torch.arange(5)).numpy()
    np.testing.assert_allclose(p_hat, probs, rtol=0.25)
    assert _rel_error(late, probs) < 0.15
    assert _rel_error(late, probs) < _rel_error(early, probs)  # more data -> closer


def test_more_hashes_reduce_collision_damage():
    # 200 items in only 64 buckets: many collide. One hash overestimates every collided item;
    # with 3 hashes the max over B picks the least polluted bucket.
    rng = np.random.default_rng(1)
    weights = rng.pareto(1.5, size=200) + 0.2
    probs = weights / weights.sum()
    stream = _stream(probs, 40_000, seed=2)
    errors = {}
    for m in (1, 3):
        est = StreamingFrequencyEstimator(buckets=64, num_hashes=m, alpha=0.01, seed=7)
        _run(est, stream)
        errors[m] = _rel_error(est, probs)
    assert errors[3] < errors[1], errors


def test_validates():
    with pytest.raises(ValueError, match="buckets"):
        StreamingFrequencyEstimator(0)
    with pytest.raises(ValueError, match="alpha"):
        StreamingFrequencyEstimator(10, alpha=0.0)
