"""The one place a SparkSession is built, from :class:`core.config.SparkConfig`.

``master`` comes from config (default ``local[*]``), so the same jobs run on a cluster by
setting ``[spark] master = "spark://host:7077"`` (or ``TWOTOWER_SPARK_MASTER``).

Progress is decided here, once per process, when the session is built: Spark's console
progress bar (``spark.ui.showConsoleProgress``) is on when stderr is a terminal
(:func:`console_progress`) and off in Airflow task logs and CI, where it would print one
carriage-return line per refresh; ``[spark] conf`` can force either way. The data-quality
gates read the same decision back from the session (:func:`progress_enabled`) for GE's bars.
"""

from __future__ import annotations

import sys
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from core.config import SparkConfig

# Settings every job relies on; config [spark].conf may add to or override them.
BASE_CONF = {
    # A rerun of day D replaces D's partition only (the default "static" deletes them all).
    "spark.sql.sources.partitionOverwriteMode": "dynamic",
    "spark.sql.session.timeZone": "UTC",
    "spark.driver.extraJavaOptions": "-Duser.timezone=UTC",
    "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
    "spark.ui.enabled": "false",
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.adaptive.coalescePartitions.enabled": "true",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.parquet.compression.codec": "zstd",
    # Spark's default 10 MB. 64 MB made the hard-negative join broadcast a table that did not
    # fit a 4 GB driver on a medium 7-day window (bench/bench_pipeline.py); AQE still turns
    # joins into broadcasts at runtime when the measured side is small.
    "spark.sql.autoBroadcastJoinThreshold": str(10 * 1024 * 1024),
    # A join may reuse its children's hash partitioning on a subset of its keys. The hard
    # negatives partition everything by a user hash once and anti-join on (user hash, pair
    # hash) inside those partitions (etl.hard_negatives); with the default (true) Spark
    # shuffles both sides again by both keys, and then once more for the windows.
    "spark.sql.requireAllClusterKeysForCoPartition": "false",
    # AQE turns a sort-merge join into a shuffled hash join (no sort of either side) when every
    # shuffle partition of its build side is at most this size: a hash table per partition
    # that is known to fit, decided on measured sizes. Larger partitions keep the sort-merge
    # join, which spills to disk instead of failing. Must not be below
    # spark.sql.adaptive.advisoryPartitionSizeInBytes (64 MB) to take effect.
    "spark.sql.adaptive.maxShuffledHashJoinLocalMapThreshold": str(64 * 1024 * 1024),
}


_HADOOP = "spark.hadoop."
_PROGRESS = "spark.ui.showConsoleProgress"


def console_progress(stream: IO | None = None) -> bool:
    """Whether progress bars should be drawn: ``stream`` (default stderr) is a terminal.

    False for a pipe, a file, Airflow's task-log capture, pytest's capture or a closed stream.
    """
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or closed
        return False


def progress_enabled(spark: SparkSession) -> bool:
    """The session's progress decision (``spark.ui.showConsoleProgress``, set by :func:`spark_session`)."""
    try:
        value = spark.sparkContext.getConf().get(_PROGRESS, "false")
    except (AttributeError, NotImplementedError):  # Spark Connect: no SparkContext, no console bar
        return False
    return str(value).strip().lower() == "true"


def shuffle_partitions(spark: SparkSession) -> int:
    """The session's ``spark.sql.shuffle.partitions``: the count an explicit repartition by key
    uses, so that it lines up with the shuffles Spark inserts itself."""
    return int(spark.conf.get("spark.sql.shuffle.partitions"))


def spark_session(
    cfg: SparkConfig,
    app_name: str | None = None,
    storage_conf: dict[str, str] | None = None,
    progress: bool | None = None,
) -> SparkSession:
    """Get or create the process's SparkSession for this config.

    Args:
        storage_conf: ``spark.hadoop.*`` settings of the store the data lives in
            (``storage.stores.ObjectStore.spark_conf``); ``[spark] conf`` overrides them.
        progress: Spark's console progress bar (and GE's bars in the gates); None decides
            with :func:`console_progress` (on when stderr is a terminal). ``[spark] conf``
            ``spark.ui.showConsoleProgress`` overrides it.
    """
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master(cfg.master)
        .appName(app_name or cfg.app_name)
        .config("spark.driver.memory", cfg.driver_memory)
        .config("spark.sql.shuffle.partitions", str(cfg.shuffle_partitions))
    )
    storage_conf = {**(storage_conf or {}), **{k: v for k, v in cfg.conf.items() if k.startswith(_HADOOP)}}
    progress = console_progress() if progress is None else progress
    base = {**BASE_CONF, _PROGRESS: "true" if progress else "false"}
    for key, value in {**base, **storage_conf, **cfg.conf}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    # A session that already existed (e.g. built by Airflow's Spark provider) did not see the
    # builder's spark.hadoop.* keys; session-level Hadoop settings reach DataFrame reads/writes.
    for key, value in storage_conf.items():
        spark.conf.set(key[len(_HADOOP) :], value)
    return spark
