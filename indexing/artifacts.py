"""Published versions, the public face of the versions store: listing, resolving and loading
a version (checksums verified), describing it, rollback, and the names the other indexing
modules define (``LATEST`` and the day list from :mod:`core.published`, the write side from
:mod:`indexing.version_store`, the version's files from :mod:`indexing.loaded_version`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from core.errors import UserError
from core.published import TamperedArtifact, is_version_name, list_versions, read_latest
from indexing.loaded_version import (
    INDEX_FILE,
    ITEM_EMBEDDINGS_FILE,
    ITEM_IDS_FILE,
    ITEM_TOWER_FILE,
    MODEL_CONFIG_FILE,
    QUERY_TOWER_FILE,
    USER_FEATURES_FILE,
    USER_TOWER_FILE,
    LoadedVersion,
)
from indexing.manifest import STATUS_PUBLISHED, read_manifest
from indexing.version_store import (
    REJECTED,
    STAGING,
    apply_retention,
    list_rejected,
    publish_lock,
    recover,
    swap_into_place,
    write_latest,
)
from storage.layout import Layout

__all__ = [
    "INDEX_FILE", "ITEM_EMBEDDINGS_FILE", "ITEM_IDS_FILE", "ITEM_TOWER_FILE", "MODEL_CONFIG_FILE",
    "QUERY_TOWER_FILE", "REJECTED", "STAGING", "USER_FEATURES_FILE", "USER_TOWER_FILE", "LoadedVersion",
    "TamperedArtifact", "VersionNotFound", "apply_retention", "describe", "is_version_name", "list_rejected",
    "list_versions", "load_version", "publish_lock", "pull_published", "read_latest", "recover",
    "resolve_version_dir", "rollback", "swap_into_place", "write_latest",
]  # fmt: skip

log = logging.getLogger(__name__)


class VersionNotFound(UserError):
    """No such published version (or nothing published yet)."""


def pull_published(layout: Layout, version: str | None = None) -> list[Path]:
    """Pull ``LATEST`` and one published version (default: the one ``LATEST`` names) into the
    working copy: what a serving host or a warm start needs, without the rest of the model root.
    Returns the pulled version folder (empty list when nothing is published)."""
    from storage import sync

    sync.pull(layout.paths, [layout.latest_pointer])
    return sync.pull_version(layout, version if version is not None else read_latest(layout))


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


def load_version(layout: Layout, version: str | None = None, verify: bool = True) -> LoadedVersion:
    """Load ``version`` (default: ``LATEST``) after verifying its checksums."""
    return LoadedVersion.load(resolve_version_dir(layout, version), verify=verify)


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
