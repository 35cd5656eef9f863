"""Hardening catalogue: unreadable files, malformed ids, clicked items missing from the
catalogue, a second run of the same day, and the command line's failure modes.

Like tests/test_bad_inputs.py, each data case copies a pristine tiny simulated world, breaks one
thing with pyarrow and runs the real pipeline (``pipeline.run_day`` / the CLI). Unlike it, the
pristine world also has a good published day (2026-11-03, trained on synthetic ETL outputs so
that no Spark ETL is needed to make it), and every case asserts that the day stops with a
message naming the problem, that nothing new is published, and that LATEST still serves the
good day (its checksums verify and it loads).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from core.errors import QualityGateFailed
from storage.layout import Layout
from tests.conftest import REPO, TINY_MODEL_TOML, make_config
from tests.test_bad_inputs import _dq_show, _failed, _read, _write
from twotower import pipeline

pytestmark = [pytest.mark.spark, pytest.mark.slow]

START, DAYS, RUN_DAY, GOOD_DAY = "2026-11-01", 4, "2026-11-04", "2026-11-03"
_TRAINING = {"embedding_dim": 16, "id_dim": 16, "feature_dim": 8, "hidden": [32], "epochs": 1, "min_steps": 1,
             "batch_size": 256}


def _cfg(root: Path, **sections):
    return make_config(root, etl={"window_days": 3}, training=dict(_TRAINING), **sections)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """Raw logs of 4 simulated days, and a published version for GOOD_DAY (LATEST)."""
    import logsim
    from core.context import RunContext
    from indexing.publish import publish_day
    from indexing.staging import build_index_for_day
    from tests.support.synthetic_etl import write_synthetic_etl
    from tests.support.training import train
    from tests.test_index_support import real_evaluator

    root = tmp_path_factory.mktemp("hardening")
    cfg = _cfg(root)
    logsim.simulate(cfg, "tiny", START, DAYS, 7)
    layout = Layout(cfg.paths)
    write_synthetic_etl(layout, GOOD_DAY, seed=0, window_days=3)
    train(cfg, GOOD_DAY)
    build_index_for_day(RunContext.build(cfg, GOOD_DAY))
    publish_day(RunContext.build(cfg, GOOD_DAY), evaluator=real_evaluator)
    shutil.rmtree(layout.data_root / "etl")  # the raw world stays pristine; only the version is kept
    return root


@pytest.fixture
def case(pristine, tmp_path):
    for name in ("data", "artifacts"):
        shutil.copytree(pristine / name, tmp_path / name)
    return _cfg(tmp_path)


def _assert_nothing_published(cfg) -> None:
    from indexing.artifacts import load_version, read_latest

    layout = Layout(cfg.paths)
    assert read_latest(layout) == GOOD_DAY
    assert not layout.version_dir(RUN_DAY).exists()
    assert load_version(layout).path.name == GOOD_DAY  # checksums verified: LATEST still serves


def _stops(cfg, *needles: str) -> str:
    with pytest.raises(QualityGateFailed) as err:
        pipeline.run_day(cfg, RUN_DAY)
    msg = str(err.value)
    print(msg)  # what the user sees (pytest -rP shows it)
    for needle in needles:
        assert needle in msg, f"{needle!r} not in: {msg}"
    _assert_nothing_published(cfg)
    return msg


# -- 1. unreadable Parquet files --------------------------------------------------------------


def test_zero_byte_file_in_the_run_day(case, monkeypatch, capsys):
    folder = Layout(case.paths).path_for("impressions", RUN_DAY)
    (folder / "part-99999.parquet").write_bytes(b"")
    msg = _stops(case, "table impressions, partition ds=2026-11-04", "unreadable Parquet file",
                 str(folder / "part-99999.parquet"), "Parquet file size is 0 bytes", "check readable", "re-export")
    assert _failed(case) == {("impressions", "readable")}
    code, text = _dq_show(case, monkeypatch, capsys, "--json")
    assert code == 1
    raw = json.loads(text)["stages"]["validate_raw"]
    assert raw["status"] == "failed"
    assert any("part-99999.parquet" in m and "0 bytes" in m for m in raw["critical_failures"])
    assert "Summary:" in msg


def test_truncated_file_on_a_past_day_of_the_window(case):
    folder = Layout(case.paths).path_for("impressions", GOOD_DAY)
    f = sorted(folder.glob("*.parquet"))[0]
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])  # an interrupted upload: no footer
    _stops(case, "table impressions, partition ds=2026-11-03", str(f), "unreadable Parquet file",
           "in the training window of 2026-11-04")
    assert _failed(case) == {("impressions", "readable")}


def test_unreadable_etl_output_is_a_critical_output_check(tmp_config, spark):
    """The output gate opens ETL outputs through the same guarded reader."""
    folder = Layout(tmp_config.paths).path_for("vocabulary", RUN_DAY)
    folder.mkdir(parents=True)
    (folder / "part-00000.parquet").write_bytes(b"PAR1")  # four bytes: not a Parquet file
    with pytest.raises(QualityGateFailed) as err:
        pipeline.validate_outputs(tmp_config, RUN_DAY)
    msg = str(err.value)
    assert "table vocabulary, partition ds=2026-11-04: unreadable Parquet file" in msg
    assert str(folder / "part-00000.parquet") in msg
    failed = _failed(tmp_config, "validate_outputs")
    assert ("vocabulary", "readable") in failed and ("vocabulary", "partition_exists") not in failed


# -- 2. id hygiene -------------------------------------------------------------------------------


def _pad(ids: pa.ChunkedArray, mask: pa.Array) -> pa.ChunkedArray:
    return pc.if_else(mask, pc.binary_join_element_wise(pa.scalar(" "), ids, ""), ids)


def test_whitespace_ids_above_the_budget_stop_the_day(case):
    t = _read(case, "impressions")
    i = t.column_names.index("user_id")
    mask = pa.array([r % 20 == 0 for r in range(t.num_rows)])  # 5% of the rows
    _write(case, "impressions", t.set_column(i, "user_id", _pad(t["user_id"], mask)))
    msg = _stops(case, "column user_id", "malformed_user_id", "leading/trailing whitespace", "so none is quarantined")
    assert "(quarantined)" not in msg  # the any-row-rule message says what happened
    # 1 row in 20 (rows 0, 20, 40, ...): ceil(n / 20) rows, all of them also any_row_rule.
    bad = -(-t.num_rows // 20)
    assert f"{bad:,} rows" in msg and f"{bad:,} of {t.num_rows:,} rows fail row rules" in msg
    assert _failed(case) == {("impressions", "malformed_user_id"), ("impressions", "any_row_rule")}


def test_a_few_malformed_ids_are_quarantined_never_new_ids(case, spark):
    t = _read(case, "impressions")
    i = t.column_names.index("user_id")
    ids = t["user_id"].to_pylist()
    ids[0], ids[1], ids[2] = ids[0] + " ", "\t" + ids[1], ""  # trailing space, leading tab, empty
    _write(case, "impressions", t.set_column(i, "user_id", pa.array(ids, pa.string())))
    out = pipeline.validate_raw(case, RUN_DAY).to_dict()
    assert out["status"] == "warning"
    assert out["quarantined"]["impressions"]["by_rule"] == {"malformed_user_id": 3}
    q = pq.read_table(Layout(case.paths).quarantine("impressions", RUN_DAY))
    assert sorted(q["user_id"].to_pylist()) == sorted([ids[0], ids[1], ""])
    from core.context import RunContext
    from etl.io import read_raw

    kept = read_raw(spark, RunContext.build(case, RUN_DAY), "impressions", RUN_DAY)
    assert kept.count() == t.num_rows - 3
    from pyspark.sql import functions as F

    assert kept.filter((F.col("user_id") != F.trim(F.col("user_id"))) | (F.col("user_id") == "")).count() == 0


def test_one_bad_row_of_a_small_snapshot_is_quarantined(case):
    """Budget max(0.1% x rows, quarantine_min_rows=5): one bad row of a few hundred is quarantined
    (0.1% of ~510 items is not even one row, so before the minimum it could never apply)."""
    t = _read(case, "items")
    assert t.num_rows * case.quality.quarantine_max_fraction < 1
    imp = _read(case, "impressions")
    clicked = set(imp.filter(imp["clicked"])["item_id"].to_pylist())
    feature = case.features.item_numeric[0]
    # An item nobody clicked that day, so setting it aside loses no click.
    row = next(r for r, item in enumerate(t["item_id"].to_pylist()) if item not in clicked)
    mask = pa.array([r == row for r in range(t.num_rows)])
    i = t.column_names.index(feature)
    values = pc.if_else(mask, pa.scalar(float("nan"), t.schema.field(feature).type), t[feature])
    _write(case, "items", t.set_column(i, feature, values))
    out = pipeline.validate_raw(case, RUN_DAY).to_dict()
    assert out["status"] == "warning", out["critical_failures"]
    assert out["quarantined"]["items"]["by_rule"] == {f"nan_{feature}": 1}


# -- 3. clicked items missing from the catalogue -----------------------------------------------


def _drop_top_clicked_items(cfg, n: int) -> tuple[int, int, int]:
    """Remove the n most-clicked items of the run day from its items snapshot; returns
    (clicks on them, clicks of the day, n)."""
    imp = _read(cfg, "impressions")
    clicked = imp.filter(imp["clicked"])
    counts = clicked.group_by("item_id").aggregate([("item_id", "count")]).sort_by(
        [("item_id_count", "descending"), ("item_id", "ascending")]
    )
    top = counts.slice(0, n)
    items = _read(cfg, "items")
    _write(cfg, "items", items.filter(pc.invert(pc.is_in(items["item_id"], top["item_id"]))))
    return sum(top["item_id_count"].to_pylist()), clicked.num_rows, n


def test_clicked_items_missing_from_the_snapshot_stop_the_day(case):
    lost, clicks, n = _drop_top_clicked_items(case, 10)
    share = lost / clicks
    assert share > 0.01  # the default quality.unknown_item_click_max_fraction
    msg = _stops(case, "unknown_clicked_item", f"{n} clicked items are missing from the day's items snapshot",
                 f"{lost:,} of {clicks:,} clicks ({share:.1%})", "unknown_item_click_max_fraction")
    assert _failed(case) == {("impressions", "unknown_clicked_item")}
    assert "table impressions, partition ds=2026-11-04, column item_id" in msg


def test_a_small_share_of_unknown_clicked_items_is_reported(case):
    lost, clicks, n = _drop_top_clicked_items(case, 10)
    cfg = case.replace(quality=dataclasses.replace(case.quality, unknown_item_click_max_fraction=0.5))
    out = pipeline.validate_raw(cfg, RUN_DAY).to_dict()
    assert out["status"] == "warning"
    [m] = [w for w in out["warnings"] if "unknown_clicked_item" in w]
    print(m)
    assert f"{lost:,} of {clicks:,} clicks" in m


# -- 4. two runs of the same day ----------------------------------------------------------------

_HOLD = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {repo!r})
    from tests.conftest import make_config
    from pathlib import Path
    from twotower.runlock import day_lock
    cfg = make_config(Path({root!r}))
    with day_lock(cfg, {ds!r}, "run"):
        print("locked", flush=True)
        time.sleep(120)
    """
)


