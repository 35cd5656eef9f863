"""One machine's working copy of the object store, for the steps that work on local files.

With ``[paths] remote`` set (:class:`storage.stores.ObjectStore`), Spark reads and writes the
store itself, but training, evaluation, indexing, publishing and reports use local files
(torch, FAISS and pyarrow on local disk). Around each such step :func:`working_copy`

1. **pulls** the folders and files the step reads: each becomes an exact mirror of the store
   (new or changed objects downloaded, local files the store no longer has deleted);
2. runs the step on local files, with the same code as on one machine;
3. **pushes** what the step wrote, only if it succeeded: new or changed files uploaded, data
   before ``manifest.json`` before ``LATEST``, then objects the step deleted locally removed.
   A failed step uploads nothing, so a reader of the store never sees its partial output.

A file is "unchanged" when the object's ETag is the one this machine last synced and the
local file's size and modification time are the ones it had then (kept in
``<root>/.sync/``, see :meth:`storage.stores.ObjectStore.sync_state_file`), so repeated steps
on one machine move only what changed, and no clock comparison between machines is needed.

With local storage (:class:`storage.stores.LocalStore`) every function here does nothing.
Concurrency: the store has no locks, so one writer per folder at a time is the deployment's
job (one DAG run per day; publish and rollback serialised by the ``max_active_runs`` of the
daily DAG). See ``docs/scaling.md``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

from storage.stores import ObjectStore, RemoteFile, store_for

log = logging.getLogger(__name__)

# Uploaded after everything else in a push, in this order: a reader that finds the marker
# finds everything it names.
_COMMIT_MARKERS = ("manifest.json", "LATEST")


def _local_files(path: Path) -> dict[str, os.stat_result]:
    """rel -> stat of the local files of a synced path (a file's own rel is '')."""
    if path.is_file():
        return {"": path.stat()}
    if not path.is_dir():
        return {}
    out = {}
    for p in path.rglob("*"):
        rel = p.relative_to(path).as_posix()
        # Dot names are this machine's own (locks, transaction and download temp files).
        if p.is_file() and not any(part.startswith(".") for part in rel.split("/")):
            out[rel] = p.stat()
    return out


def _remote_files(store: ObjectStore, path: Path) -> dict[str, RemoteFile]:
    """rel -> object under a synced path: the file itself ('' ) or the folder's objects."""
    single = store.stat_file(path)
    if single is not None:
        return {"": single}
    return {f.rel: f for f in store.list_files(path)}


def _target(path: Path, rel: str) -> Path:
    return path / rel if rel else path


class _State:
    """What each local file of a synced path was last synced from: rel -> [size, mtime_ns, etag]."""

    def __init__(self, store: ObjectStore, path: Path) -> None:
        self.file = store.sync_state_file(path)
        try:
            self.entries: dict[str, list] = json.loads(self.file.read_text())
        except (OSError, ValueError):
            self.entries = {}

    def in_sync(self, rel: str, stat: os.stat_result | None, remote: RemoteFile | None) -> bool:
        entry = self.entries.get(rel)
        return (
            entry is not None and stat is not None and remote is not None
            and entry == [stat.st_size, stat.st_mtime_ns, remote.etag]
        )

    def record(self, path: Path, rel: str, etag: str) -> None:
        stat = _target(path, rel).stat()
        self.entries[rel] = [stat.st_size, stat.st_mtime_ns, etag]

    def save(self, keep: set[str]) -> None:
        self.entries = {rel: e for rel, e in self.entries.items() if rel in keep}
        self.file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.file.with_name(self.file.name + ".tmp")
        tmp.write_text(json.dumps(self.entries, sort_keys=True))
        os.replace(tmp, self.file)


def _remove_local(path: Path, rel: str) -> None:
    target = _target(path, rel)
    if target.is_dir():
        shutil.rmtree(target)
    elif target.exists():
        target.unlink()


def _each(paths_cfg, paths: Iterable[Path], one, counts: tuple[str, str], verb: str) -> dict[str, int]:
    """Run ``one(store, path)`` for each path on an object store (nothing on local storage) and
    add up the counts it returns."""
    store = store_for(paths_cfg)
    moved = dict.fromkeys(counts, 0)
    if not isinstance(store, ObjectStore):
        return moved
    for path in paths:
        for name, n in one(store, Path(path)).items():
            moved[name] += n
    if any(moved.values()):
        log.info("%s %s: %s", verb, paths_cfg.remote, moved)
    return moved


def pull(paths_cfg, paths: Iterable[Path]) -> dict[str, int]:
    """Make each local path an exact copy of the store's (removed when the store has none)."""
    return _each(paths_cfg, paths, _pull_one, ("downloaded", "deleted"), "pulled from")


def push(paths_cfg, paths: Iterable[Path]) -> dict[str, int]:
    """Make the store's copy of each path equal the local one (removed when there is none)."""
    return _each(paths_cfg, paths, _push_one, ("uploaded", "deleted"), "pushed to")


def _pull_one(store: ObjectStore, path: Path) -> dict[str, int]:
    remote = _remote_files(store, path)
    local = _local_files(path)
    deleted = 0
    if not remote or ("" in remote) != ("" in local):
        # Gone from the store, or a file became a folder (or the reverse).
        _remove_local(path, "")
        deleted += len(local)
        local = {}
    state = _State(store, path)
    stale = [rel for rel in local if rel not in remote]
    for rel in stale:
        _remove_local(path, rel)
    todo = [rel for rel, obj in remote.items() if not state.in_sync(rel, local.get(rel), obj)]
    if "" in todo:
        store.download(path.parent, [path.name])
    else:
        store.download(path, todo)
    for rel in todo:
        state.record(path, rel, remote[rel].etag)
    state.save(set(remote))
    return {"downloaded": len(todo), "deleted": deleted + len(stale)}


def _upload_order(rel: str) -> int:
    name = rel.rsplit("/", 1)[-1]
    return _COMMIT_MARKERS.index(name) + 1 if name in _COMMIT_MARKERS else 0


def _push_one(store: ObjectStore, path: Path) -> dict[str, int]:
    remote = _remote_files(store, path)
    local = _local_files(path)
    deleted = 0
    if ("" in remote) != ("" in local) and remote:
        store.remove_dir(path)  # gone from this machine, or a file became a folder (or the reverse)
        deleted += len(remote)
        remote = {}
    state = _State(store, path)
    todo = [rel for rel, st in local.items() if not state.in_sync(rel, st, remote.get(rel))]
    # Data first, then each commit marker level on its own, so markers never precede data.
    for level in range(len(_COMMIT_MARKERS) + 1):
        batch = [rel for rel in todo if _upload_order(rel) == level]
        if batch == [""]:
            store.upload(path.parent, [path.name])
        elif batch:
            store.upload(path, batch)
    if todo:
        now = _remote_files(store, path)
        for rel in todo:
            state.record(path, rel, now[rel].etag)
    stale = [rel for rel in remote if rel not in local]
    store.delete_files(path, stale)
    state.save(set(local))
    return {"uploaded": len(todo), "deleted": deleted + len(stale)}


@contextlib.contextmanager
def working_copy(paths_cfg, pull_paths: Iterable[Path] = (), push_paths: Iterable[Path] = ()) -> Iterator[None]:
    """Pull ``pull_paths``, run the body, and push ``push_paths`` if the body succeeded."""
    pull(paths_cfg, list(pull_paths))
    yield
    push(paths_cfg, list(push_paths))


def pull_version(layout, version: str | None) -> list[Path]:
    """Pull one published version folder (``None``: nothing published, nothing pulled).

    Which version ``LATEST`` names is the versions store's business
    (``indexing.artifacts.pull_published`` pulls the pointer, reads it and calls this).
    Returns the pulled version folder (empty list when there is none).
    """
    if not version:
        return []
    folder = layout.version_dir(version)
    pull(layout.paths, [folder])
    return [folder]
