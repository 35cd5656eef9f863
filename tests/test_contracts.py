"""Contracts: the docs match the code; Arrow and Spark renderings agree; layout paths."""

from __future__ import annotations

import datetime as dt

import pytest

from contracts import schemas
from contracts.days import day_range, parse_ds
from storage.layout import Layout, atomic_dir
from tests.conftest import REPO
from twotower.contract_docs import render


def test_data_contract_doc_is_generated_from_code():
    committed = (REPO / "docs" / "data-contracts.md").read_text()
    assert committed == render(), "docs/data-contracts.md is stale: run `make docs`"


def test_optional_columns_can_be_left_out_of_the_arrow_schema():
    full = schemas.IMPRESSIONS.arrow_schema()
    base = schemas.IMPRESSIONS.arrow_schema(present=[])
    assert "liked" in full.names and "dwell_ms" in full.names
    assert base.names == ["request_id", "user_id", "item_id", "ts", "position", "clicked"]
    assert str(full.field("ts").type) == "timestamp[us, tz=UTC]"


@pytest.mark.spark
def test_spark_schema_round_trips_through_arrow(spark, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            "request_id": ["r1"],
            "user_id": ["u1"],
            "item_id": ["i1"],
            "ts": pa.array([dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC)], pa.timestamp("us", tz="UTC")),
            "position": pa.array([0], pa.int32()),
            "clicked": [True],
        },
        schema=schemas.IMPRESSIONS.arrow_schema(present=[]),
    )
    pq.write_table(table, tmp_path / "p.parquet")
    df = spark.read.parquet(str(tmp_path / "p.parquet"))
    expected = schemas.IMPRESSIONS.spark_schema(present=[])
    assert [(f.name, f.dataType) for f in df.schema] == [(f.name, f.dataType) for f in expected]
    assert df.collect()[0]["ts"] == dt.datetime(2026, 11, 1, 12)  # UTC session time zone


def test_users_table_follows_declared_features():
    t = schemas.users_table(["region"], ["activity"])
    assert t.names == ("user_id", "region", "activity")
    assert t.column("activity").type == "float64"
    with pytest.raises(KeyError, match="no column 'age'"):
        t.column("age")


def test_layout_paths_and_partitions(tmp_config):
    layout = Layout(tmp_config.paths)
    p = layout.path_for("impressions", "2026-11-02")
    assert p == tmp_config.paths.data_root / "raw" / "impressions" / "ds=2026-11-02"
    assert layout.path_for("train_examples", dt.date(2026, 11, 2)).parent.name == "train_examples"
    with pytest.raises(KeyError, match="unknown dataset 'impresions'"):
        layout.path_for("impresions", "2026-11-02")
    with pytest.raises(ValueError, match="invalid day '2026-13-01'"):
        layout.path_for("impressions", "2026-13-01")
    p.mkdir(parents=True)
    (p.parent / ".tmp-ds=2026-11-03-abc").mkdir()
    assert layout.partitions("impressions") == ["2026-11-02"]


def test_day_range_is_inclusive_and_oldest_first():
    assert day_range("2026-11-02", 3) == ["2026-10-31", "2026-11-01", "2026-11-02"]
    assert parse_ds("2026-11-02") == dt.date(2026, 11, 2)


def test_atomic_dir_replaces_and_leaves_old_on_failure(tmp_path):
    final = tmp_path / "out"
    with atomic_dir(final) as d:
        (d / "a.txt").write_text("one")
    with pytest.raises(RuntimeError), atomic_dir(final) as d:
        (d / "a.txt").write_text("half")
        raise RuntimeError("crash mid-write")
    assert (final / "a.txt").read_text() == "one"
    with atomic_dir(final) as d:
        (d / "b.txt").write_text("two")
    assert sorted(p.name for p in final.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temp or trash left
