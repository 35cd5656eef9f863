"""The write side of the versions store: the publish lock, the atomic directory swap, crash
recovery, the ``LATEST`` switch and retention.

Layout under ``Layout.model_root`` (``<artifact_root>/two_tower/``)::

    LATEST                    one line: the name of the served version (replaced with os.replace)
    <ds>/                     a published version (manifest.json + the files it checksums)
    _staging/<ds>/            built by build_index_for_day, consumed by publish_day
    _rejected/<ds>-<n>/       candidates the quality gate refused (manifest status "rejected")
    .tmp-* .old-* .replaced-* transaction leftovers of a crashed publish; cleaned by recover()
    .lock                     flock held while publishing, rolling back or pruning

What is published (the read side) is :mod:`core.published`.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from core.published import is_version_name, list_versions, read_latest
from storage.layout import Layout, atomic_write_text

log = logging.getLogger(__name__)

STAGING = "_staging"
REJECTED = "_rejected"
_TRANSIENT_PREFIXES = (".tmp-", ".old-", ".replaced-")


def write_latest(layout: Layout, version: str) -> None:
    """Point ``LATEST`` at ``version``: temp file + fsync + ``os.replace`` (atomic on POSIX)."""
    if not is_version_name(version):
        raise ValueError(f"not a version name: {version!r}")
    atomic_write_text(layout.latest_pointer, version + "\n")
    _fsync_dir(layout.model_root)


def list_rejected(layout: Layout) -> list[str]:
    """Rejected candidates (``<ds>-<n>``), oldest first."""
    root = layout.model_root / REJECTED
    if not root.is_dir():
        return []
    return sorted((p.name for p in root.iterdir() if p.is_dir()), key=_rejected_key)


def _rejected_key(name: str) -> tuple[str, int]:
    ds, _, n = name.rpartition("-")
    return (ds, int(n)) if n.isdigit() else (name, 0)


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
