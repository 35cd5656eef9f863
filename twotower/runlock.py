"""One run of a day at a time: a per-day lock taken by every pipeline step that writes day D.

A *run* is one owner: one ``twotower run`` process, or one Airflow DAG run (its tasks are
separate processes, some in parallel: the ETL stages). Steps of the same owner share day D's
lock; a step of any other owner stops at once with :class:`RunInProgress`.

Mechanics, in ``<data_root>/.locks/``: ``ds=D.lock`` is held with ``fcntl.flock`` in shared
mode by every step of the current owner, and ``ds=D.owner`` names that owner (first holder's
pid, host, step, start time, command). A step first takes the short exclusive ``ds=D.guard``
lock, then either gets ``ds=D.lock`` exclusively (nobody holds it: it becomes the owner,
downgrades to shared and writes the owner file) or, if it is held, joins only when the owner
file names its own owner. The kernel releases a holder's lock when it exits, however it exits,
so a killed run never leaves a stale lock; the files stay (safe to delete when nothing runs).

Scope: one machine, or machines sharing ``data_root`` over a file system with working
``flock`` (local disks; NFSv4 maps it to byte-range locks). With ``[paths] remote`` the data
root is each machine's working copy, so the lock keeps runs apart on one machine only
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
from collections.abc import Iterator
from pathlib import Path

from contracts.days import ds_str
from core.config import Config
from core.errors import PipelineError
from storage.layout import Layout


class RunInProgress(PipelineError):
    """Another run (process or Airflow DAG run) is running a step of the same day."""


def lock_path(cfg: Config, ds: str) -> Path:
    """The lock file of day ``ds``: ``<data_root>/.locks/ds=D.lock``."""
    return Path(Layout(cfg.paths).data_root) / ".locks" / f"ds={ds_str(ds)}.lock"


def current_owner() -> str:
    """Who this process runs for: its Airflow DAG run (the task runner exports
    ``AIRFLOW_CTX_DAG_ID``/``AIRFLOW_CTX_DAG_RUN_ID``), else the process itself."""
    dag, run = os.environ.get("AIRFLOW_CTX_DAG_ID"), os.environ.get("AIRFLOW_CTX_DAG_RUN_ID")
    if dag and run:
        return f"airflow {dag}/{run}"
    return f"process {os.getpid()}@{socket.gethostname()}"


def _describe(info: dict) -> str:
    if not info:
        return "another process"
    who = f"pid {info.get('pid')} on host {info.get('host')}"
    if str(info.get("owner", "")).startswith("airflow "):
        who = f"{info['owner']} ({who})"
    return f"{who} (step {info.get('step')}, started {info.get('started')}: {info.get('command')})"


def _read_owner(path: Path) -> dict:
    try:
        return json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}


@contextlib.contextmanager
def day_lock(cfg: Config, ds: str, step: str) -> Iterator[Path]:
    """Hold day ``ds``'s run lock (shared with the steps of the same run) for the block.

    Raises:
        RunInProgress: another run holds it; the message names that run (process, host,
            step, command) and the lock file. Nothing is changed then.
    """
    ds = ds_str(ds)
    path = lock_path(cfg, ds)
    owner_file = path.with_suffix(".owner")
    path.parent.mkdir(parents=True, exist_ok=True)
    me = current_owner()
    handle = open(path, "a")  # noqa: SIM115 - held open for the lifetime of the lock
    try:
        with open(path.with_suffix(".guard"), "a") as guard:
            fcntl.flock(guard.fileno(), fcntl.LOCK_EX)
            try:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:  # held: join only our own run
                    info = _read_owner(owner_file)
                    if info.get("owner") != me:
                        raise RunInProgress(
                            f"another run of {ds} is in progress: {_describe(info)} holds the lock {path}; wait "
                            f"for it to finish (nothing was changed), or stop that process first"
                        ) from None
                    fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
                else:  # nobody holds it: this run becomes its owner
                    info = {
                        "owner": me,
                        "pid": os.getpid(),
                        "host": socket.gethostname(),
                        "step": step,
                        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])[:200],
                    }
                    owner_file.write_text(json.dumps(info))
                    fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
            finally:
                fcntl.flock(guard.fileno(), fcntl.LOCK_UN)
    except BaseException:
        handle.close()
        raise
    try:
        yield path
    finally:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        handle.close()
