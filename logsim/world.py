"""The planted world: user and item latent vectors, popularity, and the features derived from them.

Pure numpy. Everything is a deterministic function of (preset, seed) plus, for items, the day
offset of the block they were created in, so any day can be regenerated on its own.

Generative story (see docs/simulator.md):
  * ``n_categories`` topic centroids ``C`` (unit vectors) and subcategory offsets ``S``.
  * user: a primary and a secondary category ``c1, c2``; latent
    ``u = normalise(C[c1] + 0.5 C[c2] + noise)``; taste group ``g = c1 * n_categories + c2``.
    Features: ``region`` and ``age_band`` are the argmax of fixed random projections of ``u``
    plus noise (noisy functions of the latent); ``activity`` is the expected requests per day
    times log-normal noise.
  * item: category ``c`` and subcategory ``s``; ``v = normalise(C[c] + 0.6 S[c, s] + noise)``;
    popularity weight ``w ~ 1 + Pareto(shape)`` (heavy tail), ``pop = shape * log(w) - 1``
    (standardised: log w is exponential with mean 1/shape). Features: ``category``,
    ``subcategory`` (replaced by a random value with probability ``category_noise``) and
    ``quality = 0.7 pop + noise``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from logsim.presets import Preset

# Stream ids: separate random streams per purpose so adding one never shifts another.
_STREAM_WORLD, _STREAM_USERS, _STREAM_ITEMS, _STREAM_CHUNK = 0, 1, 2, 4
# SeedSequence entropy must be non-negative: day offsets are shifted by this.
_DAY_SHIFT = 1_000_000

AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55+", "65+", "unknown")


def rng_for(seed: int, stream: int, *keys: int) -> np.random.Generator:
    """An independent generator for (seed, stream, keys...)."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, stream, *keys])))


def day_offset(preset: Preset, day: dt.date) -> int:
    return (day - preset.epoch).days


