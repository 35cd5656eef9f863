"""``simulate``: write whole simulated days (all four raw tables + ground truth) to the data root.

A day's rows are a function of (preset, seed, day) only, so simulating 2026-11-01..07 in one
call or one day at a time gives identical partitions; a rerun of a day replaces it atomically.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import math
import time
from typing import Any

import numpy as np
import pyarrow as pa

from contracts.days import parse_ds
from contracts.schemas import RAW_TABLE_NAMES, raw_tables
from logsim import io
from logsim.funnel import chunk_tables, personal_pools, request_ids, simulate_chunk
from logsim.presets import Preset, get_preset
from logsim.world import (
    _DAY_SHIFT,
    _STREAM_CHUNK,
    Catalogue,
    ItemBlock,
    Topics,
    Users,
    day_offset,
    group_centroids,
    make_catalogue,
    make_item_block,
    make_topics,
    make_users,
    rng_for,
)
from storage import sync
from storage.layout import Layout, atomic_dir, mark_complete_snapshot

log = logging.getLogger(__name__)

# Feature columns the simulator produces (the default [features] of twotower.toml).
USER_FEATURES = {"categorical": ("region", "age_band"), "numeric": ("activity",)}
ITEM_FEATURES = {"categorical": ("category", "subcategory"), "numeric": ("quality",)}
# Request volume varies by weekday by up to this fraction (deterministic in the day).
WEEKDAY_AMPLITUDE = 0.08


def _check_features(features) -> None:
    from core.errors import UserError

    wanted = {
        "user_categorical": (features.user_categorical, USER_FEATURES["categorical"]),
        "user_numeric": (features.user_numeric, USER_FEATURES["numeric"]),
        "item_categorical": (features.item_categorical, ITEM_FEATURES["categorical"]),
        "item_numeric": (features.item_numeric, ITEM_FEATURES["numeric"]),
    }
    for key, (declared, produced) in wanted.items():
        missing = [c for c in declared if c not in produced]
        if missing:
            raise UserError(
                f"[features] {key} declares {missing}, which the simulator does not produce "
                f"(it produces {', '.join(produced)}); use the default [features] for simulated data"
            )


def world_meta(preset: Preset, seed: int) -> dict[str, Any]:
    p = dataclasses.asdict(preset)
    key = hashlib.sha256(json.dumps({"preset": p, "seed": seed}, sort_keys=True, default=str).encode()).hexdigest()
    return {
        "world_key": key,
        "preset": p,
        "seed": seed,
        "click_model": {
            "formula": "p_click = sigmoid(affinity_weight * <u, v> + popularity_weight * pop + click_bias)"
            " * (1 + position) ** -position_decay",
            "affinity_weight": preset.affinity_weight,
            "popularity_weight": preset.popularity_weight,
            "click_bias": preset.click_bias,
            "position_decay": preset.position_decay,
        },
    }


def requests_on(preset: Preset, day: dt.date) -> int:
    """Requests of a day: the preset's volume with a mild weekly cycle."""
    return round(preset.requests_per_day * (1.0 + WEEKDAY_AMPLITUDE * math.sin(2 * math.pi * day.weekday() / 7)))


def _users_table(users: Users, schema: pa.Schema) -> pa.Table:
    cols = {
        "user_id": users.ids,
        "region": users.region,
        "age_band": users.age_band,
        "activity": users.activity,
    }
    return pa.Table.from_arrays([pa.array(cols[f.name], type=f.type) for f in schema], schema=schema)


def _items_table(cat: Catalogue, schema: pa.Schema) -> pa.Table:
    blocks = cat.blocks
    cols = {
        "item_id": cat.ids,
        "created_at": np.concatenate([b.created_us for b in blocks]),
        "category": np.concatenate([b.category for b in blocks]),
        "subcategory": np.concatenate([b.subcategory for b in blocks]),
        "quality": np.concatenate([b.quality for b in blocks]),
    }
    return pa.Table.from_arrays([pa.array(cols[f.name], type=f.type) for f in schema], schema=schema)


