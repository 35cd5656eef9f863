"""storage: the two stores behave alike, and a working copy follows an object store exactly.

The object store is a real S3 API (moto's server on loopback, ``s3_endpoint``), reached
through the same pyarrow S3 client production uses. Expected contents are written out by
hand in each test.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.config import ConfigError
from core.config_load import config_from_dict
from storage import sync
from storage.layout import Layout
from storage.stores import LocalStore, ObjectStore
from tests.conftest import make_config, new_bucket

_bucket_ids = itertools.count()


def remote_config(root: Path, endpoint: str, bucket: str):
    """A config whose working copy is under ``root`` and whose store is ``s3://bucket/tt``."""
    return make_config(root, paths={"remote": f"s3://{bucket}/tt", "s3_endpoint": endpoint})


@pytest.fixture
def bucket(s3_endpoint) -> str:
    return new_bucket(s3_endpoint, f"tt-{next(_bucket_ids)}")


@pytest.fixture(params=["local", "s3"])
def layout(request, tmp_path) -> Layout:
    """A Layout on local files or on the object store (same roots, same calls)."""
    if request.param == "local":
        return Layout(make_config(tmp_path).paths)
    endpoint = request.getfixturevalue("s3_endpoint")
    name = new_bucket(endpoint, f"tt-{next(_bucket_ids)}")
    return Layout(remote_config(tmp_path, endpoint, name).paths)


def _put(layout: Layout, folder: Path, files: dict[str, bytes]) -> None:
    """Write files into the store under ``folder`` (for the object store: via a local temp folder)."""
    src = folder if not layout.store.remote else folder.parent / f"src-{folder.name}"
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    if layout.store.remote:
        layout.store.upload(src, list(files), dest=folder)


def _parquet_bytes(n: int) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"x": list(range(n))}), sink)
    return sink.getvalue().to_pybytes()


def test_store_for_picks_the_store_from_config(tmp_path, s3_endpoint):
    assert isinstance(Layout(make_config(tmp_path).paths).store, LocalStore)
    store = Layout(remote_config(tmp_path, s3_endpoint, "some-bucket").paths).store
    assert isinstance(store, ObjectStore)
    assert store.spark_conf()["spark.hadoop.fs.s3a.endpoint"] == s3_endpoint
    assert store.spark_conf()["spark.hadoop.fs.s3a.path.style.access"] == "true"


def test_object_keys_mirror_the_three_roots(tmp_path, s3_endpoint):
    layout = Layout(remote_config(tmp_path, s3_endpoint, "my-bucket").paths)
    store = layout.store
    assert store.key(layout.path_for("impressions", "2026-11-02")) == "my-bucket/tt/data/raw/impressions/ds=2026-11-02"
    assert store.uri(layout.report_dir("2026-11-02")) == "s3a://my-bucket/tt/reports/ds=2026-11-02"
    assert store.key(layout.latest_pointer) == "my-bucket/tt/artifacts/two_tower/LATEST"
    with pytest.raises(ValueError, match="under none of the roots"):
        store.key(tmp_path / "elsewhere" / "x")


def test_remote_must_be_an_s3_location(tmp_path):
    with pytest.raises(ConfigError, match="paths.remote"):
        config_from_dict({"paths": {"remote": str(tmp_path / "not-a-bucket")}})
    with pytest.raises(ConfigError, match="paths.remote"):
        config_from_dict({"paths": {"remote": "gs://bucket/x"}})


