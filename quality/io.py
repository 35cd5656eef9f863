"""All reading and writing of the quality package, through :class:`storage.layout.Layout`.

Reads raw partitions and ETL outputs as Spark DataFrames, trailing-day row counts from Parquet
footers (no Spark job), writes quarantine partitions (Spark, temp dir + rename) and the JSON
summaries (atomic). The gates and suite builders never read or write storage themselves.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
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


# Where Spark records a DataFrame's schema in the Parquet files it writes; reading a folder
# without a given schema, Spark takes it from one file's footer in a Spark job of its own.
SPARK_SCHEMA_KEY = b"org.apache.spark.sql.parquet.row.metadata"


@dataclass(frozen=True)
class Footers:
    """What the data files' Parquet footers of one partition say.

    Attributes:
        rows: total row count.
        spark_schema: the Spark schema (JSON text) every file recorded when Spark wrote it;
            None when a file has none (written by another tool) or the files disagree.
    """

    rows: int
    spark_schema: str | None


def _footer(store, folder: Path, rel: str):
    import pyarrow.parquet as pq

    if store.remote:
        return pq.read_metadata(f"{store.key(folder)}/{rel}", filesystem=store.fs)
    return pq.read_metadata(Path(folder) / rel)


def checked_footers(layout: Layout, table: str, ds: str) -> Footers | None:
    """Every data file's Parquet footer of a partition opened (cheap: no data read): its row
    count and the schema Spark recorded in the files; None if the partition is absent.

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
    schemas: set[bytes | None] = set()
    for rel in files:
        try:
            meta = _footer(store, folder, rel)
        except (OSError, ValueError) as exc:  # pyarrow.ArrowInvalid is a ValueError
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UnreadableFile(table, f"ds={ds}", f"{store.uri(folder)}/{rel}", reason) from exc
        total += meta.num_rows
        schemas.add((meta.metadata or {}).get(SPARK_SCHEMA_KEY))
    (recorded,) = schemas if len(schemas) == 1 else (None,)
    return Footers(total, recorded.decode() if recorded else None)


def checked_row_count(layout: Layout, table: str, ds: str) -> int | None:
    """Rows of a partition from its Parquet footers (:func:`checked_footers`); None if the
    partition is absent.

    Raises:
        UnreadableFile: a data file is not readable Parquet.
    """
    footers = checked_footers(layout, table, ds)
    return None if footers is None else footers.rows


def recorded_schema(footers: Iterable[Footers | None]):
    """The Spark schema (a ``StructType``, every field nullable as Spark reads files) that all
    the given partitions recorded alike, or None (then Spark infers it, from one file).

    Passing it to the reader gives the DataFrame Spark would infer, without the schema
    inference job each read of a Spark-written folder otherwise starts."""
    texts = {f.spark_schema if f is not None else None for f in footers}
    if len(texts) != 1 or None in texts:
        return None
    from pyspark.sql.types import StructType

    return StructType.fromJson(_nullable(json.loads(texts.pop())))


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """Spark's ``asNullable`` on a schema's JSON: what a file source does to the schema it reads."""
    kind = schema.get("type")
    if kind == "struct":
        for f in schema["fields"]:
            f["nullable"] = True
            if isinstance(f["type"], dict):
                _nullable(f["type"])
    elif kind == "array":
        schema["containsNull"] = True
        if isinstance(schema["elementType"], dict):
            _nullable(schema["elementType"])
    elif kind == "map":
        schema["valueContainsNull"] = True
        for k in ("keyType", "valueType"):
            if isinstance(schema[k], dict):
                _nullable(schema[k])
    return schema


def _reader(spark: SparkSession, footers: Iterable[Footers | None]):
    schema = recorded_schema(footers)
    return spark.read if schema is None else spark.read.schema(schema)


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
    footers = checked_footers(layout, table, ds)
    return _reader(spark, [footers]).parquet(layout.store.uri(folder))


def read_counted_partition(spark: SparkSession, layout: Layout, table: str, ds: str) -> tuple[int, DataFrame]:
    """A partition that has data files: its row count (every footer opened, as
    :func:`checked_row_count`) and the DataFrame with the schema stored in its files.

    Raises:
        UnreadableFile: a data file is not readable Parquet.
    """
    footers = checked_footers(layout, table, ds)
    rows = footers.rows if footers is not None else 0
    return rows, _reader(spark, [footers]).parquet(layout.store.uri(layout.path_for(table, ds)))


def previous_partition_day(layout: Layout, table: str, ds: str) -> str | None:
    """The latest day before ``ds`` that has a partition of ``table`` (None if none has)."""
    earlier = [d for d in layout.partitions(table) if d < ds]
    return earlier[-1] if earlier else None


def read_partitions(spark: SparkSession, layout: Layout, table: str, days: Sequence[str]) -> DataFrame | None:
    """The union of the given days' partitions that exist (None if none does); raises
    :class:`UnreadableFile` for a file that is not readable Parquet."""
    present = [d for d in days if layout.store.data_files(layout.path_for(table, d))]
    footers = [checked_footers(layout, table, d) for d in present]
    folders = [layout.store.uri(layout.path_for(table, d)) for d in present]
    if not folders:
        return None
    return _reader(spark, footers).parquet(*folders)


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
