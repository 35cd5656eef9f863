"""Published versions: verified loading, listing, the ``LATEST`` pointer, rollback, retention.

Layout under ``Layout.model_root`` (``<artifact_root>/two_tower/``)::

    LATEST                    one line: the name of the served version (replaced with os.replace)
    <ds>/                     a published version (manifest.json + the files it checksums)
    _staging/<ds>/            built by build_index_for_day, consumed by publish_day
    _rejected/<ds>-<n>/       candidates the quality gate refused (manifest status "rejected")
    .tmp-* .old-* .replaced-* transaction leftovers of a crashed publish; cleaned by recover()
    .lock                     flock held while publishing, rolling back or pruning

Loading never unpickles: JSON manifest, ``numpy.load(allow_pickle=False)``, Parquet,
``faiss.read_index``, ``torch.jit.load``, and only after every file's sha256 matched.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from contracts.days import parse_ds
from core.errors import UserError
from indexing.checksums import TamperedArtifact, verify_checksums
from indexing.manifest import STATUS_PUBLISHED, read_manifest
from storage.layout import Layout, atomic_write_text

log = logging.getLogger(__name__)

STAGING = "_staging"
REJECTED = "_rejected"
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
_TRANSIENT_PREFIXES = (".tmp-", ".old-", ".replaced-")


class VersionNotFound(UserError):
    """No such published version (or nothing published yet)."""


def is_version_name(name: str) -> bool:
    """Published versions are named by their run day ``YYYY-MM-DD``."""
    try:
        return parse_ds(name).isoformat() == name
    except ValueError:
        return False


# -- the LATEST pointer ---------------------------------------------------------------------


def read_latest(layout: Layout) -> str | None:
    """Name of the version ``LATEST`` points at, or None before the first publish."""
    try:
        name = layout.latest_pointer.read_text().strip()
    except FileNotFoundError:
        return None
    if not is_version_name(name):
        raise TamperedArtifact(f"{layout.latest_pointer}: holds {name!r}, not a version name (YYYY-MM-DD)")
    return name


def pull_published(layout: Layout, version: str | None = None) -> list[Path]:
    """Pull ``LATEST`` and one published version (default: the one ``LATEST`` names) into the
    working copy: what a serving host or a warm start needs, without the rest of the model root.
    Returns the pulled version folder (empty list when nothing is published)."""
    from storage import sync

    sync.pull(layout.paths, [layout.latest_pointer])
    return sync.pull_version(layout, version if version is not None else read_latest(layout))


def write_latest(layout: Layout, version: str) -> None:
    """Point ``LATEST`` at ``version``: temp file + fsync + ``os.replace`` (atomic on POSIX)."""
    if not is_version_name(version):
        raise ValueError(f"not a version name: {version!r}")
    atomic_write_text(layout.latest_pointer, version + "\n")
    _fsync_dir(layout.model_root)


# -- listing --------------------------------------------------------------------------------


def list_versions(layout: Layout) -> list[str]:
    """Published version names, oldest first (directories named ``YYYY-MM-DD``)."""
    root = layout.model_root
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and is_version_name(p.name))


def list_rejected(layout: Layout) -> list[str]:
    """Rejected candidates (``<ds>-<n>``), oldest first."""
    root = layout.model_root / REJECTED
    if not root.is_dir():
        return []
    return sorted((p.name for p in root.iterdir() if p.is_dir()), key=_rejected_key)


def _rejected_key(name: str) -> tuple[str, int]:
    ds, _, n = name.rpartition("-")
    return (ds, int(n)) if n.isdigit() else (name, 0)


def resolve_version_dir(layout: Layout, version: str | None) -> Path:
    """Directory of ``version`` (``None`` = the one ``LATEST`` points at)."""
    if version is None:
        version = read_latest(layout)
        if version is None:
            raise VersionNotFound(
                f"nothing published yet under {layout.model_root} (no LATEST); run `twotower index --ds D`"
            )
    if is_version_name(version):
        path = layout.version_dir(version)
    elif (layout.model_root / REJECTED / version).is_dir():
        path = layout.model_root / REJECTED / version
    else:
        path = layout.version_dir(version)
    if not path.is_dir():
        known = ", ".join(list_versions(layout)) or "none"
        raise VersionNotFound(f"version {version!r} not found under {layout.model_root} (published: {known})")
    return path


def describe(layout: Layout, version_dir: Path) -> dict[str, Any]:
    """Summary row for ``artifacts list`` (manifest fields only; no checksum pass)."""
    m = read_manifest(version_dir)
    model = (m.get("metrics") or {}).get("model") or {}
    return {
        "version": m["version"],
        "ds": m["ds"],
        "status": m["status"],
        "latest": m["version"] == read_latest(layout) and version_dir.parent == layout.model_root,
        "created_at": m["created_at"],
        "index": m["index"]["factory"],
        "ntotal": m["ntotal"],
        "dimension": m["dimension"],
        "recall@50": model.get("recall@50"),
        "ann_recall": m["ann"].get("recall"),
        "reason": (m.get("gate") or {}).get("reason"),
        "path": str(version_dir),
    }


# -- a loaded, verified version -----------------------------------------------------------


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


def load_version(layout: Layout, version: str | None = None, verify: bool = True) -> LoadedVersion:
    """Load ``version`` (default: ``LATEST``) after verifying its checksums."""
    return LoadedVersion.load(resolve_version_dir(layout, version), verify=verify)


# -- transactions: lock, atomic directory swap, crash recovery --------------------------------


@contextlib.contextmanager
def publish_lock(layout: Layout) -> Iterator[None]:
    """Exclusive ``flock`` on ``<model_root>/.lock``: one publish/rollback/prune at a time."""
    layout.model_root.mkdir(parents=True, exist_ok=True)
    with open(layout.model_root / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _rename_exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux ``renameat2(RENAME_EXCHANGE)``); False if unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (22, 38, 95):  # EINVAL / ENOSYS / EOPNOTSUPP: filesystem or kernel lacks it
        return False
    raise OSError(err, f"renameat2({a}, {b}, RENAME_EXCHANGE) failed: {os.strerror(err)}")


def swap_into_place(src: Path, final: Path) -> None:
    """Make ``src`` appear at ``final``, replacing an existing ``final`` atomically.

    With ``renameat2(RENAME_EXCHANGE)`` the two directories trade places in one step, so a
    reader of ``final`` never sees it missing; the old content (now at ``src``) is deleted. On
    filesystems without it: rename ``final`` to ``.replaced-<name>-*``, then ``src`` to
    ``final``; a crash between the two is undone by :func:`recover`.
    """
    if not final.exists():
        os.rename(src, final)
    elif _rename_exchange(src, final):
        old = src.parent / f".old-{final.name}-{uuid.uuid4().hex[:8]}"
        os.rename(src, old)
        shutil.rmtree(old, ignore_errors=True)
    else:
        aside = final.parent / f".replaced-{final.name}-{uuid.uuid4().hex[:8]}"
        os.rename(final, aside)
        os.rename(src, final)
        shutil.rmtree(aside, ignore_errors=True)
    _fsync_dir(final.parent)


def recover(layout: Layout) -> list[str]:
    """Undo what a crashed publish left behind; returns what it did (for the step's stats).

    Restores a version moved aside (``.replaced-<v>-*``) whose replacement never arrived and
    deletes temporary (``.tmp-*``) and superseded (``.old-*``) directories. Call under
    :func:`publish_lock`.
    """
    root = layout.model_root
    done: list[str] = []
    if not root.is_dir():
        return done
    for p in sorted(root.iterdir()):
        if p.name.startswith(".replaced-") and p.is_dir():
            name = p.name[len(".replaced-") :].rsplit("-", 1)[0]
            target = root / name
            if not target.exists():
                os.rename(p, target)
                done.append(f"restored {name} from {p.name}")
                continue
        if p.name.startswith(_TRANSIENT_PREFIXES) and p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
            done.append(f"removed {p.name}")
    for sub in (STAGING, REJECTED):
        d = root / sub
        if d.is_dir():
            for p in d.iterdir():
                if p.name.startswith(_TRANSIENT_PREFIXES):
                    shutil.rmtree(p, ignore_errors=True)
                    done.append(f"removed {sub}/{p.name}")
    if done:
        log.warning("recovered from an interrupted publish under %s: %s", root, "; ".join(done))
    return done


def rollback(layout: Layout, version: str) -> dict[str, Any]:
    """Re-point ``LATEST`` at a published ``version`` after verifying all its checksums."""
    if not is_version_name(version):
        raise UserError(f"{version!r} is not a published version name (YYYY-MM-DD); see `twotower artifacts list`")
    with publish_lock(layout):
        recover(layout)
        loaded = load_version(layout, version, verify=True)
        if loaded.manifest["status"] != STATUS_PUBLISHED:
            raise UserError(f"version {version} has status {loaded.manifest['status']!r}; only published versions can be served")
        _ = loaded.index  # readable and consistent with the manifest
        previous = read_latest(layout)
        write_latest(layout, version)
    log.info("LATEST: %s -> %s", previous, version)
    return {"previous": previous, "latest": version}


def apply_retention(layout: Layout, keep: int) -> list[str]:
    """Delete all but the newest ``keep`` published versions, never ``LATEST``'s target, and all
    but the newest ``keep`` rejected candidates. Call under :func:`publish_lock`.

    Returns:
        The deleted entries (``<ds>`` or ``_rejected/<ds>-<n>``).
    """
    if keep < 1:
        raise ValueError(f"publish.retention must be >= 1, got {keep}")
    latest = read_latest(layout)
    versions = list_versions(layout)
    deleted: list[str] = []
    for name in versions[: max(0, len(versions) - keep)]:
        if name == latest:
            continue
        _remove_dir(layout.model_root, name)
        deleted.append(name)
    rejected = list_rejected(layout)
    for name in rejected[: max(0, len(rejected) - keep)]:
        _remove_dir(layout.model_root / REJECTED, name)
        deleted.append(f"{REJECTED}/{name}")
    return deleted


def _remove_dir(parent: Path, name: str) -> None:
    # Rename first so a crash mid-delete never leaves a half-deleted version under its name.
    doomed = parent / f".old-{name}-{uuid.uuid4().hex[:8]}"
    os.rename(parent / name, doomed)
    shutil.rmtree(doomed, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