def test_partitions_queries_and_commit_behave_alike(layout):
    store = layout.store
    part = layout.path_for("item_catalogue", "2026-11-02")
    # Two data files (3 + 4 rows) and the files Spark leaves beside them, which are not data.
    _put(layout, part, {
        "part-0.parquet": _parquet_bytes(3),
        "sub/part-1.parquet": _parquet_bytes(4),
        "_SUCCESS": b"",
        ".part-0.parquet.crc": b"x",
        "_temporary/part-9.parquet": _parquet_bytes(1),
    })
    _put(layout, layout.path_for("item_catalogue", "2026-11-01"), {"part-0.parquet": _parquet_bytes(1)})
    assert store.is_dir(part) and not store.is_file(part)
    assert store.is_file(part / "part-0.parquet")
    assert store.data_files(part) == ["part-0.parquet", "sub/part-1.parquet"]
    assert store.row_count(part) == 7
    assert layout.partitions("item_catalogue") == ["2026-11-01", "2026-11-02"]
    missing = layout.path_for("item_catalogue", "2026-10-01")
    assert not store.is_dir(missing) and store.data_files(missing) == [] and store.row_count(missing) is None

    # Commit a staged folder over the partition: the old files are gone, the new ones there.
    staged = layout.table_root("item_catalogue") / ".staging-x"
    _put(layout, staged, {"part-5.parquet": _parquet_bytes(2)})
    store.commit_dir(staged, part)
    assert store.data_files(part) == ["part-5.parquet"]
    assert store.row_count(part) == 2
    assert not store.is_dir(staged)
    assert layout.partitions("item_catalogue") == ["2026-11-01", "2026-11-02"]

    store.remove_dir(part)
    assert not store.is_dir(part)
    assert layout.partitions("item_catalogue") == ["2026-11-01"]
    store.remove_dir(part)  # removing what is not there is not an error


def test_push_then_pull_on_another_machine_copies_exactly(tmp_path, s3_endpoint, bucket):
    a = remote_config(tmp_path / "a", s3_endpoint, bucket).paths
    b = remote_config(tmp_path / "b", s3_endpoint, bucket).paths
    la, lb = Layout(a), Layout(b)
    md_a, md_b = la.model_dir("2026-11-02"), lb.model_dir("2026-11-02")
    files = {"model_state.pt": b"weights-1", "metrics.json": b'{"r": 1}', "eval/users.npy": b"u" * 1000}
    for rel, data in files.items():
        (md_a / rel).parent.mkdir(parents=True, exist_ok=True)
        (md_a / rel).write_bytes(data)
    (md_a / ".lock").write_text("")  # a machine-local file: never uploaded

    assert sync.push(a, [md_a]) == {"uploaded": 3, "deleted": 0}
    assert sync.push(a, [md_a]) == {"uploaded": 0, "deleted": 0}  # nothing changed
    assert sync.pull(b, [md_b]) == {"downloaded": 3, "deleted": 0}
    assert {p.relative_to(md_b).as_posix(): p.read_bytes() for p in md_b.rglob("*") if p.is_file()} == files
    assert sync.pull(b, [md_b]) == {"downloaded": 0, "deleted": 0}

    # Machine a retrains: same size, new bytes; drops a file. b follows exactly.
    (md_a / "model_state.pt").write_bytes(b"weights-2")
    (md_a / "eval" / "users.npy").unlink()
    assert sync.push(a, [md_a]) == {"uploaded": 1, "deleted": 1}
    (md_b / "stale.tmp").write_text("left from a crashed step")
    assert sync.pull(b, [md_b]) == {"downloaded": 1, "deleted": 2}
    assert (md_b / "model_state.pt").read_bytes() == b"weights-2"
    assert sorted(p.relative_to(md_b).as_posix() for p in md_b.rglob("*") if p.is_file()) == ["metrics.json", "model_state.pt"]

    # Gone from the store: gone from the working copy.
    la.store.remove_dir(md_a)
    sync.pull(b, [md_b])
    assert not md_b.exists()