def test_a_second_run_of_the_same_day_stops_at_once(case, tmp_path, monkeypatch, capsys):
    from twotower.cli import main
    from twotower.runlock import RunInProgress, day_lock, lock_path

    root = Path(case.paths.data_root).parent
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD.format(repo=str(REPO), root=str(root), ds=RUN_DAY)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunInProgress) as err:
            pipeline.run_day(case, RUN_DAY)
        msg = str(err.value)
        assert f"another run of {RUN_DAY} is in progress" in msg
        assert f"pid {holder.pid} on host {os.uname().nodename}" in msg and str(lock_path(case, RUN_DAY)) in msg
        assert not Layout(case.paths).dq_dir(RUN_DAY).exists()  # the second run changed nothing
        with pytest.raises(RunInProgress):
            pipeline.validate_raw(case, RUN_DAY)  # every step takes the lock (the DAG runs steps)
        for var, value in (("TWOTOWER_DATA_ROOT", case.paths.data_root), ("TWOTOWER_ARTIFACT_ROOT", case.paths.artifact_root),
                           ("TWOTOWER_REPORTS_ROOT", case.paths.reports_root)):
            monkeypatch.setenv(var, str(value))
        monkeypatch.delenv("TWOTOWER_CONFIG", raising=False)
        monkeypatch.chdir(tmp_path)
        capsys.readouterr()
        assert main(["run", "--ds", RUN_DAY]) == 1
        err_text = capsys.readouterr().err.strip()
        with capsys.disabled():
            print(err_text)
        assert err_text.startswith(f"twotower run: failed: another run of {RUN_DAY} is in progress")
        assert len(err_text.splitlines()) == 1
        _assert_nothing_published(case)
    finally:
        holder.kill()
        holder.wait()
    # The holder died without unlocking: the kernel released it, the day can run again.
    with day_lock(case, RUN_DAY, "test") as path:
        assert json.loads(path.with_suffix(".owner").read_text())["pid"] == os.getpid()


