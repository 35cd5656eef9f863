"""Small ETL-shaped tables with a planted signal (contracts.schemas column names and types), for
the training tests and the benchmark when no real ETL output is at hand.

Users and items get latent vectors driven by their categorical features plus noise; each day
every active user clicks items drawn from softmax(affinity + popularity). Tables written:
train_examples (several shards), eval_examples, item_catalogue, user_features, item_sampling,
vocabulary, click_positives (training days, for the recent-day baseline).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from contracts.days import day_range
from storage.layout import Layout


def _write(layout: Layout, table: str, ds: str, t: pa.Table, shards: int = 1) -> None:
    root = layout.path_for(table, ds)
    root.mkdir(parents=True, exist_ok=True)
    for old in root.glob("*.parquet"):
        old.unlink()
    rows = t.num_rows
    for s in range(shards):
        lo, hi = rows * s // shards, rows * (s + 1) // shards
        pq.write_table(t.slice(lo, hi - lo), Path(root) / f"part-{s:05d}.parquet", row_group_size=max(1, min(8192, hi - lo)))


def _lists(rows: list[np.ndarray]) -> pa.Array:
    return pa.array([r.tolist() for r in rows], type=pa.list_(pa.int64()))


def write_synthetic_etl(
    layout: Layout,
    ds: str,
    *,
    n_users: int = 400,
    n_items: int = 300,
    window_days: int = 4,
    clicks_per_user_day: int = 4,
    history_length: int = 10,
    hard_per_row: int = 2,
    shards: int = 4,
    seed: int = 0,
    dim: int = 8,
) -> dict[str, int]:
    """Write every table training reads for run day ``ds`` (window ends at ds; ds is the eval day)."""
    rng = np.random.default_rng(seed)
    days = day_range(ds, window_days)
    train_days, eval_day = days[:-1], days[-1]
    n_region, n_age, n_cat, n_sub = 5, 4, 8, 20
    region = rng.integers(1, n_region + 1, n_users)
    age = rng.integers(1, n_age + 1, n_users)
    activity = rng.normal(size=n_users).astype(np.float32)
    category = rng.integers(1, n_cat + 1, n_items)
    sub = rng.integers(1, n_sub + 1, n_items)
    quality = rng.normal(size=n_items).astype(np.float32)
    region_vec = rng.normal(size=(n_region + 1, dim))
    cat_vec = rng.normal(size=(n_cat + 1, dim))
    u_lat = region_vec[region] + 0.7 * rng.normal(size=(n_users, dim))
    i_lat = cat_vec[category] + 0.7 * rng.normal(size=(n_items, dim))
    pop = 0.8 * rng.normal(size=n_items) + 0.5 * quality
    logits = u_lat @ i_lat.T / np.sqrt(dim) * 2.0 + pop[None, :]
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    cum = np.cumsum(probs, axis=1)

    user_idx = np.arange(1, n_users + 1)  # ids start at 1: 0 is OOV
    item_idx = np.arange(1, n_items + 1)
    clicks: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for d in days:
        active = np.flatnonzero(rng.random(n_users) < 0.7)
        u = np.repeat(active, clicks_per_user_day)
        r = rng.random(len(u))
        # Inverse-CDF draws, in chunks so memory stays [chunk, n_items].
        draw = np.concatenate(
            [(cum[u[c : c + 4096]] < r[c : c + 4096, None]).sum(1) for c in range(0, len(u), 4096)] or [np.zeros(0, int)]
        ).clip(max=n_items - 1)
        clicks[d] = (u, draw)

    # History: per user, the most recent training clicks (newest first).
    hist_rows: list[list[int]] = [[] for _ in range(n_users)]
    for d in train_days:
        u, i = clicks[d]
        for uu, ii in zip(u.tolist(), i.tolist(), strict=True):
            hist_rows[uu].insert(0, ii + 1)
    hist = [np.array(h[:history_length], dtype=np.int64) for h in hist_rows]

    # train_examples
    tu = np.concatenate([clicks[d][0] for d in train_days])
    ti = np.concatenate([clicks[d][1] for d in train_days])
    tday = np.concatenate([np.full(len(clicks[d][0]), dt.date.fromisoformat(d)) for d in train_days])
    order = rng.permutation(len(tu))
    tu, ti, tday = tu[order], ti[order], tday[order]
    # "Cut by the ranker" negatives: random catalogue items (the fixture has no ranking funnel).
    hard = list(rng.integers(1, n_items + 1, size=(len(tu), hard_per_row)))
    train = pa.table(
        {
            "user_idx": pa.array(user_idx[tu], pa.int64()),
            "item_idx": pa.array(item_idx[ti], pa.int64()),
            "weight": pa.array(np.ones(len(tu), np.float32)),
            "event_ds": pa.array(tday, pa.date32()),
            "label_liked": pa.array((rng.random(len(tu)) < 0.3).astype(np.float32)),
            "hard_neg_idx": _lists(hard),
            "u_hist": _lists([hist[u] for u in tu]),
            "u_cat_age_band": pa.array(age[tu], pa.int64()),
            "u_cat_region": pa.array(region[tu], pa.int64()),
            "u_num_activity": pa.array(activity[tu], pa.float32()),
            "i_cat_category": pa.array(category[ti], pa.int64()),
            "i_cat_subcategory": pa.array(sub[ti], pa.int64()),
            "i_num_quality": pa.array(quality[ti], pa.float32()),
        }
    )
    _write(layout, "train_examples", ds, train, shards=shards)

    # eval_examples: users clicking on the eval day
    eu, ei = clicks[eval_day]
    users = np.unique(eu)
    targets = [np.unique(ei[eu == u]) + 1 for u in users]
    seen: list[set[int]] = [set() for _ in range(n_users)]
    for d in train_days:
        for uu, ii in zip(*clicks[d], strict=True):
            seen[uu].add(int(ii) + 1)
    evt = pa.table(
        {
            "user_idx": pa.array(user_idx[users], pa.int64()),
            "user_id": pa.array([f"u{u}" for u in users]),
            "target_idx": _lists(targets),
            "exclude_idx": _lists([np.array(sorted(seen[u]), dtype=np.int64) for u in users]),
            "u_hist": _lists([hist[u] for u in users]),
            "u_cat_age_band": pa.array(age[users], pa.int64()),
            "u_cat_region": pa.array(region[users], pa.int64()),
            "u_num_activity": pa.array(activity[users], pa.float32()),
        }
    )
    _write(layout, "eval_examples", ds, evt)
    _write(
        layout,
        "user_features",
        ds,
        pa.table(
            {
                "user_idx": pa.array(user_idx, pa.int64()),
                "user_id": pa.array([f"u{u}" for u in range(n_users)]),
                "u_hist": _lists(hist),
                "u_cat_age_band": pa.array(age, pa.int64()),
                "u_cat_region": pa.array(region, pa.int64()),
                "u_num_activity": pa.array(activity, pa.float32()),
            }
        ),
    )
    _write(
        layout,
        "item_catalogue",
        ds,
        pa.table(
            {
                "item_idx": pa.array(item_idx, pa.int64()),
                "item_id": pa.array([f"i{i}" for i in range(n_items)]),
                "active": pa.array(np.ones(n_items, bool)),
                "i_cat_category": pa.array(category, pa.int64()),
                "i_cat_subcategory": pa.array(sub, pa.int64()),
                "i_num_quality": pa.array(quality, pa.float32()),
            }
        ),
    )
    counts = np.bincount(ti, minlength=n_items).astype(np.int64)
    w = (counts + 1.0) ** 0.75
    from training.samplers import AliasSampler  # reuses the Vose builder (the ETL writes its own)

    alias = AliasSampler.from_probs(item_idx, w)
    _write(
        layout,
        "item_sampling",
        ds,
        pa.table(
            {
                "item_idx": pa.array(item_idx, pa.int64()),
                "item_id": pa.array([f"i{i}" for i in range(n_items)]),
                "clicks": pa.array(counts),
                "clicks_resampled": pa.array(counts),
                "neg_prob": pa.array(w / w.sum()),
                "alias_prob": pa.array(alias.alias_prob.numpy()),
                "alias_idx": pa.array(alias.alias_idx.numpy()),
                "inbatch_prob": pa.array(counts / counts.sum()),
            }
        ),
    )
    vocab_rows = [("user_id", f"u{u}", u + 1) for u in range(n_users)] + [("item_id", f"i{i}", i + 1) for i in range(n_items)]
    vocab_rows += [("user.region", f"r{r}", r) for r in range(1, n_region + 1)]
    vocab_rows += [("user.age_band", f"a{r}", r) for r in range(1, n_age + 1)]
    vocab_rows += [("item.category", f"c{r}", r) for r in range(1, n_cat + 1)]
    vocab_rows += [("item.subcategory", f"s{r}", r) for r in range(1, n_sub + 1)]
    vocab = pa.table(
        {
            "vocab": [r[0] for r in vocab_rows],
            "value": [r[1] for r in vocab_rows],
            "id": pa.array([r[2] for r in vocab_rows], pa.int64()),
            "first_ds": pa.array([dt.date.fromisoformat(days[0])] * len(vocab_rows), pa.date32()),
        }
    )
    _write(layout, "vocabulary", ds, vocab)
    for d in train_days:
        u, i = clicks[d]
        _write(
            layout,
            "click_positives",
            d,
            pa.table({"user_id": [f"u{x}" for x in u], "item_id": [f"i{x}" for x in i], "weight": np.ones(len(u))}),
        )
    return {"train_rows": int(train.num_rows), "eval_users": int(len(users)), "items": n_items, "users": n_users}