def _normalise(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


@dataclass(frozen=True)
class Topics:
    """World constants shared by users and items."""

    centroids: np.ndarray  # float32 [n_categories, dim], unit rows
    sub_offsets: np.ndarray  # float32 [n_categories, n_sub, dim]
    category_prior: np.ndarray  # float64 [n_categories], sums to 1
    region_proj: np.ndarray  # float32 [n_regions, dim]
    age_proj: np.ndarray  # float32 [n_age_bands, dim]


def make_topics(preset: Preset, seed: int) -> Topics:
    rng = rng_for(seed, _STREAM_WORLD)
    k, d = preset.n_categories, preset.dim
    centroids = _normalise(rng.standard_normal((k, d)))
    subs = _normalise(rng.standard_normal((k, preset.subcategories_per_category, d)))
    prior = rng.dirichlet(np.full(k, 2.0))
    region_proj = rng.standard_normal((preset.n_regions, d)).astype(np.float32)
    age_proj = rng.standard_normal((preset.n_age_bands, d)).astype(np.float32)
    return Topics(centroids, subs, prior, region_proj, age_proj)


def group_centroids(preset: Preset, topics: Topics) -> np.ndarray:
    """Noise-free mean latent of each taste group ``g = c1 * K + c2``: float32 [K*K, dim]."""
    c = topics.centroids
    return _normalise(c[:, None, :] + 0.5 * c[None, :, :]).reshape(-1, preset.dim)


@dataclass(frozen=True)
class Users:
    ids: np.ndarray  # object/str [n]
    latent: np.ndarray  # float32 [n, dim]
    group: np.ndarray  # int64 [n]
    rate: np.ndarray  # float64 [n], expected requests per day (relative)
    region: np.ndarray  # str [n]
    age_band: np.ndarray  # str [n]
    activity: np.ndarray  # float64 [n]


def make_users(preset: Preset, seed: int, topics: Topics) -> Users:
    rng = rng_for(seed, _STREAM_USERS)
    n, k, d = preset.n_users, preset.n_categories, preset.dim
    c1 = rng.choice(k, size=n, p=topics.category_prior)
    c2 = rng.choice(k, size=n, p=topics.category_prior)
    noise = rng.standard_normal((n, d)) * (0.7 / np.sqrt(d))
    latent = _normalise(topics.centroids[c1] + 0.5 * topics.centroids[c2] + noise)
    group = (c1 * k + c2).astype(np.int64)
    # Activity: heavy-ish tail of request rates (a few users are very active).
    rate = rng.lognormal(0.0, 0.8, size=n)
    activity = rate * rng.lognormal(0.0, 0.25, size=n) * 3.0
    # Noisy functions of the latent: argmax of a projection plus Gumbel noise.
    # (projections have std ~1; Gumbel noise of scale s flips the argmax more often as s grows).
    s = preset.user_feature_noise
    region_idx = np.argmax(latent @ topics.region_proj.T + s * rng.gumbel(size=(n, preset.n_regions)), axis=1)
    age_idx = np.argmax(latent @ topics.age_proj.T + 2 * s * rng.gumbel(size=(n, preset.n_age_bands)), axis=1)
    ids = np.char.add("u", np.char.zfill(np.arange(n).astype(str), 7))
    regions = np.array([f"region_{i:02d}" for i in range(preset.n_regions)])
    ages = np.array(AGE_BANDS[: preset.n_age_bands])
    return Users(ids, latent, group, rate, regions[region_idx], ages[age_idx], activity)


@dataclass(frozen=True)
class ItemBlock:
    """The items created on one day (``offset`` days after the preset's epoch)."""

    offset: int
    ids: np.ndarray  # str [m]
    latent: np.ndarray  # float32 [m, dim]
    pop: np.ndarray  # float32 [m], standardised log-popularity
    weight: np.ndarray  # float64 [m], popularity weight (heavy tail)
    category: np.ndarray  # str [m] (noisy feature)
    subcategory: np.ndarray  # str [m] (noisy feature)
    quality: np.ndarray  # float64 [m]
    created_us: np.ndarray  # int64 [m], microseconds since the Unix epoch (UTC)


def make_item_block(preset: Preset, seed: int, topics: Topics, offset: int) -> ItemBlock:
    rng = rng_for(seed, _STREAM_ITEMS, offset + _DAY_SHIFT)
    m, k, d, ns = preset.new_items_per_day, preset.n_categories, preset.dim, preset.subcategories_per_category
    cat = rng.choice(k, size=m, p=topics.category_prior)
    sub = rng.integers(0, ns, size=m)
    noise = rng.standard_normal((m, d)) * (0.6 / np.sqrt(d))
    latent = _normalise(topics.centroids[cat] + 0.6 * topics.sub_offsets[cat, sub] + noise)
    weight = 1.0 + rng.pareto(preset.popularity_shape, size=m)
    pop = (preset.popularity_shape * np.log(weight) - 1.0).astype(np.float32)
    quality = np.clip(0.7 * pop + 0.7 * rng.standard_normal(m), -9.5, 9.5)
    # Categorical features are the true ones with probability 1 - category_noise.
    flip = rng.random(m) < preset.category_noise
    cat_f = np.where(flip, rng.integers(0, k, size=m), cat)
    flip_s = rng.random(m) < preset.category_noise
    sub_f = np.where(flip_s, rng.integers(0, ns, size=m), sub)
    cat_names = np.array([f"cat_{i:02d}" for i in range(k)])
    category = cat_names[cat_f]
    subcategory = np.char.add(np.char.add(category, "/sub_"), sub_f.astype(str))
    day = preset.epoch + dt.timedelta(days=offset)
    ids = np.char.add(f"i{day:%Y%m%d}-", np.char.zfill(np.arange(m).astype(str), 5))
    # Published during the previous day, so every impression of the block comes after created_at.
    day_us = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()) * 1_000_000
    created_us = day_us - rng.integers(1, 86_400_000_000, size=m)
    return ItemBlock(offset, ids, latent, pop, weight, category, subcategory, quality.astype(np.float64), created_us)


@dataclass(frozen=True)
class Catalogue:
    """The active items on one day: the concatenation of the last ``item_lifetime_days`` blocks."""

    ids: np.ndarray
    latent: np.ndarray  # float32 [N, dim]
    pop: np.ndarray  # float32 [N]
    exposure: np.ndarray  # float64 [N], popularity weight x freshness (sampling weight)
    age_days: np.ndarray  # int64 [N]
    blocks: tuple[ItemBlock, ...]


def make_catalogue(preset: Preset, blocks: list[ItemBlock], offset: int) -> Catalogue:
    age = np.concatenate([np.full(len(b.ids), offset - b.offset, dtype=np.int64) for b in blocks])
    weight = np.concatenate([b.weight for b in blocks])
    return Catalogue(
        ids=np.concatenate([b.ids for b in blocks]),
        latent=np.concatenate([b.latent for b in blocks]),
        pop=np.concatenate([b.pop for b in blocks]),
        exposure=weight * np.exp(-age / preset.fade_days),
        age_days=age,
        blocks=tuple(blocks),
    )


def true_logit(preset: Preset, dot: np.ndarray, pop: np.ndarray) -> np.ndarray:
    """The true click logit at position 0 from ``<u, v>`` and the item's standardised popularity."""
    return preset.affinity_weight * dot + preset.popularity_weight * pop + preset.click_bias