class World:
    """Users, topics and a cache of item blocks for one (preset, seed)."""

    def __init__(self, preset: Preset, seed: int) -> None:
        self.preset, self.seed = preset, seed
        self.topics: Topics = make_topics(preset, seed)
        self.users: Users = make_users(preset, seed, self.topics)
        self.group_latent = group_centroids(preset, self.topics)
        self.user_cum = np.cumsum(self.users.rate) / self.users.rate.sum()
        self.user_ids = pa.array(self.users.ids, type=pa.string())
        self._blocks: dict[int, ItemBlock] = {}
        self.truth_written: set[int] = set()  # item blocks already saved to the truth by this call

    def block(self, offset: int) -> ItemBlock:
        if offset not in self._blocks:
            self._blocks[offset] = make_item_block(self.preset, self.seed, self.topics, offset)
        return self._blocks[offset]

    def catalogue(self, offset: int) -> Catalogue:
        first = offset - self.preset.item_lifetime_days + 1
        for old in [k for k in self._blocks if k < first]:
            del self._blocks[old]
        return make_catalogue(self.preset, [self.block(k) for k in range(first, offset + 1)], offset)


def simulate_day(cfg, world: World, day: dt.date) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """Simulate one day and write its four raw partitions (each atomically).

    Returns:
        (day stats, catalogue item ids [N], clicks per catalogue item [N]).
    """
    t0 = time.perf_counter()
    preset, seed = world.preset, world.seed
    layout = Layout(cfg.paths)
    tables = raw_tables(cfg.features)
    ds = day.isoformat()
    offset = day_offset(preset, day)
    cat = world.catalogue(offset)
    for b in cat.blocks:  # truth first: it always covers whatever data is on disk
        if b.offset in world.truth_written:
            continue
        world.truth_written.add(b.offset)
        block_day = (preset.epoch + dt.timedelta(days=b.offset)).isoformat()
        io.write_truth_items(layout.truth_dir, block_day, b.ids, b.latent, b.pop)

    pools = personal_pools(preset, world.group_latent, cat)
    exposure_cum = np.cumsum(cat.exposure) / cat.exposure.sum()
    item_ids = pa.array(cat.ids, type=pa.string())
    day_start_us = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()) * 1_000_000
    n_req = requests_on(preset, day)
    chunk = preset.chunk_requests
    clicks_per_item = np.zeros(len(cat.ids), dtype=np.int64)
    n = {"impressions": 0, "ranking_log": 0, "clicks": 0, "likes": 0, "candidates": 0, "prerank_pass": 0}

    with atomic_dir(layout.path_for("impressions", ds)) as imp_dir, atomic_dir(layout.path_for("ranking_log", ds)) as rl_dir:
        for c, start in enumerate(range(0, n_req, chunk)):
            m = min(chunk, n_req - start)
            rng = rng_for(seed, _STREAM_CHUNK, offset + _DAY_SHIFT, c)
            f = simulate_chunk(
                preset, rng, m, day_start_us, world.users, world.user_cum, cat, exposure_cum, pools, world.group_latent
            )
            imp, rl = chunk_tables(f, request_ids(f"r{day:%Y%m%d}", start, m), world.user_ids, item_ids)
            n["impressions"] += io.write_part(imp_dir, c, imp)
            n["ranking_log"] += io.write_part(rl_dir, c, rl)
            hit = f.clicked
            n["clicks"] += int(hit.sum())
            n["likes"] += int(f.liked.sum())
            n["candidates"] += int(f.valid.sum())
            n["prerank_pass"] += int(f.prerank_pass.sum())
            clicks_per_item += np.bincount(f.cand[hit], minlength=len(cat.ids))
    with atomic_dir(layout.path_for("users", ds)) as d:
        users_rows = io.write_part(d, 0, _users_table(world.users, tables["users"].arrow_schema()))
    with atomic_dir(layout.path_for("items", ds)) as d:
        items_rows = io.write_part(d, 0, _items_table(cat, tables["items"].arrow_schema()))
        mark_complete_snapshot(d)  # the simulated catalogue retires its oldest block

    seconds = time.perf_counter() - t0
    return {
        "ds": ds,
        "requests": n_req,
        "impressions": n["impressions"],
        "ranking_log": n["ranking_log"],
        "users": users_rows,
        "items": items_rows,
        "new_items": preset.new_items_per_day,
        "clicks": n["clicks"],
        "likes": n["likes"],
        "ctr": n["clicks"] / max(1, n["impressions"]),
        "prerank_pass_rate": n["prerank_pass"] / max(1, n["candidates"]),
        "rank_pass_rate": n["impressions"] / max(1, n["prerank_pass"]),
        "seconds": round(seconds, 2),
    }, cat.ids, clicks_per_item


