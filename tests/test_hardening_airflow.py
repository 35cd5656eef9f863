"""Airflow hardening: what the project's services listen on, and a run that waits for its data.

1. scripts/airflow_services.sh starts the real scheduler, dag-processor and api-server with a
   temporary AIRFLOW_HOME; every socket any of their processes listens on is read from the
   process table (psutil) and must be on loopback.
2. The DAG's first task is a reschedule-mode sensor with a timeout on the day's raw
   partitions (``pipeline.raw_landed``), before the previous-day sensor: a run for a day
   without data (the run unpausing creates) waits instead of failing on the publish-gap rule.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, make_config
from tests.test_e2e_airflow import AirflowStack, _kill_groups

LOOPBACK = {"127.0.0.1", "::1"}


def _listening(pgids: list[int]) -> dict[tuple[str, int], str]:
    """(address, port) -> process name of every LISTEN socket of the given process groups."""
    import psutil

    out = {}
    for proc in psutil.process_iter(["pid", "name", "cmdline"]):
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getpgid(proc.pid) not in pgids:
                continue
            for conn in proc.net_connections(kind="inet"):
                if conn.status == psutil.CONN_LISTEN:
                    out[(conn.laddr.ip, conn.laddr.port)] = " ".join(proc.info["cmdline"] or [proc.info["name"]])[:120]
    return out


@pytest.mark.e2e
@pytest.mark.slow
def test_every_service_listens_on_loopback_only(tmp_path):
    import urllib.request

    st = AirflowStack(tmp_path)
    started = False
    try:
        st.airflow("db", "migrate", timeout=300)
        st.run("bash", "scripts/airflow_services.sh", "start", timeout=200)
        started = True
        port = int(st.env["TWOTOWER_AIRFLOW_PORT"])
        # Wait until the scheduler heartbeats (its serve-logs child, when started, starts first).
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=5) as r:
                    health = json.loads(r.read())
                if health.get("scheduler", {}).get("status") == "healthy":
                    break
            time.sleep(2)
        else:
            raise AssertionError(f"the scheduler never reported healthy:\n{st.log_tails()}")
        time.sleep(10)  # let every child bind what it binds
        sockets = _listening(st.pids())
        assert any(p == port for _, p in sockets), f"the api-server's port {port} is not listening: {sockets}"
        exposed = {k: v for k, v in sockets.items() if k[0] not in LOOPBACK}
        assert exposed == {}, f"listening beyond loopback: {exposed}"
        log_port = int(st.env["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"])
        assert all(p != log_port for _, p in sockets), "the scheduler started the log server (serve-logs)"
    finally:
        if started or st.pids():
            st.run("bash", "scripts/airflow_services.sh", "stop", timeout=120, check=False)
            _kill_groups(st.pids())


_PARSE = textwrap.dedent(
    """
    import json, sys
    from airflow.dag_processing.dagbag import DagBag
    dag = DagBag(dag_folder=sys.argv[1]).dags["two_tower_daily"]
    t = dag.get_task("wait_for_raw_data")
    print("RESULT" + json.dumps({
        "upstream": {x.task_id: sorted(x.upstream_task_ids) for x in dag.tasks},
        "mode": t.mode, "timeout": float(t.timeout), "poke_interval": float(t.poke_interval), "retries": t.retries,
        "python_callable": t.python_callable.__name__,
    }))
    """
)


def test_dag_waits_for_the_days_raw_data_first(tmp_path):
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "home"), "AIRFLOW_CONFIG": str(REPO / "airflow.cfg"),
           "TWOTOWER_HOME": str(REPO), "TWOTOWER_AIRFLOW_PORT": "8080", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", _PARSE, str(REPO / "dags")], env=env, capture_output=True,
                          text=True, timeout=180)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")), None)
    assert line, proc.stderr[-3000:]
    d = json.loads(line[len("RESULT"):])
    assert d["upstream"]["wait_for_raw_data"] == []
    assert d["upstream"]["wait_for_previous_day"] == ["wait_for_raw_data"]
    assert d["upstream"]["validate_raw"] == ["wait_for_previous_day"]
    assert d["mode"] == "reschedule" and d["retries"] == 0
    assert d["timeout"] == 12 * 3600 and d["poke_interval"] == 300


def test_raw_landed_waits_for_every_required_table(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from storage.layout import Layout
    from twotower import pipeline

    cfg = make_config(tmp_path)
    layout = Layout(cfg.paths)
    ds = "2026-11-04"
    assert pipeline.raw_landed(cfg, ds) is False
    assert len(pipeline.missing_raw(cfg, ds)) == 3  # impressions, users, items; ranking_log is optional
    for table in ("impressions", "users"):
        folder = layout.path_for(table, ds)
        folder.mkdir(parents=True)
        pq.write_table(pa.table({"x": [1]}), folder / "part-0.parquet")
    items = layout.path_for("items", ds)
    items.mkdir(parents=True)
    (items / "_SUCCESS").write_text("")  # a folder without data files has not landed
    assert pipeline.missing_raw(cfg, ds) == [str(items)]
    pq.write_table(pa.table({"x": [1]}), items / "part-0.parquet")
    assert pipeline.raw_landed(cfg, ds) is True
    assert not Path(layout.path_for("ranking_log", ds)).exists()


@pytest.mark.e2e
@pytest.mark.slow
def test_a_run_for_a_day_without_data_waits_in_real_airflow(tmp_path):
    """`airflow tasks test` runs the real sensor: no data -> up for reschedule (not failed), the log
    names the missing partitions; once they land -> success."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    st = AirflowStack(tmp_path)
    st.airflow("db", "migrate", timeout=300)
    ds = "2026-11-04"
    first = st.airflow("tasks", "test", "two_tower_daily", "wait_for_raw_data", ds, timeout=300)
    out = first.stdout + first.stderr
    assert "raw data of ds=2026-11-04 has not landed yet" in out and "raw/impressions/ds=2026-11-04" in out
    assert "new_state=up_for_reschedule" in out and "new_state=failed" not in out
    for table in ("impressions", "users", "items"):
        folder = tmp_path / "data" / "raw" / table / f"ds={ds}"
        folder.mkdir(parents=True)
        pq.write_table(pa.table({"x": [1]}), folder / "part-0.parquet")
    second = st.airflow("tasks", "test", "two_tower_daily", "wait_for_raw_data", ds, timeout=300)
    out = second.stdout + second.stderr
    assert "new_state=success" in out and "has not landed yet" not in out
