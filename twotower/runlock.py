"""One run of a day at a time: a per-day lock taken by every pipeline step that writes day D.

The lock is an advisory ``fcntl.flock`` on ``<data_root>/.locks/ds=D.lock``. The kernel
releases it when the holder exits, however it exits (a killed run never leaves a stale
lock); the file itself stays and names the last holder (host, pid, step, start time), which
is what the error shows. A process that already holds day D's lock may take it again (the
steps of ``twotower run`` nest inside the run's own lock).

Scope: one machine, or machines sharing ``data_root`` over a file system with working
``flock`` (local disks; NFSv4 maps it to byte-range locks). With ``[paths] remote`` the data
root is each machine's working copy, so the lock keeps runs apart on one machine only;
across machines, Airflow's one-active-run-per-DAG (``max_active_runs=1`` and the
``wait_for_previous_day`` sensor) is what keeps two runs of a day apart
(docs/operations.md, "One run of a day at a time").
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from contracts.layout import Layout, ds_str
from twotower.config import Config
from twotower.errors import PipelineError

# Locks this process holds: lock file -> (open file, depth).
_held: dict[Path, tuple[object, int]] = {}
_guard = threading.Lock()


class RunInProgress(PipelineError):
    """Another process is running a step of the same day."""


def lock_path(cfg: Config, ds: str) -> Path:
    """The lock file of day ``ds``: ``<data_root>/.locks/ds=D.lock``."""
    return Path(Layout(cfg.paths).data_root) / ".locks" / f"ds={ds_str(ds)}.lock"


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "another process"
    return (
        f"pid {info.get('pid')} on host {info.get('host')} (step {info.get('step')}, "
        f"started {info.get('started')}: {info.get('command')})"
    )


@contextlib.contextmanager
def day_lock(cfg: Config, ds: str, step: str) -> Iterator[Path]:
    """Hold day ``ds``'s run lock for the duration of the block.

    Raises:
        RunInProgress: another process holds it; the message names that process, its host
            and the lock file. Nothing is changed then.
    """
    ds = ds_str(ds)
    path = lock_path(cfg, ds)
    with _guard:
        if path in _held:
            handle, depth = _held[path]
            _held[path] = (handle, depth + 1)
            reentrant = True
        else:
            reentrant = False
    if reentrant:
        try:
            yield path
        finally:
            with _guard:
                handle, depth = _held[path]
                _held[path] = (handle, depth - 1)
        return

    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+")  # noqa: SIM115 - held open for the lifetime of the lock
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise RunInProgress(
            f"another run of {ds} is in progress: {_holder(path)} holds the lock {path}; wait for it to "
            f"finish (nothing was changed), or stop that process first"
        ) from None
    except BaseException:
        handle.close()
        raise
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "step": step,
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))[:200],
    }
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps(info))
    handle.flush()
    with _guard:
        _held[path] = (handle, 1)
    try:
        yield path
    finally:
        with _guard:
            _, depth = _held[path]
            if depth > 1:
                _held[path] = (handle, depth - 1)
                release = False
            else:
                del _held[path]
                release = True
        if release:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            handle.close()
