"""Export: TorchScript towers (loadable with ``torch.jit.load``, no training code needed), the
state dict (``torch.load(..., weights_only=True)``), model_config.json, catalogue and eval-user
embeddings, the loss curve, metrics.json. Everything is written into a directory the caller
makes atomic. Also the model directory's layout: its files and the kept candidate.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from storage.layout import atomic_write_text
from training.data import Catalogue, EvalSet
from training.embed import embed_items, embed_users
from training.towers import TwoTowerModel

FILES = (
    "user_tower.pt",
    "item_tower.pt",
    "model_state.pt",
    "model_config.json",
    "item_embeddings.npy",
    "item_ids.parquet",
    "eval_user_embeddings.npy",
    "eval_user_ids.parquet",
    "metrics.json",
    "loss_curve.png",
    "train_stats.json",
)

CANDIDATE_DIR = "candidate"
CANDIDATE_FILES = ("user_tower.pt", "item_tower.pt", "model_state.pt", "model_config.json")


def gate_model_dir(model_dir: Path) -> Path:
    """The model the gate evaluates: the candidate trained through D-1. After the continued
    training on D it is kept in ``<model_dir>/candidate/`` (not part of the published version),
    so re-evaluating the day never scores weights that have seen its held-out clicks."""
    cand = Path(model_dir) / CANDIDATE_DIR
    return cand if (cand / "user_tower.pt").is_file() else Path(model_dir)


def write_metrics(model_dir: Path, metrics: dict[str, Any]) -> None:
    atomic_write_text(Path(model_dir) / "metrics.json", json.dumps(metrics, indent=2, sort_keys=True, default=float))


def script_towers(model: TwoTowerModel) -> tuple[torch.jit.ScriptModule, torch.jit.ScriptModule]:
    """CPU, eval-mode TorchScript copies of both towers (serving signature = ``forward``)."""
    cpu = copy.deepcopy(model).cpu().eval()
    return torch.jit.script(cpu.user), torch.jit.script(cpu.item)


def export_model(model: TwoTowerModel, out: Path, catalogue: Catalogue, ev: EvalSet | None) -> dict[str, int]:
    """Write towers, state, config and embeddings into ``out``; returns counts."""
    out = Path(out)
    user, item = script_towers(model)
    user.save(str(out / "user_tower.pt"))
    item.save(str(out / "item_tower.pt"))
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save(state, out / "model_state.pt")
    (out / "model_config.json").write_text(model.spec.to_json())
    # Embed with the exported scripts themselves: what is indexed is exactly what serving computes.
    rows = np.flatnonzero(catalogue.active)
    item_emb = embed_items(item, catalogue, rows)
    np.save(out / "item_embeddings.npy", item_emb)
    pq.write_table(
        pa.table({"item_idx": pa.array(catalogue.item_idx[rows], pa.int64()), "item_id": pa.array(catalogue.item_id[rows], pa.string())}),
        out / "item_ids.parquet",
    )
    n_users = 0
    if ev is not None:
        user_emb = embed_users(user, ev)
        n_users = len(user_emb)
        np.save(out / "eval_user_embeddings.npy", user_emb.reshape(n_users, -1) if n_users else np.zeros((0, model.spec.dim), np.float32))
        pq.write_table(
            pa.table({"user_idx": pa.array(ev.user_idx.numpy(), pa.int64()), "user_id": pa.array(ev.user_id, pa.string())}),
            out / "eval_user_ids.parquet",
        )
    return {"items_embedded": int(len(rows)), "eval_users_embedded": n_users}


def plot_loss_curve(losses: list[float], epochs: int, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    x = np.linspace(0, epochs, num=len(losses)) if losses else []
    ax.plot(x, losses, marker=".")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
