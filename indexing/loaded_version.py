"""A version directory loaded after every file matched its manifest sha256, and the names of
the files a version holds.

Loading never unpickles: JSON manifest, ``numpy.load(allow_pickle=False)``, Parquet,
``faiss.read_index``, ``torch.jit.load``, and only after every file's sha256 matched.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from indexing.checksums import TamperedArtifact, verify_checksums
from indexing.manifest import read_manifest

INDEX_FILE = "index.faiss"
ITEM_IDS_FILE = "item_ids.parquet"
ITEM_EMBEDDINGS_FILE = "item_embeddings.npy"
USER_TOWER_FILE = "user_tower.pt"
# With the popularity prior on (manifest ``prior``): the user tower wrapped to emit the index's
# query [u/|u|, 1]/sqrt(2); serving uses it instead of user_tower.pt (docs/artifacts.md).
QUERY_TOWER_FILE = "query_tower.pt"
ITEM_TOWER_FILE = "item_tower.pt"
MODEL_CONFIG_FILE = "model_config.json"
USER_FEATURES_FILE = "user_features.parquet"


@dataclass
class LoadedVersion:
    """A version directory whose files all matched their manifest sha256.

    Heavy parts load on first use: ``index`` (faiss), ``user_tower`` (TorchScript),
    ``user_features`` (pandas), ``item_idx`` / ``item_id`` (the label -> item id mapping).
    """

    path: Path
    manifest: dict[str, Any]
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, path: Path, verify: bool = True) -> LoadedVersion:
        """Read the manifest and (by default) verify every file's sha256 before anything else."""
        path = Path(path)
        manifest = read_manifest(path)
        if verify:
            verify_checksums(path, manifest["files"])
        return cls(path=path, manifest=manifest)

    @property
    def name(self) -> str:
        return str(self.manifest["version"])

    @cached_property
    def model_config(self) -> dict[str, Any]:
        return json.loads((self.path / MODEL_CONFIG_FILE).read_text())

    @cached_property
    def index(self):
        import faiss

        from indexing.builder import IndexSpec, apply_search_params

        index = faiss.read_index(str(self.path / INDEX_FILE))
        apply_search_params(index, IndexSpec.from_dict(self.manifest["index"]))
        if index.ntotal != self.manifest["ntotal"] or index.d != self.manifest["dimension"]:
            raise TamperedArtifact(
                f"{self.path / INDEX_FILE}: holds {index.ntotal} x {index.d}, manifest says "
                f"{self.manifest['ntotal']} x {self.manifest['dimension']}"
            )
        return index

    @cached_property
    def _items(self) -> tuple[np.ndarray, np.ndarray]:
        import pyarrow.parquet as pq

        table = pq.read_table(self.path / ITEM_IDS_FILE, columns=["item_idx", "item_id"])
        idx = table.column("item_idx").to_numpy().astype(np.int64)
        ids = np.asarray(table.column("item_id").to_pylist(), dtype=object)
        order = np.argsort(idx, kind="stable")
        return idx[order], ids[order]

    def item_ids_for(self, labels: np.ndarray) -> np.ndarray:
        """Map index labels (``item_idx``) to ``item_id`` strings (None for -1 / unknown)."""
        idx, ids = self._items
        labels = np.asarray(labels, dtype=np.int64)
        pos = np.clip(np.searchsorted(idx, labels), 0, len(idx) - 1)
        found = (idx[pos] == labels) & (labels >= 0)
        out = np.where(found, ids[pos], None)
        return out

    @cached_property
    def user_tower(self):
        import torch

        # The query tower when the index carries the prior column: its output matches index.d.
        name = QUERY_TOWER_FILE if (self.path / QUERY_TOWER_FILE).is_file() else USER_TOWER_FILE
        tower = torch.jit.load(str(self.path / name), map_location="cpu")
        tower.eval()
        return tower

    @cached_property
    def user_features(self):
        """All rows of the version's user features (pandas); prefer :meth:`user_rows` for lookups."""
        import pyarrow.parquet as pq

        return pq.read_table(self.path / USER_FEATURES_FILE).to_pandas()

    def user_rows(self, user_ids: list[str]):
        """The user-feature rows of ``user_ids`` (pandas), read with a Parquet filter so a query
        does not materialise millions of users."""
        import pyarrow.parquet as pq

        if "user_features" in self.__dict__:
            frame = self.user_features
            return frame[frame["user_id"].isin(user_ids)]
        return pq.read_table(self.path / USER_FEATURES_FILE, filters=[("user_id", "in", list(user_ids))]).to_pandas()

    @cached_property
    def n_users(self) -> int:
        import pyarrow.parquet as pq

        return pq.ParquetFile(self.path / USER_FEATURES_FILE).metadata.num_rows

    def first_user_ids(self, n: int) -> list[str]:
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(self.path / USER_FEATURES_FILE)
        out: list[str] = []
        for batch in pf.iter_batches(batch_size=max(n, 1), columns=["user_id"]):
            out += batch.column("user_id").to_pylist()
            if len(out) >= n:
                break
        return out[:n]

    def item_embeddings(self) -> np.ndarray:
        return np.load(self.path / ITEM_EMBEDDINGS_FILE, allow_pickle=False)
