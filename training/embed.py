"""Embeddings from exported towers: the catalogue's items and the evaluation users, in batches.

The export (training.export) indexes what these return and the evaluation scores them, so both
see exactly what serving computes from the TorchScript towers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from training.data import Catalogue, EvalSet
from training.towers import ModelSpec

EMBED_BATCH = 16_384


def load_exported(model_dir: Path) -> tuple[torch.jit.ScriptModule, torch.jit.ScriptModule, ModelSpec]:
    """(user tower, item tower, spec) of an exported model directory: TorchScript, no pickles."""
    model_dir = Path(model_dir)
    user = torch.jit.load(str(model_dir / "user_tower.pt"), map_location="cpu")
    item = torch.jit.load(str(model_dir / "item_tower.pt"), map_location="cpu")
    return user.eval(), item.eval(), ModelSpec.from_json((model_dir / "model_config.json").read_text())


@torch.no_grad()
def embed_items(item_tower, catalogue: Catalogue, rows: np.ndarray) -> np.ndarray:
    """float32 [len(rows), d] embeddings of catalogue rows (in that order)."""
    idx = torch.from_numpy(catalogue.item_idx[rows])
    out = []
    for s in range(0, len(idx), EMBED_BATCH):
        part = idx[s : s + EMBED_BATCH]
        cat, num = catalogue.features(part)
        out.append(item_tower(part, cat, num))
    return torch.cat(out).numpy().astype(np.float32) if out else np.zeros((0, 0), np.float32)


@torch.no_grad()
def embed_users(user_tower, ev: EvalSet) -> np.ndarray:
    """float32 [U, d] embeddings of the eval users (eval-set row order)."""
    out = []
    for s in range(0, len(ev.user_idx), EMBED_BATCH):
        sl = slice(s, s + EMBED_BATCH)
        out.append(user_tower(ev.user_idx[sl], ev.user_cat[sl], ev.user_num[sl], ev.hist[sl]))
    return torch.cat(out).numpy().astype(np.float32) if out else np.zeros((0, 0), np.float32)
