"""All reading and writing of the quality package, through :class:`storage.layout.Layout`.

Reads raw partitions and ETL outputs as Spark DataFrames, trailing-day row counts from Parquet
footers (no Spark job), writes quarantine partitions (Spark, temp dir + rename) and the JSON
summaries (atomic). The gates and suite builders never read or write storage themselves.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from contracts.days import ds_str
from core.errors import DataError, data_error_message
from storage.layout import Layout, atomic_write_text

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)


class UnreadableFile(DataError):
    """A data file of a partition cannot be opened as Parquet (zero bytes, truncated, not Parquet).

    Attributes:
        table, partition: where it is (``partition`` is ``ds=D``).
        file: the file's URI in the store.
        reason: what pyarrow said.
    """

    def __init__(self, table: str, partition: str, file: str, reason: str) -> None:
        self.table, self.partition, self.file, self.reason = table, partition, file, reason
        super().__init__(
            data_error_message(
                table,
                partition,
                f"unreadable Parquet file {file} ({reason})",
                fix="the file is empty or truncated (an interrupted upload?): re-export the day's partition "
                "(or remove the file if the rest of the partition is complete), then rerun",
            )
        )


def _footer_rows(store, folder: Path, rel: str) -> int:
    import pyarrow.parquet as pq

    if store.remote:
        return pq.read_metadata(f"{store.key(folder)}/{rel}", filesystem=store.fs).num_rows
    return pq.read_metadata(Path(folder) / rel).num_rows


def checked_row_count(layout: Layout, table: str, ds: str) -> int | None:
    """Rows of a partition from its Parquet footers, opening every data file's footer
    (cheap: no data read); None if the partition is absent.

    The one guarded reader of raw and intermediate partitions: a zero-byte, truncated or
    non-Parquet data file raises :class:`UnreadableFile` naming table, partition and file
    (instead of pyarrow's ``ArrowInvalid`` from deep inside a step).

    Raises:
        UnreadableFile: the first data file (in name order) whose footer cannot be read.
    """
    ds = ds_str(ds)
    store = layout.store
    folder = layout.path_for(table, ds)
    files = store.data_files(folder)
    if not files and not store.is_dir(folder):
        return None
    total = 0
    for rel in files:
        try:
            total += _footer_rows(store, folder, rel)
        except (OSError, ValueError) as exc:  # pyarrow.ArrowInvalid is a ValueError
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UnreadableFile(table, f"ds={ds}", f"{store.uri(folder)}/{rel}", reason) from exc
    return total


def read_partition(spark: SparkSession, layout: Layout, table: str, ds: str) -> DataFrame | None:
    """The partition as a DataFrame with the schema stored in its files (None if absent or
    without data files).

    The schema is read from the files, not imposed, so a renamed column or a wrong type is
    seen by the contract check instead of failing the read. Every file's footer is opened
    first (:func:`checked_row_count`): an unreadable file raises :class:`UnreadableFile`.
    """
    folder = layout.path_for(table, ds)
    if not layout.store.data_files(folder):
        return None
    checked_row_count(layout, table, ds)
    return spark.read.parquet(layout.store.uri(folder))


def read_counted_partition(spark: SparkSession, layout: Layout, table: str, ds: str) -> tuple[int, DataFrame]:
    """A partition that has data files: its row count (every footer opened, as
    :func:`checked_row_count`) and the DataFrame with the schema stored in its files.

    Raises:
        UnreadableFile: a data file is not readable Parquet.
    """
    rows = checked_row_count(layout, table, ds) or 0
    return rows, spark.read.parquet(layout.store.uri(layout.path_for(table, ds)))


def previous_partition_day(layout: Layout, table: str, ds: str) -> str | None:
    """The latest day before ``ds`` that has a partition of ``table`` (None if none has)."""
    earlier = [d for d in layout.partitions(table) if d < ds]
    return earlier[-1] if earlier else None


def read_partitions(spark: SparkSession, layout: Layout, table: str, days: Sequence[str]) -> DataFrame | None:
    """The union of the given days' partitions that exist (None if none does); raises
    :class:`UnreadableFile` for a file that is not readable Parquet."""
    present = [d for d in days if layout.store.data_files(layout.path_for(table, d))]
    for d in present:
        checked_row_count(layout, table, d)
    folders = [layout.store.uri(layout.path_for(table, d)) for d in present]
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
