"""One day's requests through the funnel: retrieval -> pre_rank -> rank -> shown -> clicks.

Pure functions on numpy arrays (a chunk of requests at a time, shapes ``[m, R]`` with
``m`` requests and ``R = preset.retrieval_size`` candidate slots) plus the conversion to the
raw-contract Arrow tables. No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from contracts.schemas import IMPRESSIONS, RANKING_LOG, RANKING_STAGES
from logsim.presets import Preset
from logsim.world import Catalogue, Users, true_logit

DAY_US = 86_400 * 1_000_000


def personal_pools(preset: Preset, group_latent: np.ndarray, catalogue: Catalogue) -> np.ndarray:
    """Per taste group, the ``personal_pool`` items a noisy personalised retriever returns.

    The retriever only knows the group's mean taste (not the user's own latent), so it is
    personalised but noisy. Returns int64 [n_groups, personal_pool] catalogue indices.
    """
    freshness = -catalogue.age_days / preset.fade_days
    out = np.empty((len(group_latent), preset.personal_pool), dtype=np.int64)
    step = max(1, 20_000_000 // max(1, len(catalogue.ids)))  # bound the [groups, N] score block
    for g0 in range(0, len(group_latent), step):
        s = true_logit(preset, group_latent[g0 : g0 + step] @ catalogue.latent.T, catalogue.pop) + freshness
        out[g0 : g0 + step] = np.argpartition(-s, preset.personal_pool - 1, axis=1)[:, : preset.personal_pool]
    return out


@dataclass(frozen=True)
class ChunkFunnel:
    """The funnel of ``m`` requests; candidate arrays are [m, R]."""

    user: np.ndarray  # int64 [m] user index
    ts_us: np.ndarray  # int64 [m] request time (microseconds since the Unix epoch, UTC)
    cand: np.ndarray  # int64 [m, R] catalogue index
    valid: np.ndarray  # bool [m, R] (False = duplicate slot, dropped)
    retrieval_score: np.ndarray  # float32 [m, R]
    prerank_score: np.ndarray  # float32 [m, R]
    prerank_pass: np.ndarray  # bool [m, R]
    rank_score: np.ndarray  # float32 [m, R]
    shown: np.ndarray  # bool [m, R] (rank survivors)
    position: np.ndarray  # int32 [m, R] (display position where shown, else -1)
    clicked: np.ndarray  # bool [m, R]
    liked: np.ndarray  # bool [m, R]
    dwell_ms: np.ndarray  # int64 [m, R] (meaningful where clicked)


def _rank_desc(score: np.ndarray) -> np.ndarray:
    """Per row, the 0-based rank of each entry when sorted descending (ties by slot)."""
    order = np.argsort(-score, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(score.shape[1])[None, :].repeat(len(score), 0), axis=1)
    return ranks


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def simulate_chunk(
    preset: Preset,
    rng: np.random.Generator,
    m: int,
    day_start_us: int,
    users: Users,
    user_cum: np.ndarray,
    catalogue: Catalogue,
    exposure_cum: np.ndarray,
    pools: np.ndarray,
    group_latent: np.ndarray,
) -> ChunkFunnel:
    """Simulate ``m`` requests of one day.

    Args:
        user_cum: cumulative normalised request rates of the users (who sends a request).
        exposure_cum: cumulative normalised exposure weights of the catalogue (popular source).
        pools: [n_groups, personal_pool] from :func:`personal_pools`.
        group_latent: [n_groups, dim] mean latent of each taste group (retrieval score).
    """
    R, P, S = preset.retrieval_size, preset.prerank_keep, preset.shown_per_request
    n_items = len(catalogue.ids)
    user = np.minimum(np.searchsorted(user_cum, rng.random(m)), len(user_cum) - 1)
    ts_us = day_start_us + rng.integers(0, DAY_US, size=m)

    # Retrieval: popular (by exposure), personalised-but-noisy (group pool), random.
    n_pop = round(R * preset.retrieval_popular)
    n_pers = round(R * preset.retrieval_personal)
    n_rand = R - n_pop - n_pers
    popular = np.minimum(np.searchsorted(exposure_cum, rng.random((m, n_pop))), n_items - 1)
    group = users.group[user]
    personal = pools[group[:, None], rng.integers(0, pools.shape[1], size=(m, n_pers))]
    random_ = rng.integers(0, n_items, size=(m, n_rand))
    cand = np.sort(np.concatenate([popular, personal, random_], axis=1), axis=1)
    # Duplicate candidates (an item from two sources) enter the funnel once.
    valid = np.ones((m, R), dtype=bool)
    valid[:, 1:] = cand[:, 1:] != cand[:, :-1]

    u = users.latent[user]  # [m, d]
    v = catalogue.latent[cand]  # [m, R, d]
    dot = np.einsum("md,mrd->mr", u, v)
    logit = true_logit(preset, dot, catalogue.pop[cand]).astype(np.float32)
    retrieval_score = np.einsum("md,mrd->mr", group_latent[group], v).astype(np.float32)
    del v

    neg_inf = np.float32(-np.inf)
    prerank_score = (logit + preset.prerank_noise * rng.standard_normal((m, R))).astype(np.float32)
    prerank_pass = valid & (_rank_desc(np.where(valid, prerank_score, neg_inf)) < P)
    rank_score = (logit + preset.rank_noise * rng.standard_normal((m, R))).astype(np.float32)
    rank_pos = _rank_desc(np.where(prerank_pass, rank_score, neg_inf))
    shown = prerank_pass & (rank_pos < S)
    position = np.where(shown, rank_pos, -1).astype(np.int32)

    # Click model: true propensity x position bias; likes and dwell follow the latent match.
    true_p = _sigmoid(logit)
    p_click = true_p * (1.0 + np.maximum(position, 0)) ** -preset.position_decay
    clicked = shown & (rng.random((m, R)) < p_click)
    p_like = _sigmoid(4.0 * (dot - 0.5) + 0.5 * catalogue.pop[cand])
    liked = clicked & (rng.random((m, R)) < p_like)
    dwell_ms = rng.lognormal(8.5 + dot, 0.6).astype(np.int64)
    return ChunkFunnel(
        user, ts_us, cand, valid, retrieval_score, prerank_score, prerank_pass, rank_score, shown, position,
        clicked, liked, dwell_ms,
    )


_STAGES = pa.array(RANKING_STAGES, type=pa.string())
_TS = pa.timestamp("us", tz="UTC")


def request_ids(prefix: str, start: int, m: int) -> pa.Array:
    """``<prefix>-<8-digit counter>`` for requests ``start .. start+m-1`` (vectorised)."""
    counter = pc.utf8_lpad(pc.cast(pa.array(np.arange(start, start + m, dtype=np.int64)), pa.string()), 8, "0")
    return pc.binary_join_element_wise(prefix, counter, "-")


def chunk_tables(
    f: ChunkFunnel, req_ids: pa.Array, user_ids: pa.Array, item_ids: pa.Array
) -> tuple[pa.Table, pa.Table]:
    """(impressions, ranking_log) Arrow tables of a chunk, in the raw contract.

    Args:
        req_ids: string [m] request ids; user_ids / item_ids: all user ids and catalogue item ids.
    """
    R = f.cand.shape[1]
    # Impressions: the rank survivors, one row per (request, item).
    shown = np.flatnonzero(f.shown)
    req = shown // R
    clicked = f.clicked.ravel()[shown]
    impressions = pa.Table.from_arrays(
        [
            req_ids.take(pa.array(req)),
            user_ids.take(pa.array(f.user[req])),
            item_ids.take(pa.array(f.cand.ravel()[shown])),
            pa.array(f.ts_us[req], type=_TS),
            pa.array(f.position.ravel()[shown], type=pa.int32()),
            pa.array(clicked),
            pa.array(f.liked.ravel()[shown]),
            pa.array(f.dwell_ms.ravel()[shown], type=pa.int64(), mask=~clicked),
        ],
        schema=IMPRESSIONS.arrow_schema(),
    )
    # Ranking log: every valid candidate at retrieval and pre_rank, every pre_rank survivor at rank.
    valid = np.flatnonzero(f.valid)
    pre = np.flatnonzero(f.prerank_pass)
    flat = np.concatenate([valid, valid, pre])
    stage = np.repeat(np.arange(3, dtype=np.int8), [len(valid), len(valid), len(pre)])
    score = np.concatenate(
        [f.retrieval_score.ravel()[valid], f.prerank_score.ravel()[valid], f.rank_score.ravel()[pre]]
    ).astype(np.float64)
    passed = np.concatenate([np.ones(len(valid), dtype=bool), f.prerank_pass.ravel()[valid], f.shown.ravel()[pre]])
    req = flat // R
    ranking = pa.Table.from_arrays(
        [
            req_ids.take(pa.array(req)),
            user_ids.take(pa.array(f.user[req])),
            item_ids.take(pa.array(f.cand.ravel()[flat])),
            pa.array(f.ts_us[req], type=_TS),
            _STAGES.take(pa.array(stage)),
            pa.array(score),
            pa.array(passed),
        ],
        schema=RANKING_LOG.arrow_schema(),
    )
    return impressions, ranking
