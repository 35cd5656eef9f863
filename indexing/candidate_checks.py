"""Checks of the candidate the training stage exported, before it is indexed: every file
present, the embeddings shaped and finite, and the exported item tower reproducing them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.errors import PipelineError
from core.results.indexing import TowerCheck
from indexing.loaded_version import (
    ITEM_EMBEDDINGS_FILE,
    ITEM_IDS_FILE,
    ITEM_TOWER_FILE,
    MODEL_CONFIG_FILE,
    USER_TOWER_FILE,
)
from storage.layout import Layout

# Files the training stage writes into Layout.model_dir(ds) that a version cannot do without.
REQUIRED_MODEL_FILES = (
    USER_TOWER_FILE,
    ITEM_TOWER_FILE,
    MODEL_CONFIG_FILE,
    ITEM_EMBEDDINGS_FILE,
    ITEM_IDS_FILE,
    "eval_user_embeddings.npy",
    "metrics.json",
)
# Catalogue rows re-embedded with the exported item tower to check item_embeddings.npy.
TOWER_CHECK_ITEMS = 2048
TOWER_CHECK_TOLERANCE = 1e-3


class CandidateMissing(PipelineError):
    """The candidate model directory (or a file in it) or the staged version is missing."""


def missing_model_files(model_dir: Path) -> list[str]:
    """The :data:`REQUIRED_MODEL_FILES` absent from ``model_dir``."""
    return [f for f in REQUIRED_MODEL_FILES if not (model_dir / f).is_file()]


def read_item_ids(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["item_idx", "item_id"])
    return table.column("item_idx").to_numpy().astype(np.int64), np.asarray(table.column("item_id").to_pylist(), dtype=object)


def check_embeddings(emb: np.ndarray, item_idx: np.ndarray, queries: np.ndarray, mc: dict, model_dir: Path) -> None:
    where = f"candidate model {model_dir}"
    if emb.ndim != 2 or emb.dtype != np.float32:
        raise PipelineError(f"{where}: item_embeddings.npy is {emb.dtype} {emb.shape}, expected float32 [N, d]")
    if emb.shape[0] != item_idx.shape[0]:
        raise PipelineError(f"{where}: {emb.shape[0]} item embeddings but {item_idx.shape[0]} rows in item_ids.parquet")
    if emb.shape[0] == 0:
        raise PipelineError(f"{where}: the catalogue is empty (0 item embeddings); nothing to index")
    if "dim" in mc and int(mc["dim"]) != emb.shape[1]:
        raise PipelineError(f"{where}: embeddings have dimension {emb.shape[1]}, model_config.json says {mc['dim']}")
    bad = int((~np.isfinite(emb)).any(axis=1).sum())
    if bad:
        raise PipelineError(f"{where}: {bad:,} item embeddings contain NaN/inf; the model diverged, do not publish it")
    if queries.shape[0] and (queries.ndim != 2 or queries.shape[1] != emb.shape[1]):
        raise PipelineError(
            f"{where}: eval_user_embeddings.npy is {queries.shape}, expected [U, {emb.shape[1]}] "
            "(the held-out users measure ANN recall)"
        )
    if np.unique(item_idx).size != item_idx.size:
        raise PipelineError(f"{where}: item_ids.parquet has duplicate item_idx values")


def check_item_tower(layout: Layout, ds: str, model_dir: Path, mc: dict, item_idx: np.ndarray, emb: np.ndarray) -> TowerCheck:
    """Re-embed up to :data:`TOWER_CHECK_ITEMS` catalogue items with the exported item tower and
    compare with item_embeddings.npy: the index must hold what the served tower produces."""
    from contracts.outputs import ITEM_CAT_PREFIX, ITEM_NUM_PREFIX

    cat_path = layout.path_for("item_catalogue", ds)
    if not cat_path.is_dir():
        return TowerCheck(status="skipped", reason=f"no item_catalogue partition at {cat_path}")
    import pyarrow.parquet as pq
    import torch

    frame = pq.read_table(cat_path).to_pandas()
    rng = np.random.default_rng(0)
    sample = np.sort(rng.choice(item_idx, size=min(TOWER_CHECK_ITEMS, item_idx.size), replace=False))
    frame = frame[frame["item_idx"].isin(sample)].drop_duplicates("item_idx").sort_values("item_idx")
    if frame.empty:
        raise PipelineError(f"table item_catalogue, partition ds={ds}: none of the indexed items is in the catalogue")

    def col(name: str, prefix: str) -> str:
        if name in frame.columns:
            return name
        if prefix + name in frame.columns:
            return prefix + name
        raise PipelineError(f"table item_catalogue, partition ds={ds}, column {name}: listed in model_config.json but absent")

    cats = [col(c, ITEM_CAT_PREFIX) for c in mc.get("item_cat_columns", [])]
    nums = [col(c, ITEM_NUM_PREFIX) for c in mc.get("item_num_columns", [])]
    idx_t = torch.from_numpy(frame["item_idx"].to_numpy(dtype=np.int64))
    cat_t = torch.from_numpy(np.stack([frame[c].fillna(0).to_numpy(dtype=np.int64) for c in cats], 1) if cats else np.zeros((len(frame), 0), np.int64))
    num_t = torch.from_numpy(np.stack([frame[c].fillna(0.0).to_numpy(dtype=np.float32) for c in nums], 1) if nums else np.zeros((len(frame), 0), np.float32))
    tower = torch.jit.load(str(model_dir / ITEM_TOWER_FILE), map_location="cpu").eval()
    with torch.inference_mode():
        fresh = tower(idx_t, cat_t, num_t).float().numpy()
    rows = np.searchsorted(item_idx, frame["item_idx"].to_numpy()) if np.all(np.diff(item_idx) > 0) else None
    if rows is None:
        order = np.argsort(item_idx)
        rows = order[np.searchsorted(item_idx[order], frame["item_idx"].to_numpy())]
    diff = float(np.abs(fresh - emb[rows]).max())
    if diff > TOWER_CHECK_TOLERANCE:
        raise PipelineError(
            f"candidate model {model_dir}: item_tower.pt re-embeds {len(frame)} catalogue items up to {diff:.4f} "
            f"away from item_embeddings.npy (tolerance {TOWER_CHECK_TOLERANCE}); the exported tower and the "
            "embeddings disagree, so the index would not match serving. Retrain/re-export the day"
        )
    return TowerCheck(status="ok", items=int(len(frame)), max_abs_diff=diff)