def top_share(counts: np.ndarray, fraction: float = 0.01) -> float:
    """Share of all clicks taken by the top ``fraction`` of items (at least one item)."""
    total = counts.sum()
    if total == 0:
        return 0.0
    k = max(1, math.ceil(fraction * len(counts)))
    return float(np.sort(counts)[::-1][:k].sum() / total)


def simulate(cfg, preset: str | Preset, start: str | dt.date, days: int, seed: int) -> dict[str, Any]:
    """Simulate ``days`` consecutive days from ``start`` into ``Layout(cfg.paths)``.

    Args:
        cfg: the Config (paths, features); preset: a name from ``logsim.presets.PRESETS`` or a Preset;
        start: first day (YYYY-MM-DD); days: how many; seed: the world's seed.
    Returns:
        JSON-serialisable stats: per-day rows/CTR/pass rates, the top-1% items' click share, time.
    """
    from core.errors import UserError

    t0 = time.perf_counter()
    try:
        p = get_preset(preset) if isinstance(preset, str) else preset
        first = parse_ds(start)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    if days < 1:
        raise UserError(f"days must be >= 1, got {days}")
    _check_features(cfg.features)
    layout = Layout(cfg.paths)
    # With an object store, this machine's truth folder first becomes the store's (earlier runs').
    sync.pull(cfg.paths, [layout.truth_dir])
    io.write_world(layout.truth_dir, world_meta(p, seed))
    world = World(p, seed)
    io.write_truth_users(layout.truth_dir, world.users.ids, world.users.latent)

    per_day, click_ids, click_counts = [], [], []
    for i in range(days):
        day = first + dt.timedelta(days=i)
        stats, ids, counts = simulate_day(cfg, world, day)
        sync.push(cfg.paths, [*(layout.path_for(t, day) for t in RAW_TABLE_NAMES), layout.truth_dir])
        click_ids.append(ids)
        click_counts.append(counts)
        log.debug("simulated %s: %s", stats["ds"], stats)
        per_day.append(stats)

    # Clicks per item over every item active on any simulated day (zero-click items count too).
    _, inverse = np.unique(np.concatenate(click_ids), return_inverse=True)
    counts = np.bincount(inverse, weights=np.concatenate(click_counts)).astype(np.int64)
    totals = {k: sum(d[k] for d in per_day) for k in ("requests", "impressions", "ranking_log", "clicks", "likes")}
    return {
        "preset": p.name,
        "seed": seed,
        "start": first.isoformat(),
        "days": days,
        "data_root": str(layout.data_root),
        "per_day": per_day,
        "totals": totals,
        "ctr": totals["clicks"] / max(1, totals["impressions"]),
        "items_seen": len(counts),
        "top1pct_click_share": top_share(counts, 0.01),
        "top10pct_click_share": top_share(counts, 0.10),
        "prerank_pass_rate": float(np.mean([d["prerank_pass_rate"] for d in per_day])),
        "rank_pass_rate": float(np.mean([d["rank_pass_rate"] for d in per_day])),
        "ranking_rows_per_impression": totals["ranking_log"] / max(1, totals["impressions"]),
        "seconds": round(time.perf_counter() - t0, 2),
    }
