"""Run every benchmark, write ``bench/results/<date>.json`` and the tables of ``docs/benchmarks.md``.

    make bench                          # everything (an hour or more on 2 cores)
    make bench BENCH_ARGS=--quick       # a quick subset (tiny/small sizes, ~15 min)
    .venv/bin/python bench/run_all.py --only pipeline,index
    .venv/bin/python bench/run_all.py --render-only bench/results/2026-11-25.json

Each benchmark script runs in its own process (measured from outside: wall time, peak RSS of
its process tree) and prints its results as its last JSON value, which is stored verbatim under
``benchmarks.<name>``. Results of the same UTC day are merged (a partial rerun with ``--only``
replaces just those entries). The markdown between the GENERATED markers of
docs/benchmarks.md is rewritten; the hand-written analysis below them is kept.

Order matters: the pipeline benchmark keeps its medium run (var/bench/pipeline), whose trained
model and ETL output the index and training benchmarks then measure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    REPO,
    RESULTS_DIR,
    fmt_mb,
    fmt_s,
    git_commit,
    last_json_object,
    load_average,
    machine_info,
    python_cmd,
    run_measured,
    utc_now,
    write_json,
)

DOC = REPO / "docs" / "benchmarks.md"
BEGIN, END = "<!-- BEGIN GENERATED (bench/run_all.py) -->", "<!-- END GENERATED -->"
SCRATCH = REPO / "var" / "bench"
PIPELINE_SCRATCH = SCRATCH / "pipeline"


@dataclass(frozen=True)
class Bench:
    name: str
    script: str
    # (quick, previous results) -> (argv, extra environment)
    args: Callable[[bool, dict[str, Any]], tuple[list[str], dict[str, str]]]
    what: str


def _medium_run(results: dict[str, Any]) -> dict[str, Any] | None:
    """The kept medium (else small) pipeline run, if it completed: its model and ETL output."""
    presets = results.get("pipeline", {}).get("result", {}).get("presets", {})
    for name in ("medium", "small"):
        run = presets.get(name)
        if run and run.get("completed") and run.get("model_dir") and Path(run["model_dir"]).is_dir():
            return run
    return None


PIPELINE_PRESETS: list[str] = []  # --pipeline-presets overrides the default
TIMEOUT_S = [3 * 3600.0]  # per benchmark; --timeout-min


def _pipeline_args(quick: bool, _: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    presets = ",".join(PIPELINE_PRESETS) or ("tiny" if quick else "small,medium")
    # --json-out: partial results after every step survive a timeout (run_all reads the file).
    return ["--presets", presets, "--keep", "--scratch", str(PIPELINE_SCRATCH), "--raw-cache", str(SCRATCH / "raw-cache"),
            "--json-out", str(SCRATCH / "pipeline.json")], {}


def _index_args(quick: bool, results: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    argv = ["--sizes", "100000"] if quick else ["--sizes", "100000", "1000000"]
    run = _medium_run(results)
    if run:
        argv += ["--model-dir", run["model_dir"], "--model-label", f"{run['preset']} pipeline run, ds={run['ds']}"]
    if not quick:
        # The large catalogue (500k items): no large-preset pipeline day fits one benchmark run
        # on 2 cores, so a model trained by the real training code on synthetic ETL tables of
        # that size, and the simulator's planted geometry (what a perfect model recovers).
        argv += ["--synthetic-model", "500000", "--planted", "large"]
    return argv + ["--json"], {}


def _simulator_args(quick: bool, _: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    return ["--presets", "small" if quick else "small,medium"], {}


def _etl_args(quick: bool, _: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    return ["--preset", "small" if quick else "medium", "--root", str(SCRATCH / "etl")], {}


def _training_args(quick: bool, results: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    run = None if quick else _medium_run(results)
    if run:  # the real ETL output of the pipeline run (else bench_training makes a synthetic day)
        return ["--ds", run["ds"]], {"TWOTOWER_DATA_ROOT": run["data_root"]}
    return [], {}


def _storage_args(quick: bool, _: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    return ["--preset", "tiny" if quick else "small", "--root", str(SCRATCH / "storage")], {}


ML1M_DEFAULT = REPO / "bench" / "data" / "ml-1m" / "ratings.dat"


def _real_args(quick: bool, _: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    # MovieLens is never committed (licence): BENCH_ML1M or bench/data/ml-1m/ratings.dat; the
    # script skips it with a message when the file is absent and still runs MIND.
    ml1m = os.environ.get("BENCH_ML1M") or str(ML1M_DEFAULT)
    # BENCH_REAL_REUSE=1: re-score the project runs a previous (e.g. --quick) run left in the scratch dir.
    return ["--ml1m", ml1m, "--scratch", str(SCRATCH / "real"), "--json-out", str(SCRATCH / "real.json"),
            *(["--quick"] if quick else []), *(["--reuse-runs"] if os.environ.get("BENCH_REAL_REUSE") == "1" else [])], {}


def _window_args(quick: bool, _: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    ml1m = os.environ.get("BENCH_ML1M") or str(ML1M_DEFAULT)
    return ["--ml1m", ml1m, "--scratch", str(SCRATCH / "window"), "--out", str(SCRATCH / "window.json"),
            *(["--only", "b,c"] if quick else [])], {}


BENCHES = (
    Bench("pipeline", "bench/bench_pipeline.py", _pipeline_args, "whole daily pipeline, per step and process"),
    Bench("index", "bench/bench_index.py", _index_args, "FAISS build/QPS/recall vs exact"),
    Bench("training", "bench/bench_training.py", _training_args, "training examples/s vs model-bound ceiling"),
    Bench("etl", "bench/bench_etl.py", _etl_args, "each Spark ETL stage vs DuckDB"),
    Bench("simulator", "bench/bench_simulator.py", _simulator_args, "simulator rows/s vs Parquet rewrite"),
    Bench("storage", "bench/bench_storage.py", _storage_args, "daily run on an object store vs on local files"),
    Bench("real", "bench/bench_real.py", _real_args, "MovieLens-1M folds and MIND: published model vs popularity, ItemCF, ALS"),
    Bench("window", "bench/bench_window.py", _window_args, "cost of one more day: W=7 vs 14, a 240-day window, a tiny day through Airflow"),
)


def run_bench(b: Bench, quick: bool, results: dict[str, Any], logs: Path) -> dict[str, Any]:
    argv, env = b.args(quick, results)
    print(f"\n##### {b.name}: {b.script} {' '.join(argv)}  (load {load_average()})", flush=True)
    log = logs / f"{b.name}.log"
    res = run_measured(python_cmd(b.script, *argv), env=env, log_path=log, timeout=TIMEOUT_S[0])
    stdout = res.pop("stdout")
    entry: dict[str, Any] = {
        "command": " ".join([".venv/bin/python", b.script, *argv]),
        "env": env,
        "finished": utc_now(),
        "quick": quick,
        "process": res,
        "log": str(log),
    }
    json_out = Path(argv[argv.index("--json-out") + 1]) if "--json-out" in argv else None
    try:
        entry["result"] = json.loads(json_out.read_text()) if json_out and json_out.exists() else last_json_object(stdout)
    except ValueError:
        entry["result"] = None
    # The human-readable lines the script printed (everything before its JSON).
    entry["printed"] = [ln for ln in stdout.splitlines() if ln.strip() and not ln.startswith((" ", "{", "}", "[", "]", '"'))][-60:]
    status = "ok" if res["rc"] == 0 and entry["result"] is not None else f"FAILED rc={res['rc']} (log {log})"
    print(f"##### {b.name}: {status} in {fmt_s(res['wall_s'])}, peak process {fmt_mb(res['peak_process_rss_mb'])}", flush=True)
    return entry


# -- markdown ---------------------------------------------------------------------------------


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out


def _f(x: Any, nd: int = 2) -> str:
    if isinstance(x, float):
        return f"{x:,.{nd}f}"
    if isinstance(x, int):
        return f"{x:,}"
    return "-" if x is None else str(x)


def _load(entry: dict[str, Any]) -> str:
    p = entry.get("process", {})
    return f"load average {p.get('load_before', ['?'])[0]} before, {p.get('load_after', ['?'])[0]} after"


def _header(entry: dict[str, Any], title: str) -> list[str]:
    return [f"### {title}", "", f"`{entry['command']}`" + (f" (env {entry['env']})" if entry.get("env") else "")
            + f"; finished {entry['finished']}; {_load(entry)}; whole benchmark {fmt_s(entry['process']['wall_s'])}.", ""]


def _totals(run: dict[str, Any]) -> dict[str, Any]:
    """Totals of a pipeline run, also for a partial one (killed by a timeout)."""
    steps = run.get("steps", [])
    return {
        "wall": run.get("daily_run_wall_s", round(sum(s["wall_s"] for s in steps), 1)),
        "cpu": round(sum(s.get("cpu_s") or 0 for s in steps), 1),
        "startup": round(sum(s.get("spark_startup_s") or 0 for s in steps), 1),
        "max_mb": max((s["peak_process_rss_mb"] for s in steps), default=0.0),
        "completed": bool(run.get("completed")),
        "status": "completed" if run.get("completed") else
        (f"PARTIAL: stopped after {steps[-1]['step']}" if run.get("partial") and steps else "FAILED"),
    }


def render_pipeline(entry: dict[str, Any]) -> list[str]:
    r = entry["result"]
    out = _header(entry, "Whole daily pipeline (bench/bench_pipeline.py)")
    ref = r.get("spark_session_start_reference", {})
    out += [f"Reference in the same run: a bare SparkSession start + one job in its own process takes "
            f"{fmt_s(ref.get('session_start_s'))} (peak {fmt_mb(ref.get('peak_process_rss_mb'))}); every Spark step "
            "below pays it once, as every task of the DAG does under LocalExecutor.", ""]
    for preset, run in r.get("presets", {}).items():
        sim = run["simulate"]
        if "setup" not in run:
            out += [f"**{preset}**: stopped before the daily run started.", ""]
            continue
        out += [f"**{preset}**, run day {run['ds']} ({run['window_days']}-day window; "
                f"{_f(sim['impressions'])} impressions and {_f(sim['ranking_log'])} ranking-log rows simulated in "
                f"{fmt_s(sim['wall_s'])}; setup = click positives of the earlier days, not timed: "
                f"{fmt_s(run['setup']['wall_s'])}). Config: {run['config']}.", ""]
        if run.get("command"):
            out += [f"Command: `{run['command']}`.", ""]
        if run.get("spark_conf_overrides"):
            out += [f"Spark settings overridden for this run: `{run['spark_conf_overrides']}`.", ""]
        for failed in run.get("earlier_attempt_failed_steps", []):
            lines = failed.get("error_tail", "").splitlines()
            err = failed.get("error") or next((ln for ln in lines if "Exception: " in ln or "Error: " in ln),
                                              next((ln for ln in lines if "Exception" in ln or "Error" in ln), ""))
            out += [f"An earlier attempt failed at `{failed['step']}` after {fmt_s(failed['wall_s'])} "
                    f"(peak process {fmt_mb(failed['peak_process_rss_mb'])}): `{err.strip()[:300]}`; the run was resumed "
                    f"from that step (`--resume-from`), the steps before it are the first attempt's.", ""]
        rows = []
        for s in run["steps"]:
            rows.append([s["step"], fmt_s(s["wall_s"]), _f(s.get("cpu_s"), 0), fmt_s(s.get("spark_startup_s")) if s.get("spark_startup_s") else "-",
                         fmt_mb(s["peak_process_rss_mb"]), s["peak_process"], fmt_mb(s["peak_tree_rss_mb"]),
                         ", ".join(f"{k} {fmt_mb(v)}" for k, v in s["peak_rss_mb_by_process"].items()),
                         s["load_after"][0], "ok" if s["rc"] == 0 else s.get("note") or f"FAILED ({s['rc']})"])
        tot = _totals(run)
        rows.append(["**total**", f"**{fmt_s(tot['wall'])}**", _f(tot["cpu"], 0), fmt_s(tot["startup"]),
                     f"**{fmt_mb(tot['max_mb'])}**", "", "", "", "", tot["status"]])
        out += _table(["step (own process)", "wall", "CPU s (tree)", "Spark start", "peak process RSS", "process", "peak tree RSS",
                       "peak per process kind", "load after", "status"], rows) + [""]
        bd = run.get("spark_breakdown") or []
        spark_steps = [s for s in run["steps"] if s["step"] in ("validate_raw", "etl", "validate_outputs") or s["step"].startswith("etl_")]
        if len(spark_steps) == len(bd):  # one Spark application per Spark step, in time order (app ids)
            for app, s in zip(bd, spark_steps, strict=True):
                app["step"] = s["step"]
            wall = {s["step"]: s["wall_s"] for s in spark_steps}
            out += ["Where the Spark steps' time goes (Spark event logs; task time = summed over tasks, so it can "
                    "exceed wall time on 2 cores; the rest of a step's wall time is session start, planning, "
                    "driver-side work and waiting for a core):", ""]
            out += _table(["Spark step", "wall s", "Spark stages", "task s", "task CPU s", "GC s", "shuffle write MB", "spill MB"],
                          [[a["step"], _f(wall[a["step"]], 1), a["stages"], a["task_run_s"], a["task_cpu_s"], a["gc_s"],
                            a["shuffle_write_mb"], a["spill_mb"]] for a in bd]) + [""]
        bd = bd if len(spark_steps) == len(bd) else []
        # Slowest by CPU seconds when measured (wall time mostly says how loaded the machine was).
        slowest_spark = max(spark_steps, key=lambda s: (s.get("cpu_s") or 0, s["wall_s"]), default=None)
        slow = next((a for a in bd if slowest_spark and a.get("step") == slowest_spark["step"]), None)
        if slow is None and bd:
            slow = max(bd, key=lambda a: a["sum_stage_wall_s"])
        if slow:
            out += [f"Spark stages of the costliest Spark step by CPU seconds (`{slow.get('step') or slow['job_group']}`): {slow['stages']} stages, "
                    f"task time {slow['task_run_s']} s of which CPU {slow['task_cpu_s']} s and GC {slow['gc_s']} s; "
                    f"shuffle written {slow['shuffle_write_mb']} MB, spilled {slow['spill_mb']} MB.", ""]
            out += _table(["Spark stage", "tasks", "wall s", "task s", "CPU s", "GC s", "input MB", "shuffle read MB",
                           "shuffle write MB", "spill MB"],
                          [[f"{s['stage_id']}: {s['name']}", s["tasks"], s["wall_s"], s["task_run_s"], s["task_cpu_s"], s["gc_s"],
                            s["input_mb"], s["shuffle_read_mb"], s["shuffle_write_mb"], s["spill_mb"]] for s in slow["top_stages"]]) + [""]
    return out


def render_index(entry: dict[str, Any]) -> list[str]:
    rows = entry["result"] if isinstance(entry["result"], list) else entry["result"].get("rows", [])
    out = _header(entry, "FAISS index (bench/bench_index.py)")
    out += ["Speedup = QPS / exact `Flat` QPS on the same queries in the same run; recall@K against exact search.", ""]
    out += _table(["case", "index", "param", "build s", "index MB", "QPS", "speedup", "recall"],
                  [[r["case"], r["index"], r["param"], _f(r["build_s"], 1), _f(r["index_mb"], 0), _f(r["qps"], 0),
                    f"{r['speedup']:.1f}x", f"{r['recall']:.4f}"] for r in rows])
    return out + [""]


def render_simulator(entry: dict[str, Any]) -> list[str]:
    out = _header(entry, "Simulator (bench/bench_simulator.py)")
    out += _table(["case", "rows written", "wall", "rows/s", "peak RSS", "vs Parquet read+rewrite of the same day"],
                  [[k, _f(v["rows"]), fmt_s(v["wall_s"]), _f(v["rows"] / v["wall_s"], 0), fmt_mb(v["peak_rss_mb"]),
                    f"{v['ratio_to_rewrite']:.2f}x" if "ratio_to_rewrite" in v else "-"] for k, v in entry["result"].items()])
    return out + [""]


def render_etl(entry: dict[str, Any]) -> list[str]:
    r = entry["result"]
    out = _header(entry, "Spark ETL vs DuckDB (bench/bench_etl.py)")
    out += [f"Preset {r.get('preset')}, {r.get('window_days')}-day window ending {r.get('ds')}; Spark session warm-up "
            f"{fmt_s(r.get('spark_warmup_s'))} (not charged to a stage); peak RSS of the process tree {fmt_mb(r.get('peak_rss_mb'))}.", ""]
    out += ["Copy floor: the seconds Spark takes to read and rewrite the stage's own outputs (one job per "
            "table). I/O floor: writing the stage's outputs from memory plus scanning the traffic-sized raw "
            "inputs it must read (row rules and the stage's own row filter applied, noop sink); every other "
            "input counted as free. No Spark version of the stage can be faster than its I/O floor.", ""]

    def floor(d: dict[str, Any], key: str) -> str:
        return _f(d.get(key)) if key in d else ""

    rows = [[s["stage"], _f(s["spark_s"]), str(s.get("spark_jobs", "")), _f(s["duckdb_s"]), f"{s['ratio']:.2f}x",
             floor(s, "spark_copy_floor_s"), floor(s, "spark_io_floor_s")] for s in r.get("stages", [])]
    rows.append(["**total**", _f(r.get("spark_total_s")), str(sum(s.get("spark_jobs", 0) for s in r.get("stages", []))),
                 _f(r.get("duckdb_total_s")), f"**{r.get('ratio', 0):.2f}x**",
                 floor(r, "spark_copy_floor_total_s"), floor(r, "spark_io_floor_total_s")])
    out += _table(["stage", "Spark s", "Spark jobs", "DuckDB s", "Spark / DuckDB", "Spark copy floor s",
                   "Spark I/O floor s"], rows)
    if "spark_io_floor_total_s" in r and r.get("duckdb_total_s"):
        out += ["", f"The I/O floor alone is {r['spark_io_floor_total_s'] / r['duckdb_total_s']:.2f}x DuckDB's whole ETL."]
    return out + [""]


def render_storage(entry: dict[str, Any]) -> list[str]:
    r = entry["result"]
    local, store = r["local"], r["object_store"]
    out = _header(entry, f"Object storage vs local files (bench/bench_storage.py, {r['preset']} day {r['ds']})")
    rows = [[step, _f(secs, 1), _f(store["steps_s"].get(step), 1),
             _f(store["steps_s"][step] / secs) if secs and store["steps_s"].get(step) else "-"]
            for step, secs in local["steps_s"].items()]
    rows.append(["**whole run**", _f(local["wall_s"], 1), _f(store["wall_s"], 1), f"**{_f(r['ratio_run'])}**"])
    rows.append(["peak process (MB)", _f(local["peak_process_rss_mb"], 0), _f(store["peak_process_rss_mb"], 0), "-"])
    out += _table(["step (s, pulls and pushes included)", "local", "object store", "ratio"], rows)
    return out + ["", f"Bucket after the run: {r['bucket']['objects']} objects, {r['bucket']['mb']} MB. "
                  "The store is moto's S3 server in the benchmark's process (not in the measured tree).", ""]


def _real_table(fold: dict[str, Any]) -> list[str]:
    proj = fold.get("project", {})
    rows = []
    for name, m in fold["methods"].items():
        rows.append([name, _f(m["recall@10"], 4), _f(m["recall@50"], 4), _f(m["recall@100"], 4), _f(m["ndcg@50"], 4),
                     _f(m["recall@50_se"], 4), m["users"]])
    if not any(k.startswith("two-tower") for k in fold["methods"]):
        rows.insert(0, ["two-tower: no figure", "-", "-", "-", "-", "-", f"{proj.get('status')}: {proj.get('scoring_error') or (proj.get('error') or [''])[-1]}"])
    return _table(["method", "recall@10", "recall@50", "recall@100", "NDCG@50", "SE recall@50", "users"], rows)


def _real_fold_note(fold: dict[str, Any]) -> str:
    f, proj = fold["fold"], fold.get("project", {})
    art = proj.get("artifact") or {}
    run = proj.get("run") or {}
    ratio = fold.get("ratio_recall@50_vs_recent")
    return (f"cutoff {f['cutoff']}, test window {f['test_days']} d: {f['candidates']:,} candidate items, "
            f"{f['train_clicks']:,} clicks before the cutoff, {f['users']:,} users scored, {f['targets']:,} targets "
            f"({f['targets_unknown_item']:,} on items first seen after the cutoff). Project: {proj.get('status')}; "
            f"import + run {_f(proj.get('wall_s'), 1)} s (run load {run.get('load_before')} -> {run.get('load_after')}, "
            f"peak process {fmt_mb(run.get('peak_process_rss_mb'))}); index {art.get('index_kind')} of "
            f"{art.get('index_items', '-')} items; {art.get('users_cold_start', '-')} scored users cold-start. "
            f"Two-tower / recent popularity recall@50: {_f(ratio) + 'x' if ratio is not None else '-'}.")


def render_real(entry: dict[str, Any]) -> list[str]:
    r = entry["result"]
    out = _header(entry, "Real data (bench/bench_real.py): published model vs baselines")
    ml = r.get("movielens") or {}
    if ml.get("skipped"):
        out += [f"MovieLens: {ml['skipped']}", ""]
    elif ml:
        out += [f"MovieLens (`{ml['file']}`: {ml['ratings']:,} ratings, {ml['clicks']:,} clicks = rating >= 4, "
                f"{ml['users']:,} users, {ml['items']:,} items); ALS setting picked on the validation cutoff "
                f"{ml['validation_cutoff']}: {ml.get('als_validation', {}).get('picked')}.", ""]
        for fold in ml.get("folds", []):
            out += [_real_fold_note(fold), ""] + _real_table(fold) + [""]
        if len(ml.get("folds", [])) > 1:
            out += [f"Mean over the {len(ml['folds'])} folds (users summed):", ""]
            out += _table(["method", "recall@10", "recall@50", "recall@100", "NDCG@50", "mean SE recall@50", "users"],
                          [[n, _f(m["recall@10"], 4), _f(m["recall@50"], 4), _f(m["recall@100"], 4), _f(m["ndcg@50"], 4),
                            _f(m["recall@50_se"], 4), m["users"]] for n, m in ml.get("summary", {}).items()]) + [""]
    mind = r.get("mind") or {}
    if mind.get("skipped"):
        out += [f"MIND: {mind['skipped']}", ""]
    for variant, fold in (mind.get("variants") or {}).items():
        out += [f"MIND sample (`{mind['dir']}`), `--history {variant}`, ALS {fold.get('als_validation', {}).get('picked')}: "
                + _real_fold_note(fold), ""] + _real_table(fold) + [""]
    return out


def _win_load(m: dict[str, Any]) -> str:
    return f"{m['load_before'][0]} -> {m['load_after'][0]}"


def render_window(entry: dict[str, Any]) -> list[str]:
    out = _header(entry, "Cost of a day (bench/bench_window.py)")
    r = entry["result"]
    rows = []
    w = r.get("window_days")
    if w:
        for k in ("w7", "w14"):
            d = w[k]["day"]
            rows.append([f"small day {w['ds']}, etl.window_days {k[1:]} (steady state)", fmt_s(d["wall_s"]),
                         fmt_mb(d["peak_tree_rss_mb"]), _win_load(d)])
    lw = r.get("long_window")
    if lw:
        rows.append([f"{lw['window_days']}-day window, {lw['clicks']:,} clicks: import + first run", fmt_s(lw["total_s"]),
                     fmt_mb(lw["run"]["peak_tree_rss_mb"]), _win_load(lw["run"])])
    af = r.get("airflow_tiny_day")
    if af:
        rows.append([f"tiny day {af['ds']} through `airflow dags test` ({af['dag_run_state']})", fmt_s(af["dags_test"]["wall_s"]),
                     fmt_mb(af["dags_test"]["peak_tree_rss_mb"]), _win_load(af["dags_test"])])
    return out + _table(["measurement", "wall time", "peak RSS (tree)", "load before -> after"], rows) + [""]


def render_generic(entry: dict[str, Any], title: str) -> list[str]:
    out = _header(entry, title)
    r = entry["result"]
    if isinstance(r, dict):
        out += _table(["figure", "value"], [[k, _f(v, 4 if abs(v) < 10 else 1) if isinstance(v, float) else json.dumps(v) if isinstance(v, dict | list) else v]
                                           for k, v in r.items()])
    return out + [""]


def goals(b: dict[str, Any]) -> list[list[str]]:
    """The issue's goals, each with what was measured and whether it holds."""
    rows = []
    med = (b.get("pipeline", {}).get("result") or {}).get("presets", {}).get("medium")
    if med:
        tot = _totals(med)
        ok = tot["completed"] and tot["wall"] <= 300
        rows.append(["`medium` day end to end <= 5 min on 2 cores (issue 18)", f"{fmt_s(tot['wall'])}"
                     + ("" if tot["completed"] else f" ({tot['status']}: at least this)"), "met" if ok else "**not met**"])
        rows.append(["no process above 8 GB", fmt_mb(tot["max_mb"]) + ("" if tot["completed"] else " (steps that ran)"),
                     "met" if tot["max_mb"] < 8192 else "**not met**"])
        gates = sum(s["wall_s"] for s in med["steps"] if s["step"] in ("validate_raw", "validate_outputs"))
        rows.append(["validate_raw + validate_outputs on `medium` <= 60 s (issue 18)", fmt_s(gates),
                     "met" if gates <= 60 else "**not met**"])
    else:
        rows.append(["`medium` day end to end <= 5 min, no process > 8 GB", "not measured in this results file", "-"])
    etl = (b.get("etl") or {}).get("result")
    if etl and "ratio" in etl:
        worst = max(etl.get("stages", []), key=lambda s: s["ratio"], default=None)
        rows.append(["Spark ETL within 2x of DuckDB doing the same incremental work on `large` (issue 18)",
                     f"{etl['ratio']:.2f}x in total on {etl.get('preset')}"
                     + (f" (worst stage {worst['stage']} {worst['ratio']:.2f}x)" if worst else ""),
                     "met" if etl["ratio"] <= 2.0 and etl.get("preset") == "large" else "**not met**"])
    tr = (b.get("training") or {}).get("result")
    if tr and "data_path_overhead" in tr:
        rows.append(["training data path overhead < 20%", f"{tr['data_path_overhead']:.1%} ({_f(tr['data_path_examples_per_s'], 0)} vs "
                     f"{_f(tr['ceiling_examples_per_s'], 0)} examples/s; {tr.get('source')}); step at "
                     f"{tr.get('fraction_of_matmul_peak', 0):.1%} of matmul peak", "met" if tr["data_path_overhead"] < 0.2 else "**not met**"])
    idx = (b.get("index") or {}).get("result")
    rows_idx = idx if isinstance(idx, list) else (idx or {}).get("rows", [])
    model_cases = dict.fromkeys(r["case"] for r in rows_idx if r["case"].startswith("model"))
    for case in model_cases:
        model = [r for r in rows_idx if r["case"] == case and r["index"] != "Flat (exact)"]
        if not model:
            continue
        good = [r for r in model if r["recall"] >= 0.97 and r["speedup"] >= 10]
        best = max(good, key=lambda r: r["speedup"]) if good else max(model, key=lambda r: (r["recall"] >= 0.97, r["speedup"] if r["recall"] >= 0.97 else r["recall"]))
        rows.append([f"ANN recall@100 >= 0.97 at >= 10x exact QPS ({case})",
                     f"{best['index']} {best['param']}: recall {best['recall']:.4f} at {best['speedup']:.1f}x",
                     "met" if good else "**not met**"])
    real = (b.get("real") or {}).get("result") or {}
    for fold in (real.get("movielens") or {}).get("folds", []):
        ratio = fold.get("ratio_recall@50_vs_recent")
        published = any(k == "two-tower (published)" for k in fold["methods"])
        rows.append([f"MovieLens {fold['fold']['cutoff']}: published recall@50 >= 1.10x recent popularity (issue 17)",
                     (f"{ratio:.2f}x" if ratio is not None else "no figure") + ("" if published else " (not published)"),
                     "met" if ratio is not None and ratio >= 1.10 and published else "**not met**"])
    for variant, fold in ((real.get("mind") or {}).get("variants") or {}).items():
        ratio = fold.get("ratio_recall@50_vs_best_popularity")
        published = any(k == "two-tower (published)" for k in fold["methods"])
        ok = (not published) or (ratio is not None and ratio >= 1.0)
        rows.append([f"MIND --history {variant}: never published below the best popularity baseline (issue 17)",
                     ("published" if published else "not published (gate)") + (f", {ratio:.2f}x best popularity" if ratio is not None else ""),
                     "met" if ok else "**not met**"])
    win = (b.get("window") or {}).get("result") or {}
    if win.get("window_days"):
        ratio = win["window_days"]["ratio_w14_w7"]
        rows.append(["`small` day with W=14 at most 1.15x the W=7 day (issue 18)", f"{ratio:.2f}x", "met" if ratio <= 1.15 else "**not met**"])
    if win.get("long_window"):
        t = win["long_window"]["total_s"]
        rows.append(["240-day window of ~35k clicks end to end <= 2 min (issue 18)", fmt_s(t), "met" if t <= 120 else "**not met**"])
    if win.get("airflow_tiny_day"):
        t = win["airflow_tiny_day"]["dags_test"]["wall_s"]
        rows.append(["tiny day through Airflow <= 60 s (issue 18)", fmt_s(t), "met" if t <= 60 else "**not met**"])
    return rows


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    b = results["benchmarks"]
    lines = [BEGIN, "", f"Results file: `bench/results/{results['date']}.json` (commit {results.get('commit')}, "
             f"written {results['updated']}).", ""]
    lines += _table(["machine", ""], [
        ["CPU", f"{m['cpu_model']}, {m['logical_cores']} logical cores ({m['usable_cores']} usable)"],
        ["memory", f"{m['memory_gb']} GB"],
        ["OS / Python / Java", f"{m['os']} / {m['python']} / {m['java']}"],
        ["libraries", ", ".join(f"{k} {v}" for k, v in m["libraries"].items() if v)],
        ["load average when written", " / ".join(str(x) for x in m["load_average"])],
    ]) + [""]
    lines += ["### Goals", ""] + _table(["goal", "measured", "status"], goals(b)) + [""]
    renderers = {"pipeline": render_pipeline, "etl": render_etl, "index": render_index, "simulator": render_simulator,
                 "storage": render_storage, "real": render_real, "window": render_window}
    titles = {"training": "Training throughput (bench/bench_training.py)"}
    for bench in BENCHES:
        entry = b.get(bench.name)
        if not entry:
            lines += [f"### {bench.name}: not run in this results file", ""]
            continue
        if entry.get("result") is None or entry["process"]["rc"] != 0:
            lines += _header(entry, f"{bench.name}: FAILED (rc {entry['process']['rc']})")
            lines += ["```", *entry.get("printed", [])[-20:], "```", ""]
            continue
        try:
            lines += renderers.get(bench.name, lambda e, n=bench.name: render_generic(e, titles.get(n, n)))(entry)
        except (KeyError, TypeError, AttributeError) as exc:  # a script changed its output: show it raw
            lines += render_generic(entry, f"{bench.name} (raw; renderer failed: {exc!r})")
    lines += [END]
    return "\n".join(lines)


