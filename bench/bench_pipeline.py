"""The whole daily pipeline on simulated presets: wall time per step and peak memory per process.

For each preset: simulate ``etl.window_days`` days (data preparation, reported separately),
run the per-day ETL outputs of the days before D (what the previous daily runs left behind, so the
measured run is a steady-state day), then run every step of ``twotower.pipeline`` for the last
day D, each in its OWN process, as Airflow's LocalExecutor runs each task of the DAG:

    validate_raw, etl (every stage, one Spark session), validate_outputs, train, evaluate,
    train_final, build_index, publish, report  (twotower.pipeline.STEPS, the DAG's tasks)

Each step process is measured from outside: wall time, and the peak RSS of every process in its
tree (the Python driver, the Spark JVM it starts, PySpark workers), sampled every 0.25 s. The
config is the shipped ``twotower.toml`` (local[*], 4g driver) with the paths moved to a scratch
root, plus Spark event logging, which gives the per-Spark-stage breakdown of the slowest ETL
stage (task time, GC, shuffle, spill). Reference: a bare SparkSession start in its own process
(the fixed per-task cost a distributed scheduler pays per Spark step).

    .venv/bin/python bench/bench_pipeline.py --presets small            # ~5 min on 2 cores
    .venv/bin/python bench/bench_pipeline.py --presets small,medium --json-out out.json

Not part of ``make test``. Prints one line per step and a JSON summary (or writes --json-out).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    REPO,
    fmt_mb,
    fmt_s,
    last_json_object,
    load_average,
    python_cmd,
    run_measured,
    write_json,
)

# Goals (reported against, never asserted): a medium day end to end, the largest process,
# and the two validation steps together.
GOAL_MEDIUM_WALL_S = 5 * 60
GOAL_PROCESS_MB = 8 * 1024
GOAL_MEDIUM_GATES_S = 60

SPARK_STEPS = {"validate_raw", "etl", "etl_stage", "validate_outputs"}

# One pipeline step in its own process: load the config file, (for Spark steps) start the
# session first so its start-up is timed apart, run the step, print the result as JSON.
_STEP_CHILD = r"""
import json, logging, os, sys, time
os.environ.setdefault("TQDM_DISABLE", "1")
logging.basicConfig(level=logging.WARNING)
from core.config_load import load_config
from core.context import RunContext
from twotower import pipeline
config, step, ds, kw = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
cfg = load_config(config)
startup = 0.0
if step in {spark_steps!r}:
    t = time.perf_counter()
    pipeline._spark(RunContext.build(cfg, ds))
    startup = time.perf_counter() - t
