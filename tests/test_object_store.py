"""Object storage, proven: the daily pipeline runs against an S3 API by configuration alone.

The store is moto's S3 server on loopback (``s3_endpoint``). The pipeline runs as users run
it, ``twotower simulate`` and ``twotower run --ds D`` in their own processes, with one
switch: ``[paths] remote = "s3://bucket/pipeline"`` (plus the endpoint and Spark's S3A
connector on the classpath). Then:

* the store holds every raw table, every ETL output, the run reports and two published
  versions with ``LATEST``; the ETL partitions hold Spark's task-output files and are never
  pushed by ``storage.sync``, so Spark wrote them through ``s3a://``;
* the ETL outputs of the first day hold exactly the rows a local-mode ETL (this process's
  ``local[2]`` session, local files) writes from the same simulated raw data;
* other machines (fresh working copies, same store) roll the index back and serve it: the
  store's ``LATEST`` moves, and a query answers from the rolled-back version, checksums
  verified;
* a day whose logs never reached the store fails with an error naming the table, partition
  and ``s3a://`` location, and publishes nothing.

The S3A connector here is hadoop-aws 3.3.1 (``scripts/fetch_s3a_test_jars.sh`` says why and
where from); the settings below marked "connector 3.3" are what it needs beside Hadoop 3.4's
defaults. A production deployment puts hadoop-aws 3.4.2 on the classpath instead.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, TINY_MODEL_TOML, new_bucket
from tests.test_spark_cluster import _row_multiset

pytestmark = [pytest.mark.spark, pytest.mark.slow]

JARS = REPO / "var" / "cache" / "s3a-jars"
START, DAYS, D1, D2 = "2026-11-01", 4, "2026-11-03", "2026-11-04"
PREFIX = "pipeline"
SPARK_PART = re.compile(r"part-\d{5}-[0-9a-f-]{36}[.-]c\d{3}(\.\w+)?\.parquet")

CONFIG = """
[paths]
data_root = "{root}/data"
artifact_root = "{root}/artifacts"
reports_root = "{root}/reports"
{remote}

[spark]
master = "local[2]"
driver_memory = "1g"
shuffle_partitions = 4

[spark.conf]
"spark.jars" = "{jars}"
# connector 3.3: Hadoop 3.4's core-default.xml writes these durations as "60s", "24h", ...
"spark.hadoop.fs.s3a.threads.keepalivetime" = "60"
"spark.hadoop.fs.s3a.connection.establish.timeout" = "30000"
"spark.hadoop.fs.s3a.connection.timeout" = "200000"
"spark.hadoop.fs.s3a.multipart.purge.age" = "86400"
"spark.hadoop.fs.s3a.connection.ttl" = "300000"
"spark.hadoop.fs.s3a.connection.request.timeout" = "0"
"spark.hadoop.fs.s3a.retry.interval" = "500"
"spark.hadoop.fs.s3a.retry.throttle.interval" = "100"
"spark.hadoop.fs.s3a.assumed.role.session.duration" = "1800"
# connector 3.3: its AWS SDK v1 reads the same environment credentials as pyarrow and boto3.
"spark.hadoop.fs.s3a.aws.credentials.provider" = "com.amazonaws.auth.EnvironmentVariableCredentialsProvider"

[simulator]
preset = "tiny"
seed = 7

