"""Simulator presets: the size of the simulated world and the shape of its funnel.

Volumes per day (impressions = requests x shown_per_request, +-8% by weekday; ranking-log rows
per request are at most 2 x retrieval_size (retrieval and pre_rank rows of every candidate) +
prerank_keep (rank rows); duplicate candidates enter once, so the actual volume is a bit lower):

| preset | users | catalogue | new items/day | requests/day | impressions/day | ranking rows/day (max) |
| --- | --- | --- | --- | --- | --- | --- |
| tiny   | 1,000     | ~510     | 17     | 2,000     | 20,000     | 160,000 (8/impression) |
| small  | 20,000    | ~5,010   | 167    | 50,000    | 500,000    | 4.0M (8/impression)    |
| medium | 200,000   | ~50,010  | 1,667  | 500,000   | 5,000,000  | 32.5M (6.5/impression) |
| large  | 2,000,000 | ~500,010 | 16,667 | 5,000,000 | 50,000,000 | 325M (6.5/impression)  |

The catalogue is ``item_lifetime_days`` blocks of ``new_items_per_day`` items: every day a block
of new items arrives and the oldest block retires, and exposure fades with age (time constant
``fade_days``), so every day has cold items and old ones disappear.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    """Everything that defines a simulated world except the seed.

    Day content is a function of (preset, seed, day - ``epoch``) only: simulating days
    one at a time or many at once gives the same rows.
    """

    name: str
    n_users: int
    new_items_per_day: int
    requests_per_day: int
    item_lifetime_days: int = 30
    fade_days: float = 7.0
    # Funnel: retrieval candidates -> pre_rank keeps prerank_keep -> rank shows shown_per_request.
    retrieval_size: int = 30
    prerank_keep: int = 20
    shown_per_request: int = 10
    # Share of retrieval candidates from each source (the rest is uniform random).
    retrieval_popular: float = 0.3
    retrieval_personal: float = 0.5
    # Personalised retrieval samples from the top ``personal_pool`` items of the user's taste group.
    personal_pool: int = 60
    # Latent space and taste structure.
    dim: int = 16
    n_categories: int = 8
    subcategories_per_category: int = 4
    n_regions: int = 6
    n_age_bands: int = 5
    # Item popularity: Pareto(shape) weights; a smaller shape means a heavier tail.
    popularity_shape: float = 1.1
    # True click logit = affinity_weight * <u, v> + popularity_weight * log-popularity (standardised)
    # + click_bias; click probability = sigmoid(logit) * (1 + position) ** -position_decay.
    affinity_weight: float = 6.0
    popularity_weight: float = 0.5
    click_bias: float = -6.0
    position_decay: float = 0.7
    # Noise (std) of the logged stage scores around the true logit.
    prerank_noise: float = 1.5
    rank_noise: float = 0.7
    # Feature noise: probability a categorical feature is replaced by a random value.
    category_noise: float = 0.1
    user_feature_noise: float = 0.25
    # Requests are generated and written in chunks of this many (fixed: part of determinism).
    chunk_requests: int = 50_000
    # Day 0 of the world: the blocks of new items are numbered from here.
    epoch: dt.date = dt.date(2026, 1, 1)

    @property
    def n_items(self) -> int:
        """Steady-state catalogue size."""
        return self.new_items_per_day * self.item_lifetime_days

    @property
    def impressions_per_day(self) -> int:
        return self.requests_per_day * self.shown_per_request

    @property
    def ranking_rows_per_day(self) -> int:
        return self.requests_per_day * (2 * self.retrieval_size + self.prerank_keep)

    def __post_init__(self) -> None:
        if not 0 < self.shown_per_request <= self.prerank_keep < self.retrieval_size:
            raise ValueError(
                f"preset {self.name}: need 0 < shown_per_request <= prerank_keep < retrieval_size, got "
                f"{self.shown_per_request}, {self.prerank_keep}, {self.retrieval_size}"
            )
        if self.retrieval_popular + self.retrieval_personal > 1.0:
            raise ValueError(f"preset {self.name}: retrieval_popular + retrieval_personal must be <= 1")
        if self.personal_pool > self.n_items:
            raise ValueError(f"preset {self.name}: personal_pool {self.personal_pool} > catalogue {self.n_items}")

    def replace(self, **changes) -> Preset:
        return dataclasses.replace(self, **changes)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("tiny", n_users=1_000, new_items_per_day=17, requests_per_day=2_000, personal_pool=100),
        Preset("small", n_users=20_000, new_items_per_day=167, requests_per_day=50_000, personal_pool=150),
        Preset(
            "medium",
            n_users=200_000,
            new_items_per_day=1_667,
            requests_per_day=500_000,
            retrieval_size=25,
            prerank_keep=15,
            personal_pool=400,
            n_categories=16,
            subcategories_per_category=6,
            chunk_requests=100_000,
        ),
        Preset(
            "large",
            n_users=2_000_000,
            new_items_per_day=16_667,
            requests_per_day=5_000_000,
            retrieval_size=25,
            prerank_keep=15,
            personal_pool=1_500,
            n_categories=24,
            subcategories_per_category=8,
            chunk_requests=100_000,
        ),
    )
}


def get_preset(name: str) -> Preset:
    """The preset called ``name`` (ValueError listing the known ones otherwise)."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown simulator preset {name!r} (known: {', '.join(PRESETS)})") from None