def test_push_uploads_data_then_manifest_then_latest(tmp_path, s3_endpoint, bucket, monkeypatch):
    paths = remote_config(tmp_path, s3_endpoint, bucket).paths
    layout = Layout(paths)
    root = layout.model_root
    for rel in ("2026-11-02/index.faiss", "2026-11-02/manifest.json", "2026-11-02/user_tower.pt", "LATEST"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    order: list[str] = []
    real_upload = ObjectStore.upload

    def spy(self, local, rels, dest=None):
        rels = list(rels)
        order.extend(rels)
        return real_upload(self, local, rels, dest)

    monkeypatch.setattr(ObjectStore, "upload", spy)
    sync.push(paths, [root])
    assert sorted(order[:2]) == ["2026-11-02/index.faiss", "2026-11-02/user_tower.pt"]
    assert order[2:] == ["2026-11-02/manifest.json", "LATEST"]
    assert layout.store.get_bytes(layout.latest_pointer) == b"LATEST"


def test_a_failed_step_pushes_nothing(tmp_path, s3_endpoint, bucket):
    paths = remote_config(tmp_path, s3_endpoint, bucket).paths
    layout = Layout(paths)
    out = layout.model_dir("2026-11-02")
    with pytest.raises(RuntimeError, match="step failed"), sync.working_copy(paths, [], [out]):
        out.mkdir(parents=True)
        (out / "half.pt").write_bytes(b"partial")
        raise RuntimeError("step failed")
    assert not layout.store.is_dir(out)
    with sync.working_copy(paths, [], [out]):
        (out / "half.pt").write_bytes(b"complete")
    assert layout.store.get_bytes(out / "half.pt") == b"complete"


def test_local_storage_makes_sync_a_no_op(tmp_path):
    paths = make_config(tmp_path).paths
    out = Layout(paths).model_dir("2026-11-02")
    out.mkdir(parents=True)
    (out / "m.pt").write_bytes(b"x")
    assert sync.push(paths, [out]) == {"uploaded": 0, "deleted": 0}
    assert sync.pull(paths, [out]) == {"downloaded": 0, "deleted": 0}
    assert (out / "m.pt").read_bytes() == b"x"


def test_source_fingerprint_sees_a_re_export_and_commits_with_its_partition(layout):
    """A per-day output stores the fingerprint of the raw partitions it came from; the store
    (local mtimes, object-store ETags) tells a re-export apart, and the marker travels with
    the partition's commit."""
    from types import SimpleNamespace

    from etl import io
    from storage.layout import SOURCE_MARKER

    ctx = SimpleNamespace(layout=layout)  # the io calls read only the run context's layout
    store, day = layout.store, "2026-11-02"
    raw = layout.path_for("impressions", day)
    _put(layout, raw, {"part-0.parquet": _parquet_bytes(3), "_SUCCESS": b""})
    first = io.source_fingerprints(ctx, "click_positives", [day], {"positive_weight": "constant"})
    assert io.source_fingerprints(ctx, "click_positives", [day], {"positive_weight": "constant"}) == first
    assert io.stale_days(ctx, "click_positives", first) == [day]  # no output partition yet

    staged = layout.table_root("click_positives") / ".staging-x" / f"ds={day}"
    _put(layout, staged, {"part-0.parquet": _parquet_bytes(1)})
    store.write_text(staged / SOURCE_MARKER, first[day])
    store.commit_dir(staged, layout.path_for("click_positives", day))
    assert store.read_text(layout.path_for("click_positives", day) / SOURCE_MARKER) == first[day]
    assert store.data_files(layout.path_for("click_positives", day)) == ["part-0.parquet"]  # not a data file
    assert io.stale_days(ctx, "click_positives", first) == []

    # The producer re-exports the day (same file name, other bytes); or a setting changes.
    _put(layout, raw, {"part-0.parquet": _parquet_bytes(5)})
    second = io.source_fingerprints(ctx, "click_positives", [day], {"positive_weight": "constant"})
    assert second != first and io.stale_days(ctx, "click_positives", second) == [day]
    other = io.source_fingerprints(ctx, "click_positives", [day], {"positive_weight": "engagement"})
    assert io.stale_days(ctx, "click_positives", other) == [day]
    # An output written before markers existed counts as stale; a missing marker reads as None.
    _put(layout, layout.path_for("click_positives", "2026-11-01"), {"part-0.parquet": _parquet_bytes(1)})
    legacy = io.source_fingerprints(ctx, "click_positives", ["2026-11-01"])
    assert io.stale_days(ctx, "click_positives", legacy) == ["2026-11-01"]
    assert store.read_text(layout.path_for("click_positives", "2026-11-01") / SOURCE_MARKER) is None
