"""Storage layout: the one place that maps (dataset, day) to a path, and atomic writes.

    <data_root>/raw/<table>/ds=YYYY-MM-DD/             raw inputs (contracts.schemas)
    <data_root>/etl/<dataset>/ds=YYYY-MM-DD/           ETL outputs
    <data_root>/quarantine/<table>/ds=YYYY-MM-DD/      rows set aside by data quality, with reason
    <data_root>/truth/                                 simulator ground truth (planted vectors)
    <data_root>/models/ds=YYYY-MM-DD/                  trained candidate model (before publishing)
    <reports_root>/ds=YYYY-MM-DD/                      run report, stage stats, data-quality docs
    <artifact_root>/two_tower/<version>/               published versions; LATEST points at one

Every writer goes through :func:`atomic_dir` (local files) or ``etl.io`` (Spark, dynamic
partition overwrite), so a rerun of a day replaces that day's output and a crash never
leaves a half-written partition where readers look.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from contracts.days import ds_str

if TYPE_CHECKING:
    from storage.stores import Store
from contracts.outputs import ETL_OUTPUTS
from contracts.schemas import RAW_TABLE_NAMES

RAW = "raw"
ETL = "etl"
QUARANTINE = "quarantine"


class Layout:
    """Paths for one configuration's roots (:class:`core.config.PathsConfig`)."""

    def __init__(self, paths) -> None:
        self.paths = paths
        self.data_root = Path(paths.data_root)
        self.artifact_root = Path(paths.artifact_root)
        self.reports_root = Path(paths.reports_root)

    @functools.cached_property
    def store(self) -> Store:
        """Where these paths really live (:func:`storage.stores.store_for`): what Spark reads
        and writes through, and what the Spark-facing code asks whether a partition exists."""
        from storage.stores import store_for

        return store_for(self.paths)

    # -- tables -------------------------------------------------------------------------
    def table_root(self, dataset: str) -> Path:
        """Root of a partitioned dataset (the folder holding ``ds=...`` partitions)."""
        if dataset in RAW_TABLE_NAMES:
            return self.data_root / RAW / dataset
        if dataset in ETL_OUTPUTS:
            return self.data_root / ETL / dataset
        raise KeyError(
            f"unknown dataset {dataset!r}: raw tables are {', '.join(RAW_TABLE_NAMES)}; "
            f"ETL outputs are {', '.join(ETL_OUTPUTS)}"
        )

    def path_for(self, dataset: str, ds: str | dt.date) -> Path:
        """The partition folder of ``dataset`` for day ``ds``."""
        return self.table_root(dataset) / f"ds={ds_str(ds)}"

    def quarantine(self, table: str, ds: str | dt.date) -> Path:
        return self.data_root / QUARANTINE / table / f"ds={ds_str(ds)}"

    def partitions(self, dataset: str) -> list[str]:
        """Days present for a dataset in the store, sorted (only complete partitions: no temp folders)."""
        return sorted(name[3:] for name in self.store.child_dirs(self.table_root(dataset)) if name.startswith("ds="))

    # -- simulator truth, models, reports, artifacts ----------------------------------
    @property
    def truth_dir(self) -> Path:
        return self.data_root / "truth"

    def model_dir(self, ds: str | dt.date) -> Path:
        """Candidate model trained for run day ``ds`` (towers, embeddings, metrics)."""
        return self.data_root / "models" / f"ds={ds_str(ds)}"

    def report_dir(self, ds: str | dt.date) -> Path:
        return self.reports_root / f"ds={ds_str(ds)}"

    def stage_stats(self, ds: str | dt.date, stage: str) -> Path:
        """JSON statistics a stage leaves for the run report."""
        return self.report_dir(ds) / "stats" / f"{stage}.json"

    def dq_dir(self, ds: str | dt.date) -> Path:
        """Data-quality JSON summaries and Data Docs for day ``ds``."""
        return self.report_dir(ds) / "data_quality"

    @property
    def model_root(self) -> Path:
        """Published versions of the two-tower model live here."""
        return self.artifact_root / "two_tower"

    def version_dir(self, version: str) -> Path:
        return self.model_root / version

    @property
    def latest_pointer(self) -> Path:
        return self.model_root / "LATEST"


# A producer that writes the whole live catalogue into a day's ``items`` partition says so with
# this (empty) file in the partition: items absent from it are retired that day. Without it the
# snapshot is partial (e.g. only the items shown that day) and items are carried forward.
COMPLETE_SNAPSHOT_MARKER = "_COMPLETE_SNAPSHOT"


# A per-day ETL output partition (``etl.io.PER_DAY_SOURCES``) holds this small JSON file: the
# fingerprint (data file names, sizes, modification stamps) of the raw partitions it was
# derived from. A later run recomputes the day when the raw partitions no longer match it.
# The leading underscore keeps it out of Spark's and pyarrow's reads of the partition.
SOURCE_MARKER = "_SOURCE.json"


def mark_complete_snapshot(folder: Path) -> None:
    """Declare the items partition being written in ``folder`` a complete catalogue snapshot."""
    (Path(folder) / COMPLETE_SNAPSHOT_MARKER).write_text("every live item of the day is in this snapshot\n")


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Write a directory atomically: yields a temp dir beside ``final``; on success the old
    ``final`` (if any) is swapped out and the temp dir renamed into place.

    Readers see either the old complete directory or the new complete one. On an exception the
    temp dir is removed and ``final`` is untouched.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        _fsync_tree(tmp)
        replace_dir(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def replace_dir(src: Path, final: Path) -> None:
    """Move ``src`` to ``final``, replacing an existing ``final`` with two renames."""
    trash = None
    if final.exists():
        trash = final.parent / f".trash-{final.name}-{uuid.uuid4().hex[:8]}"
        os.rename(final, trash)
    os.rename(src, final)
    if trash is not None:
        shutil.rmtree(trash, ignore_errors=True)


def remove_dir(path: Path) -> None:
    """Remove a directory if it exists: renamed aside first (readers stop seeing it at once),
    then deleted."""
    path = Path(path)
    if path.is_dir():
        trash = path.parent / f".trash-{path.name}-{uuid.uuid4().hex[:8]}"
        os.rename(path, trash)
        shutil.rmtree(trash, ignore_errors=True)


def atomic_write_text(path: Path, text: str) -> None:
    """Write a small file atomically (temp file + fsync + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".tmp-{path.name}-{uuid.uuid4().hex[:8]}"
    with open(tmp, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _fsync_tree(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