t = time.perf_counter()
out = getattr(pipeline, step)(cfg, ds, **kw)
inner = time.perf_counter() - t
stats = {{k: v.to_dict() for k, v in out.items()}} if isinstance(out, dict) else out.to_dict()
print(json.dumps({{"startup_s": startup, "inner_s": inner, "stats": stats}}, default=str))
"""

_SESSION_CHILD = r"""
import json, sys, time
t = time.perf_counter()
from core.config_load import load_config
from core.spark import spark_session
cfg = load_config(sys.argv[1])
s = spark_session(cfg.spark)
s.range(1).count()
start = time.perf_counter() - t
s.stop()
print(json.dumps({"session_start_s": start}))
"""


def write_bench_config(root: Path, event_dir: Path | None, spark_conf: dict[str, str] | None = None) -> Path:
    """``twotower.toml`` with its [paths] moved under ``root`` (+ Spark event logging and
    ``spark_conf`` overrides, which a result then names)."""
    text = (REPO / "twotower.toml").read_text()
    for key, sub in (("data_root", "data"), ("artifact_root", "artifacts"), ("reports_root", "reports")):
        text, n = re.subn(rf'(?m)^{key}\s*=.*$', f'{key} = "{root / sub}"', text)
        if n != 1:
            raise SystemExit(f"twotower.toml: expected one {key} line in [paths]")
    if event_dir is not None:
        event_dir.mkdir(parents=True, exist_ok=True)
        text += (
            "\n# added by bench/bench_pipeline.py: Spark event logs for the per-stage breakdown\n"
            "[spark.conf]\n"
            '"spark.eventLog.enabled" = "true"\n'
            f'"spark.eventLog.dir" = "file://{event_dir}"\n'
            '"spark.eventLog.compress" = "false"\n'
        )
    if spark_conf:
        if event_dir is None:
            text += "\n[spark.conf]\n"
        text += "".join(f'"{k}" = "{v}"  # bench override\n' for k, v in spark_conf.items())
    path = root / "twotower.bench.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _step(config: Path, step: str, ds: str, logs: Path, name: str, profile: Path | None = None, **kw: Any) -> dict[str, Any]:
    code = _STEP_CHILD.format(spark_steps=sorted(SPARK_STEPS))
    if profile is not None:  # the same child under cProfile (a rerun of a day overwrites it)
        child = logs / "step_child.py"
        child.write_text(code)
        cmd = python_cmd("-m", "cProfile", "-o", str(profile), str(child), str(config), step, ds, json.dumps(kw))
    else:
        cmd = python_cmd("-c", code, str(config), step, ds, json.dumps(kw))
    res = run_measured(cmd, log_path=logs / f"{name}.log")
    stdout = res.pop("stdout")
    out: dict[str, Any] = {"step": name, **res}
    if res["rc"] == 0:
        child = last_json_object(stdout)
        out["spark_startup_s"] = round(child["startup_s"], 2)
        out["inner_s"] = round(child["inner_s"], 2)
        out["stats"] = _small_stats(child["stats"])
    else:
        text = (logs / f"{name}.log").read_text()
        out["error_tail"] = text[-3000:]
        # The exception's message line (a Java stack trace can push it out of the tail).
        out["error"] = next((ln.strip() for ln in reversed(text.splitlines()) if "Exception: " in ln or "Error: " in ln), None)
    return out


def _small_stats(stats: Any) -> Any:
    """Keep the scalar statistics of a step (row counts, seconds), drop big nested blobs."""
    if not isinstance(stats, dict):
        return stats
    return {k: v for k, v in stats.items() if isinstance(v, int | float | str | bool) or v is None}


def simulate(config: Path, preset: str, start: str, days: int, logs: Path) -> dict[str, Any]:
    res = run_measured(
        python_cmd("-m", "twotower.cli", "--config", str(config), "simulate", "--preset", preset,
                   "--start", start, "--days", str(days), "--seed", "7", "--json"),
        log_path=logs / "simulate.log",
    )
    stdout = res.pop("stdout")
    if res["rc"] != 0:
        raise SystemExit(f"simulation failed; see {logs / 'simulate.log'}")
    stats = last_json_object(stdout)
    t = stats["totals"]
    return {**res, "impressions": t["impressions"], "ranking_log": t["ranking_log"], "clicks": t["clicks"],
            "last_day": stats["per_day"][-1]}


def spark_stage_breakdown(event_dir: Path, top: int = 8) -> list[dict[str, Any]]:
    """Per Spark application (one per step process): its slowest Spark stages from the event log.

    Each stage: wall time, summed task run time (CPU-ish), JVM GC time, shuffle read/write and
    spill bytes, and its call site, which says which operator of the job it is.
    """
    apps = []
    for app in sorted(event_dir.glob("*")):
        # Spark 4 writes rolling event logs: a directory eventlog_v2_<app> of events_<n>_<app> files.
        files = sorted(app.glob("events_*"), key=lambda f: int(f.name.split("_")[1])) if app.is_dir() else [app]
        stages: dict[tuple[int, int], dict[str, Any]] = {}
        group = None
        for line in (line for f in files for line in f.open()):
            try:
                ev = json.loads(line)
            except json.JSONDecodeError:  # the last line of a log still being written
                continue
            kind = ev.get("Event")
            if kind == "SparkListenerJobStart" and group is None:
                group = (ev.get("Properties") or {}).get("spark.jobGroup.id")
            elif kind == "SparkListenerStageCompleted":
                info = ev["Stage Info"]
                acc = {a.get("Name"): a.get("Value") for a in info.get("Accumulables", [])}
                wall = (info.get("Completion Time", 0) - info.get("Submission Time", 0)) / 1000
                stages[(info["Stage ID"], info.get("Stage Attempt ID", 0))] = {
                    "stage_id": info["Stage ID"],
                    "name": info.get("Stage Name", "")[:90],
                    "tasks": info.get("Number of Tasks"),
                    "wall_s": round(wall, 2),
                    "task_run_s": round(float(acc.get("internal.metrics.executorRunTime", 0) or 0) / 1000, 2),
                    "task_cpu_s": round(float(acc.get("internal.metrics.executorCpuTime", 0) or 0) / 1e9, 2),
                    "gc_s": round(float(acc.get("internal.metrics.jvmGCTime", 0) or 0) / 1000, 2),
                    "shuffle_read_mb": round(float(acc.get("internal.metrics.shuffle.read.remoteBytesRead", 0) or 0)
                                             / 2**20 + float(acc.get("internal.metrics.shuffle.read.localBytesRead", 0) or 0) / 2**20, 1),
                    "shuffle_write_mb": round(float(acc.get("internal.metrics.shuffle.write.bytesWritten", 0) or 0) / 2**20, 1),
                    "spill_mb": round(float(acc.get("internal.metrics.diskBytesSpilled", 0) or 0) / 2**20, 1),
                    "input_mb": round(float(acc.get("internal.metrics.input.bytesRead", 0) or 0) / 2**20, 1),
                }
        if not stages:
            continue
        vals = list(stages.values())
        apps.append({
            "app": app.name,
            "job_group": group,
            "stages": len(vals),
            "sum_stage_wall_s": round(sum(s["wall_s"] for s in vals), 1),
            "task_run_s": round(sum(s["task_run_s"] for s in vals), 1),
            "task_cpu_s": round(sum(s["task_cpu_s"] for s in vals), 1),
            "gc_s": round(sum(s["gc_s"] for s in vals), 1),
            "shuffle_write_mb": round(sum(s["shuffle_write_mb"] for s in vals), 1),
            "spill_mb": round(sum(s["spill_mb"] for s in vals), 1),
            "top_stages": sorted(vals, key=lambda s: -s["wall_s"])[:top],
        })
    return apps


def profile_top(path: Path, n: int = 25) -> list[dict[str, Any]]:
    """The ``n`` functions with the most self time in a cProfile dump."""
    import pstats

    st = pstats.Stats(str(path))
    rows = []
    for (file, line, func), (_cc, nc, tt, ct, _callers) in st.stats.items():  # type: ignore[attr-defined]
        short = "/".join(Path(file).parts[-2:]) if file != "~" else ""
        rows.append({"function": f"{short}:{line}({func})", "calls": nc, "tottime_s": round(tt, 2), "cumtime_s": round(ct, 2)})
    return sorted(rows, key=lambda r: -r["tottime_s"])[:n]


def bench_preset(preset: str, args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    from core.config_load import load_config

    root = scratch / preset
    resume = args.resume_from
    if root.exists() and not resume:
        shutil.rmtree(root)
    logs = root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    events = root / "spark-events"
    overrides = dict(kv.split("=", 1) for kv in args.spark_conf)
    config = write_bench_config(root, events if not args.no_event_log else None, overrides)
    cfg = load_config(config)
    days, start = cfg.etl.window_days, args.start
    import datetime as dt

    ds = (dt.date.fromisoformat(start) + dt.timedelta(days=days - 1)).isoformat()
    from storage.layout import Layout

    result: dict[str, Any] = {"preset": preset, "ds": ds, "window_days": days,
                              "data_root": str(cfg.paths.data_root), "model_dir": str(Layout(cfg.paths).model_dir(ds)),
                              "config": {
        "spark_master": cfg.spark.master, "driver_memory": cfg.spark.driver_memory,
        "shuffle_partitions": cfg.spark.shuffle_partitions, "epochs": cfg.training.epochs,
        "batch_size": cfg.training.batch_size}}
    result["spark_conf_overrides"] = overrides
    print(f"\n=== {preset}: simulate {days} days from {start}, then the daily run for ds={ds} "
          f"(load {load_average()}) ===", flush=True)
    from twotower.pipeline import STEPS

    # The DAG's tasks, one process each (the ETL stages share one task and one Spark session).
    plan: list[tuple[str, str, dict[str, Any]]] = [(s, s, {}) for s in STEPS]
    if resume:
        # Continue an interrupted run in the same scratch: keep the steps before ``resume``.
        names = [p[0] for p in plan]
        if resume not in names or not args.json_out or not args.json_out.exists():
            raise SystemExit(f"--resume-from {resume}: needs a step name ({', '.join(names)}) and the earlier --json-out")
        at = names.index(resume)
        if at <= names.index("publish"):
            # The scratch's artifact root holds only what the interrupted attempt published for
            # ds: left in place, the rerun would warm-start from it (train) or be gated against it
            # (publish) instead of repeating a first daily run.
            shutil.rmtree(cfg.paths.artifact_root, ignore_errors=True)
        if at <= names.index("train"):
            shutil.rmtree(Layout(cfg.paths).model_dir(ds), ignore_errors=True)
        before = json.loads(args.json_out.read_text())["presets"][preset]
        kept = [s for s in before["steps"] if names.index(s["step"]) < names.index(resume) and s["rc"] == 0]
        result.update(simulate=before["simulate"], setup=before["setup"], resumed_from=resume,
                      earlier_attempt_failed_steps=[s for s in before["steps"] if s["rc"] != 0])
        n_spark = sum(1 for s in kept if s["step"] in SPARK_STEPS)
        for app in sorted(events.glob("*"))[n_spark:]:  # failed attempts' applications
            shutil.rmtree(app) if app.is_dir() else app.unlink()
        return _daily_run(result, plan, kept, resume, config, ds, logs, events, root, args, preset, days)

    cache = args.raw_cache / f"{preset}-{start}-{days}d-seed7" if args.raw_cache else None
    if cache is not None and (cache / "data").exists():
        # Hard links: the pipeline never modifies a raw file in place (rewrites swap directories).
        shutil.copytree(cache / "data", root / "data", symlinks=True, copy_function=os.link)
        result["simulate"] = json.loads((cache / "simulate.json").read_text())
        result["simulate"]["from_cache"] = str(cache)
        print(f"simulate: reused {cache}", flush=True)
    else:
        result["simulate"] = simulate(config, preset, start, days, logs)
        if cache is not None:
            cache.mkdir(parents=True, exist_ok=True)
            shutil.copytree(root / "data", cache / "data")
            write_json(cache / "simulate.json", result["simulate"])
    sim = result["simulate"]
    print(f"simulate: {sim['impressions']:,} impressions + {sim['ranking_log']:,} ranking rows in "
          f"{fmt_s(sim['wall_s'])}, peak process {fmt_mb(sim['peak_process_rss_mb'])}", flush=True)

    # Steady state: the previous daily runs have written the earlier days' per-day outputs
    # (click positives, hard-negative candidates and shown pairs; docs/etl.md).
    prev = (dt.date.fromisoformat(ds) - dt.timedelta(days=1)).isoformat()
    setup = _step(config, "etl_stage", prev, logs, "setup_click_positives_before_ds", stage="click_positives")
    if setup["rc"] == 0:
        more = _step(config, "etl_stage", prev, logs, "setup_hard_negatives_before_ds", stage="hard_negatives")
        setup = {**setup, "wall_s": round(setup["wall_s"] + more["wall_s"], 2), "rc": more["rc"]}
    result["setup"] = setup
    print(f"setup (per-day outputs of the {days - 1} earlier days, not part of the daily run): "
          f"{fmt_s(setup['wall_s'])} rc={setup['rc']}", flush=True)
    shutil.rmtree(events, ignore_errors=True)  # the setup's Spark application is not part of the breakdown
    events.mkdir(exist_ok=True)

    return _daily_run(result, plan, [], None, config, ds, logs, events, root, args, preset, days)


def _daily_run(result, plan, steps, resume, config, ds, logs, events, root, args, preset, days) -> dict[str, Any]:
    """Run the plan's steps (from ``resume`` on, after the kept ``steps``), each in its own process."""
    start_at = [p[0] for p in plan].index(resume) if resume else 0
    t0 = time.perf_counter() - sum(s["wall_s"] for s in steps)
    for name, step, kw in plan[start_at:]:
        res = _step(config, step, ds, logs, name, **kw)
        steps.append(res)
        if args.json_out:  # partial results after every step: a killed run still leaves its figures
            partial = {**result, "steps": steps, "completed": False, "partial": True}
            prev = json.loads(args.json_out.read_text()) if args.json_out.exists() else {"benchmark": "pipeline", "presets": {}}
            prev.setdefault("presets", {})[preset] = partial
            write_json(args.json_out, prev)
        print(f"  {name:<26}{fmt_s(res['wall_s']):>10}  cpu {res['cpu_s']:>7.0f} s  spark start {fmt_s(res.get('spark_startup_s')):>7}  "
              f"peak process {fmt_mb(res['peak_process_rss_mb']):>8} ({res['peak_process']})  "
              f"tree {fmt_mb(res['peak_tree_rss_mb']):>8}  load {res['load_after'][0]:.1f}"
              + ("" if res["rc"] == 0 else f"  FAILED rc={res['rc']} (log {logs / (name + '.log')})"), flush=True)
        if res["rc"] != 0:
            break
    total = time.perf_counter() - t0
    result["steps"] = steps
    result["daily_run_wall_s"] = round(total, 1)
    result["completed"] = all(s["rc"] == 0 for s in steps) and len(steps) == len(plan)
    result["max_process_rss_mb"] = max(s["peak_process_rss_mb"] for s in steps)
    result["spark_startup_s_total"] = round(sum(s.get("spark_startup_s") or 0 for s in steps), 1)
    result["daily_run_cpu_s"] = round(sum(s["cpu_s"] for s in steps), 1)
    slowest = max(steps, key=lambda s: s["wall_s"])
    result["slowest_step"] = slowest["step"]
    if events.exists():
        result["spark_breakdown"] = spark_stage_breakdown(events)
    python_steps = [s for s in steps if s["rc"] == 0 and s["step"] in args.profile.split(",")]
    for s in python_steps:
        # A second run of the step under cProfile (not the measured one: profiling slows Python).
        name, step, kw = next(x for x in plan if x[0] == s["step"])
        prof = root / f"{name}.prof"
        rerun = _step(config, step, ds, logs, f"{name}.profiled", profile=prof, **kw)
        result.setdefault("profiles", {})[name] = {"wall_s_profiled": rerun["wall_s"], "rc": rerun["rc"],
                                                   "top": profile_top(prof) if prof.exists() else []}
        print(f"  profile of {name} (rerun under cProfile, {fmt_s(rerun['wall_s'])}):", flush=True)
        for row in result["profiles"][name]["top"][:12]:
            print(f"    {row['tottime_s']:>8.1f} s self {row['cumtime_s']:>8.1f} s cum  {row['calls']:>9}  {row['function']}", flush=True)
    print(f"  => daily run {fmt_s(total)} ({'completed' if result['completed'] else 'FAILED'}), "
          f"largest process {fmt_mb(result['max_process_rss_mb'])}, Spark session starts "
          f"{fmt_s(result['spark_startup_s_total'])} of it; slowest step {slowest['step']} "
          f"({fmt_s(slowest['wall_s'])})", flush=True)
    if preset == "medium":
        gates = sum(s["wall_s"] for s in steps if s["step"] in ("validate_raw", "validate_outputs"))
        result["validation_wall_s"] = round(gates, 1)
        result["goals"] = {
            "wall_under_5_min": result["completed"] and total < GOAL_MEDIUM_WALL_S,
            "no_process_over_8_gb": result["max_process_rss_mb"] < GOAL_PROCESS_MB,
            "validation_under_60_s": gates < GOAL_MEDIUM_GATES_S,
        }
    return result


