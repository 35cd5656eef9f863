"""Serving from raw features: the version's ``serving/`` bundle and its reference client, run
in a subprocess that cannot import the project, return the same top-k as ``twotower query``.

The day's ETL-encoded user features (what ``twotower query`` embeds) are turned back into raw
values by hand here: vocabulary id -> the string it encodes, z -> z * std + mean, history ids ->
raw item ids. The client must re-encode them exactly as the ETL did.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.context import RunContext
from indexing import artifacts as art
from indexing.publish import publish_day
from indexing.query import recommend
from indexing.staging import build_index_for_day
from storage.layout import Layout
from tests.conftest import make_config
from tests.test_index_support import N_REGIONS, make_candidate, metrics_evaluator, real_evaluator

D1 = "2026-11-01"
N_ITEMS = 300  # make_candidate: item_idx 3, 6, ..., 900; histories draw ids in 1..900
MEAN, STD = 4.0, 2.5  # feature_stats of u_num_activity (the fixture's column holds z values)
PROJECT = ("twotower", "contracts", "storage", "etl", "quality", "training", "indexing", "reports", "logsim", "importers", "tests")
# Runs the client with every project package unimportable (the editable install would
# otherwise make them importable even under `python -I`).
RUNNER = """
import importlib.abc, runpy, sys
BLOCKED = set(sys.argv[1].split(","))
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name}: the reference client must not import the project")
sys.meta_path.insert(0, Block())
script = sys.argv[2]
sys.argv = sys.argv[2:]
runpy.run_path(script, run_name="__main__")
"""


def _write_partition(layout: Layout, table: str, ds: str, t: pa.Table) -> None:
    part = layout.path_for(table, ds)
    part.mkdir(parents=True, exist_ok=True)
    pq.write_table(t, part / "part-00000.parquet")


@pytest.fixture
def version(tmp_path):
    """A published version of the test candidate, with the day's vocabulary and feature_stats
    (region r<k> -> id k, age band a<k> -> k, user U<i> -> i, item N<j> -> j)."""
    cfg = make_config(tmp_path)
    layout = Layout(cfg.paths)
    make_candidate(cfg, D1, n_items=N_ITEMS)
    rows = [("user_id", f"U{i}", i) for i in range(1, 901)]
    rows += [("item_id", f"N{j}", j) for j in range(1, 3 * N_ITEMS + 1)]
    rows += [(f"user.{f}", f"{p}{k}", k) for f, p in (("region", "r"), ("age_band", "a")) for k in range(1, N_REGIONS + 1)]
    rows += [("item.category", "c1", 1)]  # not a user vocabulary: left out of the bundle
    _write_partition(layout, "vocabulary", D1, pa.table({
        "vocab": [r[0] for r in rows], "value": [r[1] for r in rows], "id": pa.array([r[2] for r in rows], pa.int64()),
        "first_ds": pa.array([dt.date(2026, 11, 1)] * len(rows), pa.date32()),
    }))
    _write_partition(layout, "feature_stats", D1, pa.table({
        "feature": ["u_num_activity", "i_num_quality"], "mean": [MEAN, 0.0], "std": [STD, 1.0]}))
    build_index_for_day(RunContext.build(cfg, D1))
    publish_day(RunContext.build(cfg, D1), evaluator=metrics_evaluator)
    return art.load_version(layout)


def _raw_user(row) -> dict:
    """A user_features row decoded to raw values (the inverse of the fixture's encoding)."""
    user = {"user_id": row["user_id"], "history": [f"N{j}" for j in row["u_hist"]]}
    if row["u_cat_region"]:
        user["region"] = f"r{row['u_cat_region']}"
    if row["u_cat_age_band"]:
        user["age_band"] = f"a{row['u_cat_age_band']}"
    user["activity"] = float(row["u_num_activity"]) * STD + MEAN
    return user


def _client(version_dir: Path, users, k: int, cwd: Path):
    out = subprocess.run(
        [sys.executable, "-I", "-c", RUNNER, ",".join(PROJECT), str(version_dir / "serving" / "reference_client.py"),
         str(version_dir), json.dumps(users), "-k", str(k)],
        capture_output=True, text=True, cwd=cwd, timeout=300, check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout)


def test_bundle_is_plain_and_checksummed(version):
    v = version
    bundle = json.loads((v.path / "serving" / "bundle.json").read_text())
    assert bundle["complete"] and bundle["missing"] == []
    inputs = {i["name"]: i for i in bundle["user_tower"]["inputs"]}
    assert [i["name"] for i in bundle["user_tower"]["inputs"]] == ["user_idx", "user_cat", "user_num", "hist"]
    assert [c["feature"] for c in inputs["user_cat"]["columns"]] == ["region", "age_band"]  # model_config order
    assert inputs["user_num"]["columns"] == [{"column": "u_num_activity", "feature": "activity", "mean": MEAN, "std": STD}]
    assert inputs["hist"]["length"] == 5 and inputs["hist"]["width"] == 5
    assert "Tensor user_idx, Tensor user_cat, Tensor user_num, Tensor hist" in bundle["user_tower"]["schema"]
    # 900 users, 900 item ids, 4 regions, 4 age bands; item.category left out
    assert bundle["vocabulary"]["sizes"] == {"item_id": 900, "user.age_band": 4, "user.region": 4, "user_id": 900}
    files = v.manifest["files"]
    assert {"serving/bundle.json", "serving/vocabulary.parquet", "serving/reference_client.py"} <= set(files)


def test_reference_client_matches_twotower_query_on_raw_features(version, tmp_path):
    v = version
    frame = pq.read_table(v.path / "user_features.parquet").to_pandas().set_index("user_id", drop=False)
    ids = ["U1", "U7", "U13", "U40"]
    users = [_raw_user(frame.loc[u]) for u in ids]
    # A raw history id the vocabulary does not know is dropped, as the ETL drops it.
    users[1]["history"] = ["N-unknown", *users[1]["history"]]
    # The cold-start user of `twotower query`: nothing known, empty history.
    users.append({"user_id": "nobody", "history": []})
    got = _client(v.path, users, 20, tmp_path)
    want = recommend(v, [*ids, "nobody"], k=20)
    assert [r["user_id"] for r in got] == [*ids, "nobody"]
    for g, w in zip(got, want, strict=True):
        assert [it["item_id"] for it in g["items"]] == [it["item_id"] for it in w["items"]], g["user_id"]
        np.testing.assert_allclose([it["score"] for it in g["items"]], [it["score"] for it in w["items"]], rtol=1e-5, atol=1e-6)
    assert len(got[0]["items"]) == 20 and got[0]["items"][0]["rank"] == 1


def test_reference_client_refuses_a_tampered_version(version, tmp_path):
    vocab = version.path / "serving" / "vocabulary.parquet"
    vocab.chmod(0o644)
    vocab.write_bytes(vocab.read_bytes() + b"x")
    out = subprocess.run(
        [sys.executable, "-I", str(version.path / "serving" / "reference_client.py"), str(version.path), "{}"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300, check=False,
    )
    assert out.returncode != 0 and "serving/vocabulary.parquet: sha256 does not match manifest.json" in out.stderr


def test_reference_client_on_a_trained_model(tmp_path):
    """The real chain (training.train.train_day on synthetic ETL tables -> index -> publish): the
    exported TwoTowerModel tower served from raw values matches `twotower query`."""
    from tests.support.synthetic_etl import write_synthetic_etl
    from tests.support.training import train

    ds = "2026-11-04"
    cfg = make_config(
        tmp_path,
        etl={"window_days": 4},
        training={"batch_size": 256, "epochs": 1, "min_steps": 1, "shared_negatives": 128, "seed": 11},
        features={"history_length": 10},
    )
    layout = Layout(cfg.paths)
    write_synthetic_etl(layout, ds, seed=0)
    _write_partition(layout, "feature_stats", ds, pa.table({"feature": ["u_num_activity"], "mean": [MEAN], "std": [STD]}))
    train(cfg, ds)
    build_index_for_day(RunContext.build(cfg, ds))
    publish_day(RunContext.build(cfg, ds), evaluator=real_evaluator)
    v = art.load_version(layout)
    bundle = json.loads((v.path / "serving" / "bundle.json").read_text())
    assert bundle["complete"], bundle["missing"]
    # Decode the encoded rows with the bundle's own vocabulary (id -> value) and statistics.
    voc = pq.read_table(v.path / "serving" / "vocabulary.parquet").to_pylist()
    value_of = {(r["vocab"], r["id"]): r["value"] for r in voc}
    inputs = {i["name"]: i for i in bundle["user_tower"]["inputs"]}
    frame = pq.read_table(v.path / "user_features.parquet").to_pandas().set_index("user_id", drop=False)
    ids = list(frame.index[[0, 5, 17, 123]])
    users = []
    for u in ids:
        row = frame.loc[u]
        raw = {"user_id": u, "history": [value_of[("item_id", int(j))] for j in row["u_hist"]]}
        for c in inputs["user_cat"]["columns"]:
            if row[c["column"]]:
                raw[c["feature"]] = value_of[(c["vocab"], int(row[c["column"]]))]
        for c in inputs["user_num"]["columns"]:
            raw[c["feature"]] = float(row[c["column"]]) * c["std"] + c["mean"]
        users.append(raw)
    got = _client(v.path, users, 10, tmp_path)
    want = recommend(v, ids, k=10)
    for g, w in zip(got, want, strict=True):
        assert [it["item_id"] for it in g["items"]] == [it["item_id"] for it in w["items"]], g["user_id"]
