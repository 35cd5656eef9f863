"""What one more day costs, and how that cost grows with the window.

Three measurements in one run, each a whole command measured from outside (wall time, peak RSS
of the process tree, load average before/after):

(a) ``small`` preset, one steady-state day D with ``etl.window_days`` 7 and 14. Each window has
    its own data root holding the same simulated raw logs; day D-1 runs first (the previous
    daily run: per-day outputs and a published model exist), then D is measured. The goal
    compares the two: day cost independent of the window (W=14 at most 1.15x W=7).
(b) a long window of small data: MovieLens ratings of the 240 days from 2001-01-01 (about 31k
    clicks of about 1k users over 240 day partitions), ``twotower import interactions`` into a
    fresh root, then ``twotower run`` for the last day with ``etl.window_days`` 240: a cold first
    run, what a new user pays (goal: at most 2 minutes end to end, import included).
(c) a ``tiny`` day through Airflow: ``airflow dags test two_tower_daily D`` (every task of the
    real DAG, the project's Airflow home) after ``twotower run`` of D-1 (goal: at most 60 s).

    .venv/bin/python bench/bench_window.py --ml1m bench/data/ml-1m/ratings.dat [--only a,b,c]

Not part of ``make test``; goals are reported against, never asserted. Prints one line per
measurement and a JSON summary last (``--out`` also writes it).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import REPO, load_average, run_measured, utc_now, write_json  # noqa: E402

TWOTOWER = str(REPO / ".venv" / "bin" / "twotower")
GOALS = {"window_ratio_w14_w7": 1.15, "long_window_s": 120.0, "airflow_tiny_day_s": 60.0}
SMALL_START, SMALL_DAYS = "2026-11-01", 15
TINY_START, TINY_DAYS = "2026-11-01", 3
LONG_START, LONG_DAYS = "2001-01-01", 240


def log(msg: str) -> None:
    print(f"[bench_window] {msg}", flush=True)


def _env(root: Path, **etl: Any) -> dict[str, str]:
    env = {
        "TWOTOWER_DATA_ROOT": str(root / "data"),
        "TWOTOWER_ARTIFACT_ROOT": str(root / "artifacts"),
        "TWOTOWER_REPORTS_ROOT": str(root / "reports"),
        "TQDM_DISABLE": "1",
    }
    env.update({f"TWOTOWER__ETL__{k.upper()}": str(v) for k, v in etl.items()})
    return env


def _measure(cmd: list[str], env: dict[str, str], log_path: Path) -> dict[str, Any]:
    res = run_measured(cmd, env=env, log_path=log_path)
    res.pop("stdout")
    if res["rc"] != 0:
        raise SystemExit(f"{' '.join(cmd)} failed (rc {res['rc']}); see {log_path}")
    return {k: res[k] for k in ("wall_s", "load_before", "load_after", "peak_tree_rss_mb", "cpu_s")}


def _day(start: str, n: int) -> str:
    return (dt.date.fromisoformat(start) + dt.timedelta(days=n)).isoformat()


def window_days(scratch: Path) -> dict[str, Any]:
    """(a): the same steady-state small day with W = 7 and W = 14."""
    raw = scratch / "small-raw"
    if not (raw / "data" / "raw").is_dir():
        shutil.rmtree(raw, ignore_errors=True)
        _measure([TWOTOWER, "simulate", "--preset", "small", "--start", SMALL_START, "--days", str(SMALL_DAYS)],
                 _env(raw), scratch / "simulate-small.log")
    d = _day(SMALL_START, SMALL_DAYS - 1)
    out: dict[str, Any] = {"preset": "small", "ds": d}
    for w in (7, 14):
        root = scratch / f"small-w{w}"
        shutil.rmtree(root, ignore_errors=True)
        shutil.copytree(raw / "data", root / "data")
        env = _env(root, window_days=w)
        warm = _measure([TWOTOWER, "run", "--ds", _day(d, -1)], env, scratch / f"small-w{w}-previous.log")
        day = _measure([TWOTOWER, "run", "--ds", d], env, scratch / f"small-w{w}.log")
        out[f"w{w}"] = {"previous_day": warm, "day": day, "steps": _step_seconds(root / "reports", d)}
        log(f"(a) small W={w}: day {d} {day['wall_s']:.1f} s (previous day {warm['wall_s']:.1f} s), "
            f"peak RSS {day['peak_tree_rss_mb']:.0f} MB, load {day['load_before']}")
    out["ratio_w14_w7"] = round(out["w14"]["day"]["wall_s"] / out["w7"]["day"]["wall_s"], 3)
    return out


def long_window(scratch: Path, ratings: Path) -> dict[str, Any]:
    """(b): 240 days of MovieLens ratings, imported and run cold."""
    import pandas as pd

    root = scratch / "long"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    if ratings.name == "u.data":
        df = pd.read_csv(ratings, sep="\t", names=["user", "item", "rating", "ts"])
    else:
        df = pd.read_csv(ratings, sep="::", engine="python", names=["user", "item", "rating", "ts"])
    lo = int(dt.datetime.fromisoformat(LONG_START).replace(tzinfo=dt.UTC).timestamp())
    hi = lo + LONG_DAYS * 86_400
    part = df[(df.ts >= lo) & (df.ts < hi)]
    part.to_csv(root / "ratings.csv", index=False)
    ds = _day(LONG_START, LONG_DAYS - 1)
    env = _env(root, window_days=LONG_DAYS)
    imp = _measure([TWOTOWER, "import", "interactions", "--file", str(root / "ratings.csv"), "--user-col", "user",
                    "--item-col", "item", "--ts-col", "ts", "--ts-format", "unix", "--rating-col", "rating",
                    "--rating-threshold", "4"], env, scratch / "long-import.log")
    run = _measure([TWOTOWER, "run", "--ds", ds, "--force"], env, scratch / "long-run.log")
    total = round(imp["wall_s"] + run["wall_s"], 1)
    out = {"ds": ds, "window_days": LONG_DAYS, "ratings": len(part), "clicks": int((part.rating >= 4).sum()),
           "users": int(part.user.nunique()), "import": imp, "run": run, "total_s": total,
           "steps": _step_seconds(root / "reports", ds)}
    log(f"(b) {LONG_DAYS}-day window, {out['clicks']:,} clicks: import {imp['wall_s']:.1f} s + run {run['wall_s']:.1f} s "
        f"= {total:.1f} s, peak RSS {run['peak_tree_rss_mb']:.0f} MB, load {run['load_before']}")
    return out


def airflow_day(scratch: Path) -> dict[str, Any]:
    """(c): a tiny day through the real DAG with ``airflow dags test``."""
    root = scratch / "tiny-airflow"
    shutil.rmtree(root, ignore_errors=True)
    env = _env(root)
    _measure([TWOTOWER, "simulate", "--preset", "tiny", "--start", TINY_START, "--days", str(TINY_DAYS)],
             env, scratch / "tiny-simulate.log")
    d = _day(TINY_START, TINY_DAYS - 1)
    _measure([TWOTOWER, "run", "--ds", _day(d, -1)], env, scratch / "tiny-previous.log")
    # The project-local Airflow home must exist (what `make airflow-init` does; idempotent).
    _measure(["bash", "-c", 'source scripts/airflow_env.sh && "$TWOTOWER_HOME/.venv/bin/airflow" db migrate'],
             env, scratch / "tiny-airflow-migrate.log")
    cmd = ["bash", "-c", f'source scripts/airflow_env.sh && "$TWOTOWER_HOME/.venv/bin/airflow" dags test two_tower_daily {d}']
    res = _measure(cmd, env, scratch / "tiny-airflow.log")
    text = (scratch / "tiny-airflow.log").read_text() + (scratch / "tiny-airflow.log.out").read_text()
    state = "success" if "state=success" in text else "not success (see the log)"
    log(f"(c) tiny day {d} through `airflow dags test`: {res['wall_s']:.1f} s ({state}), load {res['load_before']}")
    return {"ds": d, "dags_test": res, "dag_run_state": state, "steps": _step_seconds(root / "reports", d)}


def _step_seconds(reports: Path, ds: str) -> dict[str, float]:
    """Per-step seconds from the run's stage statistics (``run_info`` written by the pipeline)."""
    out = {}
    for f in sorted((reports / f"ds={ds}" / "stats").glob("*.json")):
        s = json.loads(f.read_text())
        secs = (s.get("run_info") or {}).get("wall_seconds", s.get("seconds"))
        if isinstance(secs, int | float):
            out[f.stem] = round(float(secs), 1)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ml1m", type=Path, default=Path(os.environ.get("BENCH_ML1M", REPO / "bench/data/ml-1m/ratings.dat")))
    p.add_argument("--scratch", type=Path, default=REPO / "var" / "bench" / "window")
    p.add_argument("--only", default="a,b,c", help="comma-separated subset of a,b,c")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    parts = set(args.only.split(","))
    args.scratch.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {"bench": "window", "started": utc_now(), "load_average_start": load_average(), "goals": GOALS}
    if "a" in parts:
        result["window_days"] = window_days(args.scratch)
    if "b" in parts:
        if args.ml1m.is_file():
            result["long_window"] = long_window(args.scratch, args.ml1m)
        else:
            log(f"(b) skipped: no MovieLens ratings at {args.ml1m} (--ml1m or BENCH_ML1M)")
    if "c" in parts:
        result["airflow_tiny_day"] = airflow_day(args.scratch)
    result["finished"] = utc_now()
    if args.out:
        write_json(args.out, result)
    print(json.dumps(result, indent=1, default=str))
    return result


if __name__ == "__main__":
    main()
