"""Alias sampler: a hand-built Vose table and a large draw checked with a chi-square test."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from training.samplers import AliasSampler


def test_hand_built_alias_table_draws_its_distribution():
    # p = [0.5, 0.3, 0.2] over item ids [1, 2, 3]; n * p = [1.5, 0.9, 0.6]. Vose by hand:
    # slot 2 (0.9) keeps item 2 w.p. 0.9 else item 1; slot 3 (0.6) keeps w.p. 0.6 else item 1;
    # slot 1 then has 1.5 - 0.1 - 0.4 = 1.0 -> always itself.
    # P(1) = (1 + 0.1 + 0.4) / 3 = 0.5, P(2) = 0.9 / 3 = 0.3, P(3) = 0.6 / 3 = 0.2
    sampler = AliasSampler(
        item_idx=torch.tensor([1, 2, 3]),
        alias_prob=torch.tensor([1.0, 0.9, 0.6]),
        alias_idx=torch.tensor([1, 1, 1]),
    )
    n = 200_000
    draws = sampler.sample(n, torch.Generator().manual_seed(0)).numpy()
    observed = np.bincount(draws, minlength=4)[1:]
    chi2, p_value = stats.chisquare(observed, n * np.array([0.5, 0.3, 0.2]))
    assert p_value > 0.001, (observed, chi2)


def test_vose_builder_matches_clicks_power_distribution():
    rng = np.random.default_rng(3)
    clicks = rng.integers(0, 500, size=50).astype(float)
    weights = (clicks + 1.0) ** 0.75
    ids = np.arange(10, 60)
    sampler = AliasSampler.from_probs(ids, weights)
    n = 400_000
    draws = sampler.sample(n, torch.Generator().manual_seed(1)).numpy()
    observed = np.bincount(draws - 10, minlength=50)
    chi2, p_value = stats.chisquare(observed, n * weights / weights.sum())
    assert p_value > 0.001, chi2
    # A wrong distribution (uniform) must be rejected by the same test: the test can fail.
    _, p_uniform = stats.chisquare(observed, np.full(50, n / 50))
    assert p_uniform < 1e-6


def test_sampler_is_deterministic_and_validates():
    s = AliasSampler.from_probs(np.array([1, 2]), np.array([1.0, 3.0]))
    a = s.sample(100, torch.Generator().manual_seed(5))
    b = s.sample(100, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="empty"):
        AliasSampler(torch.zeros(0, dtype=torch.long), torch.zeros(0), torch.zeros(0, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        AliasSampler(torch.tensor([1]), torch.tensor([1.5]), torch.tensor([1]))
