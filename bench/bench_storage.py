"""The daily run on an object store against the same run on local files (the reference).

Simulates a preset into a local root, and with the same seed into an S3 bucket (moto's S3
server on loopback, in this process: the store of ``tests/test_object_store.py``), then runs
``twotower run --ds D`` for each in its own process, as a user would, with the same config but
for ``[paths] remote``. Reports for both: wall time, peak RSS of the run's process tree, the
time of each step (from the run's own "step ... done" log lines, so a step's time includes its
pulls and pushes), and the ratio store/local; plus what the bucket holds afterwards.

Read the ratio as the cost of this design (Spark through s3a, the other steps through a
synced working copy) on this machine, not as S3's speed: moto is one Python process that
shares the 2 cores with the pipeline, and its CPU time is not in the measured process tree.
Spark's S3A connector is the test's hadoop-aws 3.3.1 (``scripts/fetch_s3a_test_jars.sh``).

    .venv/bin/python bench/bench_storage.py --preset small      # ~8 min on 2 cores

Not part of ``make test``. Prints a table and a JSON summary (or writes --json-out).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    REPO,
    fmt_mb,
    fmt_s,
    load_average,
    machine_info,
    python_cmd,
    run_measured,
    utc_now,
    write_json,
)

JARS = REPO / "var" / "cache" / "s3a-jars"
# The connector-3.3 settings of tests/test_object_store.py (Hadoop 3.4 writes these as "60s"...).
S3A_COMPAT = {
    "spark.hadoop.fs.s3a.threads.keepalivetime": "60",
    "spark.hadoop.fs.s3a.connection.establish.timeout": "30000",
    "spark.hadoop.fs.s3a.connection.timeout": "200000",
    "spark.hadoop.fs.s3a.multipart.purge.age": "86400",
    "spark.hadoop.fs.s3a.connection.ttl": "300000",
    "spark.hadoop.fs.s3a.connection.request.timeout": "0",
    "spark.hadoop.fs.s3a.retry.interval": "500",
    "spark.hadoop.fs.s3a.retry.throttle.interval": "100",
    "spark.hadoop.fs.s3a.assumed.role.session.duration": "1800",
    "spark.hadoop.fs.s3a.aws.credentials.provider": "com.amazonaws.auth.EnvironmentVariableCredentialsProvider",
}
_DONE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO twotower\.pipeline: step (\S+) for ds=")


def _config(root: Path, preset: str, days: int, remote: str, endpoint: str) -> Path:
    jars = ",".join(str(JARS / j) for j in ("hadoop-aws-3.3.1.jar", "aws-java-sdk-bundle-1.11.901.jar"))
    conf = {"spark.jars": jars, **S3A_COMPAT} if remote else {}
    lines = [
        "[paths]",
        f'data_root = "{root / "data"}"',
        f'artifact_root = "{root / "artifacts"}"',
        f'reports_root = "{root / "reports"}"',
        *([f'remote = "{remote}"', f's3_endpoint = "{endpoint}"'] if remote else []),
        "[spark.conf]",
        *(f'"{k}" = "{v}"' for k, v in conf.items()),
        "[simulator]",
        f'preset = "{preset}"',
        f"days = {days}",
    ]
    path = root.with_suffix(".toml")
    path.write_text("\n".join(lines) + "\n")
    return path


def _step_seconds(log: str, started: dt.datetime) -> dict[str, float]:
    """Seconds per step from consecutive "step X ... done" lines (the first from the start)."""
    out, last = {}, started
    for line in log.splitlines():
        m = _DONE.match(line)
        if m:
            t = dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f")
            out[m.group(2)] = round((t - last).total_seconds(), 1)
            last = t
    return out


def _run_day(config: Path, ds: str, log: Path) -> dict[str, Any]:
    env = {"PYSPARK_PYTHON": sys.executable, "TQDM_DISABLE": "1"}
    started = dt.datetime.now()
    res = run_measured(python_cmd("-m", "twotower.cli", "--config", str(config), "run", "--ds", ds), env=env, log_path=log)
    res.pop("stdout")
    if res["rc"] != 0:
        raise SystemExit(f"twotower run failed (rc={res['rc']}): see {log}")
    return {"wall_s": res["wall_s"], "peak_process_rss_mb": res.get("peak_process_rss_mb"),
            "steps_s": _step_seconds(log.read_text(), started)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="small")
    p.add_argument("--days", type=int, default=7, help="days to simulate (the default window); the run is for the last")
    p.add_argument("--root", type=Path, default=REPO / "var" / "bench" / "storage")
    p.add_argument("--json-out", type=Path)
    args = p.parse_args(argv)

    if not (JARS / ".fetched").exists():
        subprocess.run(["bash", str(REPO / "scripts" / "fetch_s3a_test_jars.sh"), str(JARS)], check=True,
                       env={**os.environ, "PYTHON": sys.executable})
    import logging

    import pyarrow.fs as pafs
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
                      AWS_EC2_METADATA_DISABLED="true")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        fs = pafs.S3FileSystem(endpoint_override=endpoint, region="us-east-1", allow_bucket_creation=True)
        fs.create_dir("bench")
        shutil.rmtree(args.root, ignore_errors=True)
        args.root.mkdir(parents=True)
        start = dt.date(2026, 11, 1)
        ds = (start + dt.timedelta(days=args.days - 1)).isoformat()
        configs = {
            "local": _config(args.root / "local", args.preset, args.days, "", ""),
            "object_store": _config(args.root / "store", args.preset, args.days, "s3://bench/twotower", endpoint),
        }
        result: dict[str, Any] = {"preset": args.preset, "ds": ds, "machine": machine_info(), "started": utc_now()}
        for name, config in configs.items():
            sim = run_measured(python_cmd("-m", "twotower.cli", "--config", str(config), "simulate",
                                          "--start", start.isoformat()), log_path=args.root / f"{name}-simulate.log")
            if sim["rc"] != 0:
                raise SystemExit(f"simulate failed for {name}: see {args.root / f'{name}-simulate.log'}")
            result[name] = {"simulate_s": sim["wall_s"], **_run_day(config, ds, args.root / f"{name}-run.log")}
            print(f"{name:13} simulate {fmt_s(sim['wall_s'])}, run {fmt_s(result[name]['wall_s'])}, "
                  f"peak process {fmt_mb(result[name]['peak_process_rss_mb'])}  (load {load_average()})", flush=True)
        infos = fs.get_file_info(pafs.FileSelector("bench/twotower", recursive=True))
        files = [i for i in infos if i.type == pafs.FileType.File]
        result["bucket"] = {"objects": len(files), "mb": round(sum(i.size for i in files) / 2**20, 1)}
    finally:
        server.stop()

    local, store = result["local"], result["object_store"]
    result["ratio_run"] = round(store["wall_s"] / local["wall_s"], 2)
    print(f"\n{'step':24}{'local':>10}{'store':>10}{'ratio':>8}")
    for step, secs in local["steps_s"].items():
        other = store["steps_s"].get(step)
        ratio = f"{other / secs:.2f}" if other and secs else "-"
        print(f"{step:24}{secs:>9.1f}s{(other or 0):>9.1f}s{ratio:>8}")
    print(f"{'whole run':24}{local['wall_s']:>9.1f}s{store['wall_s']:>9.1f}s{result['ratio_run']:>8.2f}")
    print(f"bucket after the run: {result['bucket']['objects']} objects, {result['bucket']['mb']} MB")
    if args.json_out:
        write_json(args.json_out, result)
    else:
        import json

        print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