def test_the_tasks_of_one_airflow_run_share_the_days_lock(tmp_config, monkeypatch):
    """The DAG runs ETL stages of one day in parallel processes: they share the lock; a task of
    another DAG run of the same day does not get it."""
    from twotower.runlock import RunInProgress, day_lock

    env = {**os.environ, "AIRFLOW_CTX_DAG_ID": "two_tower_daily", "AIRFLOW_CTX_DAG_RUN_ID": "manual__r1"}
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD.format(repo=str(REPO), root=str(Path(tmp_config.paths.data_root).parent), ds=RUN_DAY)],
        stdout=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        monkeypatch.setenv("AIRFLOW_CTX_DAG_ID", "two_tower_daily")
        monkeypatch.setenv("AIRFLOW_CTX_DAG_RUN_ID", "manual__r1")
        # the same run's step, and a process nesting its own steps
        with day_lock(tmp_config, RUN_DAY, "etl_vocabulary"), day_lock(tmp_config, RUN_DAY, "nested"):
            pass
        monkeypatch.setenv("AIRFLOW_CTX_DAG_RUN_ID", "manual__r2")
        with pytest.raises(RunInProgress) as err, day_lock(tmp_config, RUN_DAY, "etl_vocabulary"):
            pass
        assert f"another run of {RUN_DAY} is in progress: airflow two_tower_daily/manual__r1 (pid {holder.pid}" in str(err.value)
    finally:
        holder.kill()
        holder.wait()