def write_doc(results: dict[str, Any], doc: Path = DOC) -> None:
    generated = render(results)
    if doc.exists() and BEGIN in doc.read_text():
        text = doc.read_text()
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1] if END in rest else ""
        doc.write_text(head + generated + tail)
    else:
        doc.write_text("# Benchmarks\n\nGenerated by `make bench` (bench/run_all.py); the analysis follows the tables.\n\n"
                       + generated + "\n\n## Analysis\n\n(to be written from the figures above)\n")
    print(f"wrote {doc}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes only (tiny pipeline, 100k index, small ETL)")
    p.add_argument("--only", help=f"comma-separated subset of: {', '.join(b.name for b in BENCHES)}")
    p.add_argument("--skip", default="", help="comma-separated benchmarks to skip")
    p.add_argument("--out", type=Path, help="results file (default bench/results/<UTC date>.json, merged)")
    p.add_argument("--render-only", type=Path, metavar="RESULTS_JSON", help="only regenerate docs/benchmarks.md")
    p.add_argument("--doc", type=Path, default=DOC, help="markdown file to (re)write between its GENERATED markers")
    p.add_argument("--pipeline-presets", help="presets of the pipeline benchmark (default small,medium; quick: tiny)")
    p.add_argument("--timeout-min", type=float, help="stop a benchmark after this many minutes (partial pipeline results are kept)")
    args = p.parse_args(argv)
    if args.timeout_min:
        TIMEOUT_S[0] = args.timeout_min * 60
    if args.pipeline_presets:
        PIPELINE_PRESETS[:] = args.pipeline_presets.split(",")

    if args.render_only:
        write_doc(json.loads(args.render_only.read_text()), args.doc)
        return 0
    date = dt.datetime.now(dt.UTC).date().isoformat()
    out = args.out or RESULTS_DIR / f"{date}.json"
    results = json.loads(out.read_text()) if out.exists() else {"date": date, "benchmarks": {}}
    only = set(args.only.split(",")) if args.only else {b.name for b in BENCHES}
    skip = set(filter(None, args.skip.split(",")))
    unknown = (only | skip) - {b.name for b in BENCHES}
    if unknown:
        p.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    logs = SCRATCH / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    failed = []
    for bench in BENCHES:
        if bench.name not in only or bench.name in skip:
            continue
        results["machine"] = machine_info()
        entry = run_bench(bench, args.quick, results["benchmarks"], logs)
        previous = results["benchmarks"].get(bench.name) or {}
        if bench.name == "pipeline" and entry["result"] and (previous.get("result") or {}).get("presets"):
            # Presets run separately (e.g. small early, medium on a quiet machine) add up.
            for run in entry["result"]["presets"].values():
                run["command"] = entry["command"]
            kept = {k: {"command": previous["command"], **v} for k, v in previous["result"]["presets"].items()
                    if k not in entry["result"]["presets"]}
            entry["result"]["presets"] = {**kept, **entry["result"]["presets"]}
        results["benchmarks"][bench.name] = entry
        if entry["process"]["rc"] != 0 or entry["result"] is None:
            failed.append(bench.name)
        results.update(updated=utc_now(), commit=git_commit(), machine=machine_info())
        write_json(out, results)  # after every benchmark: a late failure loses nothing
    print(f"\nwrote {out}")
    write_doc(results, args.doc)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