def session_reference(scratch: Path) -> dict[str, Any]:
    config = write_bench_config(scratch / "session-ref", None)
    res = run_measured(python_cmd("-c", _SESSION_CHILD, str(config)))
    stdout = res.pop("stdout")
    if res["rc"] == 0:
        res.update(last_json_object(stdout))
    return res


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", default="small,medium", help="comma-separated simulator presets")
    p.add_argument("--start", default="2026-11-01", help="first simulated day")
    p.add_argument("--scratch", type=Path, help="work directory (default: a temp dir, removed afterwards)")
    p.add_argument("--keep", action="store_true", help="keep the scratch directory (data, logs, event logs)")
    p.add_argument("--raw-cache", type=Path, help="reuse / store simulated raw data here (keyed by preset, days, seed)")
    p.add_argument("--no-event-log", action="store_true", help="no Spark event logs (no per-stage breakdown)")
    p.add_argument("--json-out", type=Path, help="write the results here")
    p.add_argument("--resume-from", metavar="STEP", help="continue an interrupted run (same --scratch, --json-out) from this step")
    p.add_argument("--spark-conf", action="append", default=[], metavar="KEY=VALUE", help="extra Spark setting (recorded in the results)")
    p.add_argument("--profile", default="", help="comma-separated step names to rerun under cProfile afterwards (e.g. train)")
    args = p.parse_args(argv)

    scratch = args.scratch.resolve() if args.scratch else Path(tempfile.mkdtemp(prefix="bench-pipeline-", dir=REPO / "var"))
    results: dict[str, Any] = {"benchmark": "pipeline", "presets": {}}
    if args.json_out and args.json_out.exists() and not args.resume_from:
        args.json_out.unlink()
    try:
        if args.resume_from and args.json_out and args.json_out.exists():
            results = json.loads(args.json_out.read_text())
        ref = session_reference(scratch) if not args.resume_from else results.get("spark_session_start_reference", {})
        results["spark_session_start_reference"] = ref
        if args.json_out:
            write_json(args.json_out, results)
        print(f"reference: a bare SparkSession start + 1 job in its own process: "
              f"{fmt_s(ref.get('session_start_s'))} (process {fmt_s(ref['wall_s'])}, peak {fmt_mb(ref['peak_process_rss_mb'])})",
              flush=True)
        for preset in [x for x in args.presets.split(",") if x]:
            results["presets"][preset] = bench_preset(preset, args, scratch)
            if args.json_out:
                write_json(args.json_out, results)
    finally:
        if not (args.keep or args.scratch):
            shutil.rmtree(scratch, ignore_errors=True)
    if args.json_out:
        write_json(args.json_out, results)
    else:
        print(json.dumps(results, indent=2, default=str))
    return results


if __name__ == "__main__":
    main()
