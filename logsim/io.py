"""All storage of the simulator: raw-table partitions (Parquet, via ``storage.layout``) and the
ground-truth files under ``Layout.truth_dir`` (layout described in :mod:`logsim.truth`)."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from storage.layout import atomic_write_text

WORLD_FILE = "world.json"
USERS_FILE = "users.npz"
ITEMS_DIR = "items"
# Snappy: fast to write and read; the raw tables are rewritten daily.
PARQUET_OPTIONS: dict[str, Any] = {"compression": "snappy", "row_group_size": 1_000_000}


def write_part(folder: Path, part: int, table: pa.Table) -> int:
    """Write one Parquet file ``part-NNNNN.parquet`` of a partition being built; returns its rows."""
    pq.write_table(table, Path(folder) / f"part-{part:05d}.parquet", **PARQUET_OPTIONS)
    return table.num_rows


# -- truth ---------------------------------------------------------------------------------


def _save_npz(path: Path, **arrays: np.ndarray) -> None:
    """Atomic np.savez (temp file + rename), so a reader never sees half a block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".tmp-{uuid.uuid4().hex[:8]}-{path.name}"
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_world(root: Path, meta: dict[str, Any]) -> None:
    """Write world.json, refusing to mix two different simulated worlds in one data root."""
    from core.errors import UserError

    path = Path(root) / WORLD_FILE
    if path.is_file():
        old = json.loads(path.read_text())
        if old.get("world_key") != meta["world_key"]:
            raise UserError(
                f"{path.parent} already holds the truth of a different simulated world "
                f"(preset {old.get('preset', {}).get('name')}, seed {old.get('seed')}); simulating preset "
                f"{meta['preset']['name']} seed {meta['seed']} into the same data root would mix two worlds. "
                "Use another data root (paths.data_root / TWOTOWER_DATA_ROOT) or delete the old one."
            )
    atomic_write_text(path, json.dumps(meta, indent=2, sort_keys=True, default=str))


def write_truth_users(root: Path, ids: np.ndarray, latent: np.ndarray) -> None:
    _save_npz(Path(root) / USERS_FILE, ids=ids.astype(str), latent=latent)


def write_truth_items(root: Path, day: str, ids: np.ndarray, latent: np.ndarray, pop: np.ndarray) -> None:
    _save_npz(Path(root) / ITEMS_DIR / f"created={day}.npz", ids=ids.astype(str), latent=latent, pop=pop)


def read_truth(root: Path) -> dict[str, Any] | None:
    """The truth files as arrays (keys of :class:`logsim.truth.Truth`), or None if absent."""
    root = Path(root)
    if not (root / WORLD_FILE).is_file():
        return None
    meta = json.loads((root / WORLD_FILE).read_text())
    with np.load(root / USERS_FILE, allow_pickle=False) as z:
        user_ids, user_latent = z["ids"], z["latent"]
    ids, latent, pop = [], [], []
    for block in sorted((root / ITEMS_DIR).glob("created=*.npz")):
        with np.load(block, allow_pickle=False) as z:
            ids.append(z["ids"])
            latent.append(z["latent"])
            pop.append(z["pop"])
    dim = user_latent.shape[1]
    return {
        "meta": meta,
        "user_ids": user_ids,
        "user_latent": user_latent,
        "item_ids": np.concatenate(ids) if ids else np.array([], dtype=str),
        "item_latent": np.concatenate(latent) if latent else np.zeros((0, dim), np.float32),
        "item_pop": np.concatenate(pop) if pop else np.zeros(0, np.float32),
    }