[etl]
window_days = 2
""" + TINY_MODEL_TOML


def _jars() -> list[Path]:
    jars = [JARS / "hadoop-aws-3.3.1.jar", JARS / "aws-java-sdk-bundle-1.11.901.jar"]
    missing = [j.name for j in jars if not j.is_file()]
    if missing:
        pytest.skip(f"S3A connector jars {missing} not in {JARS}: `make test` fetches them (scripts/fetch_s3a_test_jars.sh)")
    return jars


def _write_config(path: Path, root: Path, remote: str, endpoint: str) -> Path:
    line = f'remote = "{remote}"\ns3_endpoint = "{endpoint}"' if remote else ""
    path.write_text(CONFIG.format(root=root, remote=line, jars=",".join(str(j) for j in _jars())))
    return path


def _twotower(config: Path, *args: str, rc: int = 0, timeout: int = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    env.pop("TWOTOWER_CONFIG", None)
    run = subprocess.run(
        [sys.executable, "-m", "twotower.cli", "--config", str(config), *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
    )
    assert run.returncode == rc, f"twotower {' '.join(args)}: rc {run.returncode}:\n{run.stdout[-3000:]}\n{run.stderr[-6000:]}"
    return run


def test_daily_pipeline_on_object_storage(spark, tmp_path, s3_endpoint):
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    import logsim
    from contracts.outputs import ETL_OUTPUTS
    from contracts.schemas import RAW_TABLE_NAMES
    from core.config_load import load_config
    from core.context import RunContext
    from etl.jobs import run_etl
    from storage.layout import Layout

    bucket = new_bucket(s3_endpoint, "twotower-e2e")
    remote = f"s3://{bucket}/{PREFIX}"
    runner = _write_config(tmp_path / "runner.toml", tmp_path / "runner", remote, s3_endpoint)

    _twotower(runner, "simulate", "--start", START, "--days", str(DAYS))
    _twotower(runner, "run", "--ds", D1)
    _twotower(runner, "run", "--ds", D2)

    fs = pafs.S3FileSystem(endpoint_override=s3_endpoint, region="us-east-1")
    base = f"{bucket}/{PREFIX}"

    def files(folder: str) -> list[str]:
        infos = fs.get_file_info(pafs.FileSelector(f"{base}/{folder}", recursive=True, allow_not_found=True))
        return sorted(i.path[len(base) + len(folder) + 2 :] for i in infos if i.type == pafs.FileType.File)

    def text(key: str) -> str:
        with fs.open_input_stream(f"{base}/{key}") as f:
            return f.read().decode()

    # Every raw table of every simulated day, every ETL output of both run days.
    for table in RAW_TABLE_NAMES:
        for day in ("2026-11-01", "2026-11-02", D1, D2):
            assert any(f.endswith(".parquet") for f in files(f"data/raw/{table}/ds={day}")), (table, day)
    for table in ETL_OUTPUTS:
        for day in (D1, D2):
            written = [f for f in files(f"data/etl/{table}/ds={day}") if f.endswith(".parquet")]
            assert written, (table, day)
            # Spark's task-output names (part-NNNNN-<job uuid>.cNNN.<codec>.parquet): written by Spark.
            assert all(SPARK_PART.fullmatch(f) for f in written), f"{table} ds={day}: {written}"
    # Reports, the candidate models, the published versions and LATEST.
    for day in (D1, D2):
        assert "report.html" in files(f"reports/ds={day}")
        assert "stats/publish.json" in files(f"reports/ds={day}")
        assert "validate_raw.json" in files(f"reports/ds={day}/data_quality")
        assert "model_state.pt" in files(f"data/models/ds={day}")
        assert "manifest.json" in files(f"artifacts/two_tower/{day}")
    assert text("artifacts/two_tower/LATEST").strip() == D2

    # The first day's ETL outputs equal a local-mode ETL from the same simulated raw data.
    local_cfg = load_config(_write_config(tmp_path / "local.toml", tmp_path / "local", "", ""), env={})
    logsim.simulate(local_cfg, "tiny", START, DAYS, 7)
    run_etl(RunContext.build(local_cfg, D1), spark)
    local = Layout(local_cfg.paths)
    for table in ETL_OUTPUTS:
        expected = _row_multiset(local.path_for(table, D1))
        got = _row_multiset(f"{base}/data/etl/{table}/ds={D1}", filesystem=fs)
        assert expected or table == "hard_negatives", f"local {table} is empty: the comparison would prove nothing"
        assert got == expected, f"{table}: object-store rows differ from local mode"

    # Another machine rolls back; a third serves the rolled-back version.
    ops = _write_config(tmp_path / "ops.toml", tmp_path / "ops", remote, s3_endpoint)
    _twotower(ops, "artifacts", "rollback", D1)
    assert text("artifacts/two_tower/LATEST").strip() == D1
    assert files(f"artifacts/two_tower/{D2}"), "rollback must not delete the newer version"

    # A day whose logs never landed in the store: a clear error naming the object-store
    # location, nothing published, LATEST untouched.
    missing = "2026-11-05"
    failed = _twotower(runner, "run", "--ds", missing, rc=1)
    where = f"s3a://{bucket}/{PREFIX}/data/raw/impressions/ds={missing}"
    assert where in failed.stderr and "impressions" in failed.stderr, failed.stderr[-3000:]
    assert not files(f"artifacts/two_tower/{missing}")
    assert text("artifacts/two_tower/LATEST").strip() == D1

    serving = _write_config(tmp_path / "serving.toml", tmp_path / "serving", remote, s3_endpoint)
    user = pq.read_table(f"{base}/data/raw/users/ds={D1}", filesystem=fs, columns=["user_id"]).column(0)[0].as_py()
    out = _twotower(serving, "query", "--user-id", user, "-k", "5", "--json").stdout
    import json

    answer = json.loads(out)
    assert answer["version"] == D1
    assert len(answer["items"]) == 5
    # The serving host pulled exactly LATEST's version, not the whole model root.
    pulled = Layout(load_config(serving, env={}).paths).model_root
    assert sorted(p.name for p in pulled.iterdir() if not p.name.startswith(".")) == sorted(["LATEST", D1])