# -- 8. the command line --------------------------------------------------------------------------


def _twotower(cfg, *args: str, shell_tail: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "TWOTOWER_DATA_ROOT": str(cfg.paths.data_root),
           "TWOTOWER_ARTIFACT_ROOT": str(cfg.paths.artifact_root), "TWOTOWER_REPORTS_ROOT": str(cfg.paths.reports_root)}
    env.pop("TWOTOWER_CONFIG", None)
    cmd = " ".join([str(REPO / ".venv" / "bin" / "twotower"), *args]) + shell_tail
    return subprocess.run(["bash", "-c", "set -o pipefail; " + cmd], env=env, cwd=Path(cfg.paths.data_root).parent,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "args",
    [
        ("run", "--ds", "2026-02-30"),
        ("run", "--ds", "yesterday"),
        ("report", "--ds", "2026-13-45"),
        ("dq", "show", "--ds", "2026-11-4x"),
        ("etl", "--ds", "2026/11/04"),
        ("train", "--ds", "tomorrow"),
        ("index", "--ds", "2026-02-29"),
    ],
)
def test_a_bad_day_is_one_line_and_exit_2(tmp_config, args):
    proc = _twotower(tmp_config, *args)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert f"twotower {args[0]}" in lines[0] and f"argument --ds: '{args[-1]}' is not a day" in lines[0]
    assert "YYYY-MM-DD" in lines[0] and "Traceback" not in proc.stderr


def test_dq_show_into_a_closed_pipe_is_quiet(tmp_config):
    # `true` exits without reading: the command's first write meets a closed pipe (with `head`,
    # only an output longer than the pipe buffer would).
    proc = _twotower(tmp_config, "dq", "show", "--ds", RUN_DAY, "--json", shell_tail=" | true")
    assert proc.stderr == "", proc.stderr
    assert proc.returncode == 141  # 128 + SIGPIPE, as other Unix tools end on a closed pipe


def test_report_for_a_day_that_never_ran(tmp_config):
    layout = Layout(tmp_config.paths)
    proc = _twotower(tmp_config, "report", "--ds", "2026-10-01")
    assert proc.returncode == 1
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("twotower report: failed: no run of day 2026-10-01 to report")
    assert "twotower run --ds 2026-10-01" in line
    assert not (layout.reports_root / "index.html").exists() and not layout.report_dir("2026-10-01").exists()


def test_train_command_evaluates_so_index_can_gate(tmp_path, monkeypatch, capsys):
    """`twotower train --ds D` leaves a complete metrics.json (model recall@50 and baselines)."""
    from tests.support.synthetic_etl import write_synthetic_etl
    from twotower.cli import main

    cfg = _cfg(tmp_path)
    write_synthetic_etl(Layout(cfg.paths), GOOD_DAY, seed=0, window_days=3)
    toml = tmp_path / "twotower.toml"
    toml.write_text(
        f'[paths]\ndata_root = "{cfg.paths.data_root}"\nartifact_root = "{cfg.paths.artifact_root}"\n'
        f'reports_root = "{cfg.paths.reports_root}"\n[etl]\nwindow_days = 3\n' + TINY_MODEL_TOML
    )
    capsys.readouterr()
    t0 = time.monotonic()
    assert main(["--config", str(toml), "train", "--ds", GOOD_DAY]) == 0
    printed = json.loads(capsys.readouterr().out)
    metrics = json.loads((Layout(cfg.paths).model_dir(GOOD_DAY) / "metrics.json").read_text())
    assert "recall@50" in metrics["model"] and metrics["baselines"], metrics.keys()
    assert printed["recall@50"] == metrics["model"]["recall@50"]
    print(f"train + evaluate: {time.monotonic() - t0:.0f} s")
