"""The guarded reader's schemas: a Spark-written partition is read with the schema its files
recorded (no schema-inference job), giving the DataFrame Spark's own inference gives; files
written by another tool, or disagreeing, leave the schema to Spark.

The expected schemas are written out by hand, and compared with what a plain
``spark.read.parquet`` infers (Spark itself, not the code under test).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import types as T

from etl import io as etl_io
from quality import io
from storage.layout import Layout
from tests.conftest import make_config

pytestmark = pytest.mark.spark

DS = "2026-11-03"
GROUP = "test-quality-io"

# What Spark writes: a required long, an array whose elements may not be null, a nullable string.
WRITTEN = T.StructType(
    [
        T.StructField("user_idx", T.LongType(), nullable=False),
        T.StructField("u_hist", T.ArrayType(T.LongType(), containsNull=False), nullable=False),
        T.StructField("user_id", T.StringType(), nullable=True),
    ]
)
# What a file source reads back: every field and element nullable (Spark's asNullable).
READ = T.StructType(
    [
        T.StructField("user_idx", T.LongType(), True),
        T.StructField("u_hist", T.ArrayType(T.LongType(), True), True),
        T.StructField("user_id", T.StringType(), True),
    ]
)


@pytest.fixture
def layout(tmp_path):
    return Layout(make_config(tmp_path).paths)


def _jobs(spark) -> int:
    return len(spark.sparkContext.statusTracker().getJobIdsForGroup(GROUP))


def _write_spark(spark, layout, table: str, ds: str, rows, schema=WRITTEN) -> str:
    folder = str(layout.path_for(table, ds))
    spark.createDataFrame(rows, schema).coalesce(1).write.mode("overwrite").parquet(folder)
    return folder


def test_spark_written_partition_reads_with_its_recorded_schema_and_no_inference_job(spark, layout):
    folder = _write_spark(spark, layout, "user_features", DS, [(0, [1, 2], "u0"), (1, [], None)])
    spark.sparkContext.setJobGroup(GROUP, "guarded reader")
    try:
        before = _jobs(spark)
        rows, df = io.read_counted_partition(spark, layout, "user_features", DS)
        assert _jobs(spark) == before  # the schema came from the footers already opened
        assert rows == 2
        assert df.schema == READ
        assert spark.read.parquet(folder).schema == READ  # Spark's own inference agrees
        assert sorted(df.collect()) == [(0, [1, 2], "u0"), (1, [], None)]
    finally:
        spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)


def test_etl_reads_one_and_several_days_with_the_recorded_schema(spark, tmp_path):
    from core.context import RunContext

    cfg = make_config(tmp_path)
    ctx = RunContext.build(cfg, DS)
    _write_spark(spark, ctx.layout, "user_features", "2026-11-02", [(5, [7], "u5"), (6, [], "u6")])
    _write_spark(spark, ctx.layout, "user_features", DS, [(0, [1], "u0")])
    one = etl_io.read_output(spark, ctx, "user_features", DS)
    assert one.schema == READ
    both, missing = etl_io.read_output_days(spark, ctx, "user_features", ["2026-11-01", "2026-11-02", DS])
    assert missing == ["2026-11-01"]
    assert both.schema == T.StructType([*READ.fields, T.StructField("event_ds", T.DateType(), True)])
    assert sorted((r.user_idx, str(r.event_ds)) for r in both.collect()) == [(0, DS), (5, "2026-11-02"), (6, "2026-11-02")]
    # Whole-partition row counts from the footers: 2 + 1 rows, the absent day counts 0.
    assert etl_io.output_rows(ctx, "user_features", ["2026-11-01", "2026-11-02", DS]) == 3


def test_files_of_another_writer_or_disagreeing_files_leave_the_schema_to_spark(spark, layout):
    # pyarrow records no Spark schema: Spark infers it (int32 stays IntegerType).
    folder = layout.path_for("impressions", DS)
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"user_id": ["a", "b"], "position": pa.array([1, 2], pa.int32())}), folder / "part-0.parquet")
    footers = io.checked_footers(layout, "impressions", DS)
    assert footers == io.Footers(rows=2, spark_schema=None)
    assert io.recorded_schema([footers]) is None
    df = io.read_partition(spark, layout, "impressions", DS)
    assert df.schema == T.StructType(
        [T.StructField("user_id", T.StringType(), True), T.StructField("position", T.IntegerType(), True)]
    )
    # Two Spark-written days with different columns: no common recorded schema.
    _write_spark(spark, layout, "vocabulary", DS, [(0, [1], "x")])
    other = T.StructType([T.StructField("user_idx", T.LongType(), False)])
    _write_spark(spark, layout, "vocabulary", "2026-11-02", [(1,)], schema=other)
    days = [io.checked_footers(layout, "vocabulary", d) for d in ("2026-11-02", DS)]
    assert all(f.spark_schema for f in days)
    assert io.recorded_schema(days) is None
    assert io.recorded_schema([days[1], None]) is None  # an absent partition: nothing recorded
