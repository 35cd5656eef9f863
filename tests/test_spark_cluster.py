"""Spark cluster mode, proven: the ETL on a real standalone cluster equals the ETL in local mode.

A Spark standalone master and one worker are started on loopback from the pyspark
installation (``bin/spark-class``). The ETL of a tiny simulated day then runs in a separate
process (``twotower etl --ds D``) with ``TWOTOWER_SPARK_MASTER=spark://127.0.0.1:<port>``: the
same switch users set (no code change). Its outputs must hold exactly the rows the local-mode
ETL (the shared ``local[2]`` session of this test process) wrote from the same raw data. A
cluster session cannot share this process with the local one, hence the subprocess. Every
process started here is stopped by its process group, also when the test fails.
"""

from __future__ import annotations

import collections
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.spark, pytest.mark.slow]

START, DAYS, D = "2026-11-01", 3, "2026-11-03"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spark_class() -> Path:
    import pyspark

    path = Path(pyspark.__file__).parent / "bin" / "spark-class"
    if not path.exists():
        pytest.skip(f"no {path}: this pyspark installation cannot start a standalone cluster")
    return path


def _wait_for(predicate, what: str, timeout: float, procs: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"{what}: a cluster process exited early (rc={p.returncode}): {p.args}")
        time.sleep(0.5)
    raise TimeoutError(f"{what}: not ready after {timeout:.0f} s")


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _stop(procs: list[subprocess.Popen]) -> None:
    """SIGTERM each process group we started, then SIGKILL what is left after 15 s."""
    for p in procs:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=15)


@pytest.fixture
def standalone_cluster(tmp_path: Path):
    """(master URL, master log path) of a master + one worker (2 cores, 1 GB) on 127.0.0.1."""
    spark_class = _spark_class()
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable, "SPARK_NO_DAEMONIZE": "1"}
    port = _free_port()
    url = f"spark://127.0.0.1:{port}"
    logs = tmp_path / "cluster-logs"
    logs.mkdir()
    procs: list[subprocess.Popen] = []
    files = []

    def start(name: str, *args: str) -> subprocess.Popen:
        log = open(logs / f"{name}.log", "w")  # noqa: SIM115 (closed in the finally below)
        files.append(log)
        # Its own session = its own process group (the JVM and anything it forks), stopped as one.
        p = subprocess.Popen([str(spark_class), *args], env=env, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
        procs.append(p)
        return p

    try:
        start("master", "org.apache.spark.deploy.master.Master",
              "--host", "127.0.0.1", "--port", str(port), "--webui-port", "0")
        _wait_for(lambda: _port_open(port), "Spark master", 90, procs)
        start("worker", "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--cores", "2",
              "--memory", "1g", "--webui-port", "0", "--work-dir", str(tmp_path / "worker"), url)
        master_log = logs / "master.log"
        _wait_for(lambda: "Registering worker" in master_log.read_text(), "Spark worker registration", 90, procs)
        yield url, master_log
    finally:
        _stop(procs)
        for f in files:
            f.close()
        assert all(p.poll() is not None for p in procs), "a cluster process is still running"


def _write_config(path: Path, root: Path) -> Path:
    """The same TOML for both runs: only the data root differs (and the master, via the env)."""
    path.write_text(
        f"""
[paths]
data_root = "{root / 'data'}"
artifact_root = "{root / 'artifacts'}"
reports_root = "{root / 'reports'}"

[spark]
master = "local[2]"
driver_memory = "1g"
shuffle_partitions = 4

[spark.conf]
"spark.executor.memory" = "768m"

[etl]
window_days = {DAYS}
eval_days = 1
hot_threshold = 100
"""
    )
    return path


def _row_multiset(path: Path | str, filesystem=None) -> collections.Counter:
    """A partition's rows as a multiset of hashable tuples (column order by name; floats to 9
    significant digits, because a sum over differently split partitions may differ in its last bit)."""
    import pyarrow.dataset as pads

    def norm(v):
        if isinstance(v, float):
            return float(f"{v:.9g}")
        if isinstance(v, list):
            return tuple(norm(x) for x in v)
        if isinstance(v, dict):
            return tuple(sorted((k, norm(x)) for k, x in v.items()))
        return v

    table = pads.dataset(str(path), format="parquet", filesystem=filesystem).to_table()
    cols = sorted(table.column_names)
    return collections.Counter(tuple(norm(row[c]) for c in cols) for row in table.select(cols).to_pylist())


def test_etl_on_standalone_cluster_equals_local_mode(spark, tmp_path, standalone_cluster):
    import logsim
    from contracts.outputs import ETL_OUTPUTS
    from core.config_load import load_config
    from core.context import RunContext
    from etl.jobs import run_etl
    from storage.layout import Layout

    url, master_log = standalone_cluster
    local_root, cluster_root = tmp_path / "local", tmp_path / "cluster"
    local_cfg = load_config(_write_config(tmp_path / "local.toml", local_root), env={})
    cluster_toml = _write_config(tmp_path / "cluster.toml", cluster_root)
    logsim.simulate(local_cfg, "tiny", START, DAYS, 7)
    shutil.copytree(local_root / "data", cluster_root / "data")

    # Local mode: the shared local[2] session of this process.
    run_etl(RunContext.build(local_cfg, D), spark)

    # Cluster mode: the user-facing CLI in its own process, switched by the environment only.
    env = {**os.environ, "TWOTOWER_SPARK_MASTER": url, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable}
    env.pop("TWOTOWER_CONFIG", None)
    run = subprocess.run(
        [sys.executable, "-m", "twotower.cli", "--config", str(cluster_toml), "etl", "--ds", D],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, f"cluster ETL failed:\n{run.stdout[-3000:]}\n{run.stderr[-5000:]}"

    # It really ran on the cluster: the master registered the application and gave it an executor.
    log = master_log.read_text()
    assert "Registering app twotower" in log, log[-2000:]
    assert "Launching executor" in log, log[-2000:]

    cluster_cfg = load_config(cluster_toml, env={})
    local, cluster = Layout(local_cfg.paths), Layout(cluster_cfg.paths)
    for table in ETL_OUTPUTS:
        expected = _row_multiset(local.path_for(table, D))
        got = _row_multiset(cluster.path_for(table, D))
        # hard_negatives may legitimately be empty on a tiny day; the others never are.
        assert expected or table == "hard_negatives", f"local {table} is empty: the comparison would prove nothing"
        assert got == expected, (
            f"{table} ds={D}: cluster rows differ from local mode "
            f"({sum(got.values())} vs {sum(expected.values())} rows; "
            f"{sum((got - expected).values())} only on the cluster, {sum((expected - got).values())} only local)"
        )
