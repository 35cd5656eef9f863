"""ETL benchmark: every Spark ETL stage on a simulated day, timed against a DuckDB reference
implementation of the same transforms (bench/duckdb_reference.py) in the same run.

    .venv/bin/python bench/bench_etl.py [--preset medium] [--window-days 2] [--root DIR]

Simulates ``window_days`` days of the preset under ``--root`` if they are not there yet, deletes
earlier ETL outputs (so both engines do the full work, e.g. click positives and per-day hard
negative outputs of every window day; ``--steady-state`` instead prepares the previous day
untimed in both engines, so the hard-negative stage does one day's incremental work), then for each stage runs Spark (``etl.jobs.run_stage``, local[2], the stage's statistics
included) and DuckDB (threads=2) and prints both wall times and the ratio. Goal: Spark <= 1.5x
DuckDB. Beside each stage it prints the Spark jobs the stage ran and two floors:

* *copy floor*: Spark reading the stage's own outputs back and writing them again (one job
  per table);
* *I/O floor*: the least any Spark implementation of the stage pays, whatever its transform:
  writing its outputs from memory (cached, one job per table) plus scanning the traffic-sized
  raw inputs it must read (``io.read_raw_days`` with the contract's row rules and the stage's
  own row filter, only the columns it uses, into Spark's ``noop`` sink). Every other input is
  counted as free, so the floor is low, never high.

When the I/O floor summed over the stages exceeds 1.5x DuckDB's whole ETL, the goal is out of
reach for Spark on this machine, however the stages are written. The Spark session is warmed
up first (JVM start and first-query compilation are reported separately, not charged to a
stage). Peak RSS of the process tree (driver, JVM,
workers) is sampled. Not part of ``make test``; run it on a quiet machine and read the load
average it prints.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


class RssSampler:
    """Peak RSS (MB) of this process and its children (the Spark JVM), sampled every 0.5 s."""

    def __init__(self) -> None:
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.is_set():
            total = 0.0
            for p in [me, *me.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    total += p.memory_info().rss / 2**20
            self.peak_mb = max(self.peak_mb, total)
            self._stop.wait(0.5)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def _rewrite_seconds(spark, layout, tables: tuple[str, ...], scratch: Path, *, from_memory: bool) -> float:
    """Seconds Spark takes to write every partition of ``tables`` the stage wrote again (one job
    per table), either reading them from Parquet within the timing (the *copy floor*) or from
    memory, cached before the timing starts (the write half of the *I/O floor*)."""
    frames = []
    for table in tables:
        df = spark.read.parquet(*[str(layout.path_for(table, d)) for d in layout.partitions(table)])
        if from_memory:
            df = df.cache()
            df.count()
        frames.append((table, df))
    t0 = time.perf_counter()
    for table, df in frames:
        df.write.mode("overwrite").parquet(str(scratch / table))
    seconds = time.perf_counter() - t0
    for _, df in frames:
        df.unpersist()
    shutil.rmtree(scratch, ignore_errors=True)
    return seconds


def _input_scans(spark, cfg, stage: str, ds: str, steady_state: bool = False):
    """The traffic-sized raw reads ``stage`` cannot avoid (DataFrames to scan), or []."""
    from pyspark.sql import functions as F

    from core.context import RunContext
    from etl import io
    from etl.hard_negatives import CUT_STAGES, stage_proves_hard_negatives

    ctx = RunContext.build(cfg, ds)
    win = ctx.window
    if stage == "click_positives":
        # The clicked impressions of the window's days (build_click_positives's columns).
        imp, _ = io.read_raw_days(spark, ctx, "impressions", list(win.days))
        return [
            imp.filter(F.col("clicked")).select("request_id", "item_id", "user_id", "ts", "liked", "event_ds")
        ]
    if stage == "hard_negatives":
        # A first run computes every window day's per-day outputs; a steady-state day only
        # its own (the stage's own exact-string proof, when on, reads the window's impressions).
        own = [ds] if steady_state else list(win.days)
        ranking, _ = io.read_raw_days(spark, ctx, "ranking_log", own)
        proof = stage_proves_hard_negatives(cfg)
        shown, _ = io.read_raw_days(spark, ctx, "impressions", list(win.days) if proof else own)
        cuts = ranking.filter(F.col("stage").isin(*CUT_STAGES) & ~F.col("passed"))
        return [
            cuts.select("request_id", "user_id", "item_id", "stage", "event_ds"),
            shown.select("user_id", "item_id"),
        ]
    return []


def _input_floor(spark, cfg, stage: str, ds: str, steady_state: bool = False) -> float:
    """Seconds Spark takes to scan the stage's unavoidable raw inputs (``noop`` sink)."""
    t0 = time.perf_counter()
    for df in _input_scans(spark, cfg, stage, ds, steady_state):
        df.write.format("noop").mode("overwrite").save()
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="medium")
    ap.add_argument(
        "--window-days", type=int, default=2, help="ETL window (1 training day + 1 eval day by default)"
    )
    ap.add_argument("--start", default="2026-11-01")
    ap.add_argument(
        "--root", default="/tmp/twotower-bench-etl", help="data root for the simulated days and outputs"
    )
    ap.add_argument(
        "--steady-state",
        action="store_true",
        help="simulate one more day and, untimed, run the previous day's click_positives and "
        "hard_negatives in both engines first, so the timed day computes only its own per-day "
        "hard-negative outputs and assembles the window from stored ones (the daily cost)",
    )
    ap.add_argument("--driver-memory", default="4g")
    ap.add_argument("--stages", default=None, help="comma-separated subset of stages")
    ap.add_argument("--shuffle-partitions", type=int, default=8)
    ap.add_argument(
        "--spark-conf", action="append", default=[], metavar="KEY=VALUE", help="extra Spark settings"
    )
    args = ap.parse_args()

    import datetime as dt

    import logsim
    from bench.duckdb_reference import DuckDbEtl
    from core.config import SparkConfig
    from core.context import RunContext
    from core.spark import spark_session
    from etl.hard_negatives import stage_proves_hard_negatives
    from etl.jobs import ETL_STAGES, STAGE_OUTPUTS, run_stage
    from storage.layout import Layout
    from tests.conftest import make_config

    root = Path(args.root) / args.preset
    cfg = make_config(
        root, etl={"window_days": args.window_days}, spark={"driver_memory": args.driver_memory}
    )
    n_days = args.window_days + (1 if args.steady_state else 0)
    ds = (dt.date.fromisoformat(args.start) + dt.timedelta(days=n_days - 1)).isoformat()
    layout = Layout(cfg.paths)
    if layout.partitions("impressions")[-1:] != [ds]:
        t = time.perf_counter()
        logsim.simulate(cfg, args.preset, args.start, n_days, 7)
        print(f"simulated {n_days} {args.preset} day(s) in {time.perf_counter() - t:.1f} s")
    shutil.rmtree(layout.data_root / "etl", ignore_errors=True)
    shutil.rmtree(root / "duckdb", ignore_errors=True)
    stages = args.stages.split(",") if args.stages else list(ETL_STAGES)

    print(f"load average before: {os.getloadavg()}")
    results = []
    with RssSampler() as rss:
        t = time.perf_counter()
        spark = spark_session(
            SparkConfig(
                master="local[2]",
                shuffle_partitions=args.shuffle_partitions,
                driver_memory=args.driver_memory,
                conf=dict(kv.split("=", 1) for kv in args.spark_conf),
            ),
            "bench-etl",
        )
        # Warm-up: JVM start and the first compiled query are not charged to a stage.
        spark.read.parquet(str(layout.path_for("items", ds))).count()
        warmup = time.perf_counter() - t
        # Whether the Spark stage proves its hard negatives itself (the reference then does too).
        proof = stage_proves_hard_negatives(cfg)
        if args.steady_state:
            # Yesterday's run, untimed: the per-day outputs of every earlier window day exist.
            t = time.perf_counter()
            prev = (dt.date.fromisoformat(ds) - dt.timedelta(days=1)).isoformat()
            for stage in ("click_positives", "hard_negatives"):
                run_stage(RunContext.build(cfg, prev), spark, stage)
            before = DuckDbEtl(
                layout.data_root / "raw", root / "duckdb", prev, args.window_days, threads=2, seed=cfg.etl.seed,
                verify_hard_negatives=proof,
            )
            before.click_positives()
            before.hard_negatives()
            print(f"previous day {prev} prepared in both engines in {time.perf_counter() - t:.1f} s (untimed)")
        duck = DuckDbEtl(
            layout.data_root / "raw", root / "duckdb", ds, args.window_days, threads=2, seed=cfg.etl.seed,
            verify_hard_negatives=proof,
        )
        for stage in stages:
            t = time.perf_counter()
            stats = run_stage(RunContext.build(cfg, ds), spark, stage).to_dict()
            spark_s = time.perf_counter() - t
            jobs = len(spark.sparkContext.statusTracker().getJobIdsForGroup(f"etl-{stage}"))
            outputs = STAGE_OUTPUTS[stage]
            floor_s = _rewrite_seconds(spark, layout, outputs, root / "floor", from_memory=False)
            io_floor_s = _rewrite_seconds(spark, layout, outputs, root / "floor", from_memory=True)
            io_floor_s += _input_floor(spark, cfg, stage, ds, args.steady_state)
            duck_s = duck.run_stage(stage)
            results.append(
                {
                    "stage": stage,
                    "spark_s": spark_s,
                    "duckdb_s": duck_s,
                    "ratio": spark_s / duck_s,
                    "spark_jobs": jobs,
                    "spark_copy_floor_s": floor_s,
                    "floor_ratio": floor_s / duck_s,
                    "spark_io_floor_s": io_floor_s,
                }
            )
            print(
                f"{stage:22s} spark {spark_s:7.2f} s ({jobs:2d} jobs)   duckdb {duck_s:7.2f} s   "
                f"ratio {spark_s / duck_s:5.2f}x   copy floor {floor_s:5.2f} s   I/O floor {io_floor_s:5.2f} s",
                flush=True,
            )
            if stage == "hard_negatives":
                print(f"{'':22s} rows {stats['rows']:,} by difficulty {stats['by_difficulty']}")
        spark.stop()
    tot_s = sum(r["spark_s"] for r in results)
    tot_d = sum(r["duckdb_s"] for r in results)
    tot_f = sum(r["spark_copy_floor_s"] for r in results)
    tot_io = sum(r["spark_io_floor_s"] for r in results)
    print(f"{'copy floor':22s} spark {tot_f:7.2f} s = {tot_f / tot_d:5.2f}x DuckDB's whole ETL")
    print(
        f"{'I/O floor':22s} spark {tot_io:7.2f} s = {tot_io / tot_d:5.2f}x DuckDB's whole ETL"
        f" ({'above' if tot_io > 1.5 * tot_d else 'below'} the 1.5x goal)"
    )
    print(
        f"{'total':22s} spark {tot_s:7.2f} s   duckdb {tot_d:7.2f} s   ratio {tot_s / tot_d:5.2f}x (goal <= 1.5x)"
    )
    print(
        f"spark session start + warm-up: {warmup:.1f} s; peak RSS of the process tree: {rss.peak_mb:,.0f} MB"
    )
    print(f"load average after: {os.getloadavg()}")
    print(
        json.dumps(
            {
                "preset": args.preset,
                "window_days": args.window_days,
                "steady_state": args.steady_state,
                "ds": ds,
                "stages": results,
                "spark_total_s": tot_s,
                "duckdb_total_s": tot_d,
                "spark_copy_floor_total_s": tot_f,
                "spark_io_floor_total_s": tot_io,
                "ratio": tot_s / tot_d,
                "spark_warmup_s": warmup,
                "peak_rss_mb": rss.peak_mb,
                "load_average": os.getloadavg(),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
