"""All reading and writing of the quality package, through :class:`contracts.layout.Layout`.

Reads raw partitions and ETL outputs as Spark DataFrames, trailing-day row counts from Parquet
footers (no Spark job), writes quarantine partitions (Spark, temp dir + rename) and the JSON
summaries (atomic).
"""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from contracts.layout import Layout, atomic_write_text, ds_str

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)


def partition_exists(layout: Layout, table: str, ds: str) -> bool:
    return layout.store.is_dir(layout.path_for(table, ds))


def metadata_row_count(layout: Layout, table: str, ds: str) -> int | None:
    """Rows of a partition from its Parquet footers (cheap: no data read); None if absent."""
    return layout.store.row_count(layout.path_for(table, ds))


def read_partition(spark: SparkSession, layout: Layout, table: str, ds: str) -> DataFrame | None:
    """The partition as a DataFrame with the schema stored in its files (None if absent or
    without data files).

    The schema is read from the files, not imposed, so a renamed column or a wrong type is
    seen by the contract check instead of failing the read.
    """
    folder = layout.path_for(table, ds)
    if not layout.store.data_files(folder):
        return None
    return spark.read.parquet(layout.store.uri(folder))


def read_partitions(spark: SparkSession, layout: Layout, table: str, days: list[str]) -> DataFrame | None:
    """The union of the given days' partitions that exist (None if none does)."""
    folders = [layout.store.uri(layout.path_for(table, d)) for d in days if layout.store.data_files(layout.path_for(table, d))]
    if not folders:
        return None
    return spark.read.parquet(*folders)


def write_quarantine(layout: Layout, table: str, ds: str, rows: DataFrame | None) -> Path | None:
    """Replace the table's quarantine partition for ``ds`` with ``rows`` (or remove it if None).

    A rerun of a day therefore leaves exactly the rows that day's run set aside.
    """
    final = layout.quarantine(table, ds)
    store = layout.store
    if rows is None:
        store.remove_dir(final)
        return None
    tmp = final.parent / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
    try:
        rows.coalesce(1).write.mode("overwrite").parquet(store.uri(tmp))
        store.commit_dir(tmp, final)
    except BaseException:
        store.remove_dir(tmp)
        raise
    return final


def summary_path(layout: Layout, ds: str, stage: str) -> Path:
    """JSON summary of one validation stage (``validate_raw`` / ``validate_outputs``) of a day."""
    return layout.dq_dir(ds) / f"{stage}.json"


def docs_root(layout: Layout, ds: str, stage: str) -> Path:
    """Folder holding the Great Expectations project (and Data Docs) of one stage of a day."""
    return layout.dq_dir(ds) / stage


def data_docs_index(root: Path) -> Path:
    return root / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"


def write_summary(layout: Layout, ds: str, stage: str, summary: dict[str, Any]) -> Path:
    path = summary_path(layout, ds, stage)
    atomic_write_text(path, json.dumps(summary, indent=2, sort_keys=True, default=str))
    return path


def read_summary(layout: Layout, ds: str, stage: str) -> dict[str, Any] | None:
    path = summary_path(layout, ds_str(ds), stage)
    if not path.is_file():
        return None
    return json.loads(path.read_text())
