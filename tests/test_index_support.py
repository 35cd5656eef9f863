"""Test support for the indexing tests (no tests here): a small but real candidate model
directory as the training stage exports it (TorchScript towers with the brief's forward
signatures, embeddings, metrics), plus the day's user_features and item_catalogue partitions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch import nn

from core.config import Config
from storage.layout import Layout

DIM = 16
HIST = 5
N_USERS = 40
N_REGIONS = 4
N_CATS = 6
USER_CAT = ["u_cat_region", "u_cat_age_band"]
USER_NUM = ["u_num_activity"]
ITEM_CAT = ["i_cat_category", "i_cat_subcategory"]
ITEM_NUM = ["i_num_quality"]


class TinyUserTower(nn.Module):
    """forward(user_idx [B], user_cat [B, Cu], user_num [B, Nu], hist [B, H]) -> [B, d], L2-normalised."""

    def __init__(self, n_users: int, n_items: int, dim: int = DIM) -> None:
        super().__init__()
        self.n_users = n_users
        self.n_items = n_items
        self.n_cat = N_REGIONS + 1
        self.user = nn.Embedding(n_users, dim)
        self.cat = nn.Embedding(self.n_cat, dim)
        self.num = nn.Linear(len(USER_NUM), dim)
        self.hist = nn.Embedding(n_items, dim, padding_idx=0)

    def forward(self, user_idx: torch.Tensor, user_cat: torch.Tensor, user_num: torch.Tensor, hist: torch.Tensor) -> torch.Tensor:
        u = torch.where(user_idx < self.n_users, user_idx, torch.zeros_like(user_idx))
        c = torch.where(user_cat < self.n_cat, user_cat, torch.zeros_like(user_cat))
        h = torch.where(hist < self.n_items, hist, torch.zeros_like(hist))
        x = self.user(u) + self.cat(c).sum(1) + self.num(user_num) + self.hist(h).sum(1)
        return nn.functional.normalize(x, dim=1)


class TinyItemTower(nn.Module):
    """forward(item_idx [B], item_cat [B, Ci], item_num [B, Ni]) -> [B, d], L2-normalised."""

    def __init__(self, n_items: int, dim: int = DIM) -> None:
        super().__init__()
        self.n_items = n_items
        self.n_cat = N_CATS + 1
        self.item = nn.Embedding(n_items, dim)
        self.cat = nn.Embedding(self.n_cat, dim)
        self.num = nn.Linear(len(ITEM_NUM), dim)

    def forward(self, item_idx: torch.Tensor, item_cat: torch.Tensor, item_num: torch.Tensor) -> torch.Tensor:
        i = torch.where(item_idx < self.n_items, item_idx, torch.zeros_like(item_idx))
        c = torch.where(item_cat < self.n_cat, item_cat, torch.zeros_like(item_cat))
        return nn.functional.normalize(self.item(i) + self.cat(c).sum(1) + self.num(item_num), dim=1)


def user_frame(n_users: int = N_USERS, n_items: int = 300, seed: int = 0):
    rng = np.random.default_rng(seed)
    hist = [list(rng.integers(1, n_items + 1, size=rng.integers(0, HIST + 3))) for _ in range(n_users)]
    return pa.table(
        {
            "user_idx": pa.array(np.arange(1, n_users + 1), pa.int64()),
            "user_id": [f"U{i}" for i in range(1, n_users + 1)],
            "u_cat_region": pa.array(rng.integers(0, N_REGIONS + 1, n_users), pa.int64()),
            "u_cat_age_band": pa.array(rng.integers(0, N_REGIONS + 1, n_users), pa.int64()),
            "u_num_activity": pa.array(rng.normal(size=n_users).astype(np.float32), pa.float32()),
            "u_hist": pa.array(hist, pa.list_(pa.int64())),
        }
    )


def item_frame(n_items: int, seed: int = 0):
    rng = np.random.default_rng(seed + 1)
    idx = np.arange(1, n_items + 1) * 3  # item_idx need not be dense: labels must map through ids
    return pa.table(
        {
            "item_idx": pa.array(idx, pa.int64()),
            "item_id": [f"N{i}" for i in idx],
            "active": pa.array(np.ones(n_items, bool)),
            "i_cat_category": pa.array(rng.integers(0, N_CATS + 1, n_items), pa.int64()),
            "i_cat_subcategory": pa.array(rng.integers(0, N_CATS + 1, n_items), pa.int64()),
            "i_num_quality": pa.array(rng.normal(size=n_items).astype(np.float32), pa.float32()),
        }
    )


def make_candidate(cfg: Config, ds: str, *, n_items: int = 300, recall50: float = 0.30, seed: int = 0) -> Path:
    """Write Layout.model_dir(ds) + the day's user_features / item_catalogue partitions.

    Returns the model dir. The user tower and item embeddings are real (TorchScript, run here).
    """
    torch.manual_seed(seed)
    layout = Layout(cfg.paths)
    model_dir = layout.model_dir(ds)
    model_dir.mkdir(parents=True, exist_ok=True)
    n_table = 3 * n_items + 1
    users = user_frame(n_items=n_table - 1, seed=seed)
    items = item_frame(n_items, seed=seed)
    for name, table in (("user_features", users), ("item_catalogue", items)):
        part = layout.path_for(name, ds)
        part.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, part / "part-00000.parquet")

    user_tower = torch.jit.script(TinyUserTower(N_USERS + 1, n_table).eval())
    item_tower = torch.jit.script(TinyItemTower(n_table).eval())
    user_tower.save(str(model_dir / "user_tower.pt"))
    item_tower.save(str(model_dir / "item_tower.pt"))
    torch.save(TinyUserTower(N_USERS + 1, n_table).state_dict(), model_dir / "model_state.pt")
    with torch.no_grad():
        emb = item_tower(
            torch.tensor(items["item_idx"].to_numpy()),
            torch.tensor(np.stack([items[c].to_numpy() for c in ITEM_CAT], 1)),
            torch.tensor(np.stack([items[c].to_numpy() for c in ITEM_NUM], 1)),
        ).numpy()
    np.save(model_dir / "item_embeddings.npy", emb.astype(np.float32))
    pq.write_table(items.select(["item_idx", "item_id"]), model_dir / "item_ids.parquet")
    rng = np.random.default_rng(seed + 2)
    q = rng.normal(size=(25, DIM)).astype(np.float32)
    np.save(model_dir / "eval_user_embeddings.npy", q / np.linalg.norm(q, axis=1, keepdims=True))
    pq.write_table(users.select(["user_idx", "user_id"]).slice(0, 25), model_dir / "eval_user_ids.parquet")
    model_config = {
        "dim": DIM,
        "temperature": 0.05,
        "user_cat_columns": USER_CAT,
        "user_num_columns": USER_NUM,
        "item_cat_columns": ITEM_CAT,
        "item_num_columns": ITEM_NUM,
        "history_length": HIST,
        "ds": ds,
    }
    (model_dir / "model_config.json").write_text(json.dumps(model_config))
    (model_dir / "metrics.json").write_text(
        json.dumps(
            {
                "model": {"recall@10": recall50 / 2, "recall@50": recall50, "recall@100": recall50 * 1.3},
                "baselines": {"popularity_window": {"recall@50": 0.1}, "popularity_recent": {"recall@50": 0.12}},
                "oracle": None,
                "eval_users": 25,
            }
        )
    )
    return model_dir


def metrics_evaluator(ctx, version_dir):
    """Stands in for training.evaluate.evaluate_model_dir: the version's own recorded metrics
    (the tests control them through make_candidate's recall50)."""
    return json.loads((Path(version_dir) / "metrics.json").read_text())


def real_evaluator(ctx, version_dir):
    """The publish gate's evaluator as the pipeline wires it (training.evaluate.evaluate_model_dir)."""
    from twotower.step_io import gate_evaluator

    return gate_evaluator(ctx, version_dir)
