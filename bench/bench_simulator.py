"""Simulator throughput: rows/s, wall time and peak RSS for the small preset (one day and a week)
and one medium day, each in its own process. Reference measured in the same run: re-writing the
same day's Parquet files with pyarrow (read + write, no simulation), the I/O floor.

    .venv/bin/python bench/bench_simulator.py [--presets small,medium] [--keep DIR]

Not part of ``make test``. Prints one line per case and a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

_CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, {repo!r})
from tests.conftest import make_config
from logsim.engine import simulate
cfg = make_config(__import__("pathlib").Path({root!r}))
t = time.perf_counter()
stats = simulate(cfg, {preset!r}, "2026-11-01", {days}, seed=7)
wall = time.perf_counter() - t
rows = sum(d["impressions"] + d["ranking_log"] + d["users"] + d["items"] for d in stats["per_day"])
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"wall_s": wall, "rows": rows, "peak_rss_mb": peak_mb, "impressions": stats["totals"]["impressions"],
                  "ranking_log": stats["totals"]["ranking_log"], "ctr": stats["ctr"],
                  "top1pct_click_share": stats["top1pct_click_share"]}}))
"""

_REWRITE = r"""
import json, resource, sys, time
import pyarrow.parquet as pq
from pathlib import Path
root, out = Path({root!r}), Path({out!r})
t = time.perf_counter()
rows = 0
for part in sorted(root.glob("raw/*/ds=2026-11-01/*.parquet")):
    table = pq.read_table(part)
    dest = out / part.relative_to(root)
    dest.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, dest, compression="snappy", row_group_size=1_000_000)
    rows += table.num_rows
print(json.dumps({{"wall_s": time.perf_counter() - t, "rows": rows,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def _run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=REPO)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="small,medium", help="comma-separated (small = 1 day and 7 days)")
    parser.add_argument("--keep", help="simulate into this directory instead of a temp dir")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(dir=args.keep) as tmp:
        cases = []
        for preset in args.presets.split(","):
            cases.append((preset, 1))
            if preset == "small":
                cases.append((preset, 7))
        for preset, days in cases:
            root = Path(tmp) / f"{preset}-{days}"
            sim = _run(_CHILD.format(repo=str(REPO), root=str(root), preset=preset, days=days))
            line = (
                f"{preset} x{days} day(s): {sim['rows']:,} rows ({sim['impressions']:,} impressions, "
                f"{sim['ranking_log']:,} ranking rows) in {sim['wall_s']:.1f} s = {sim['rows'] / sim['wall_s']:,.0f} rows/s, "
                f"peak RSS {sim['peak_rss_mb']:,.0f} MB"
            )
            if days == 1:
                ref = _run(_REWRITE.format(root=str(root / "data"), out=str(Path(tmp) / f"rewrite-{preset}")))
                sim["rewrite_reference_s"] = ref["wall_s"]
                sim["ratio_to_rewrite"] = sim["wall_s"] / ref["wall_s"]
                line += (
                    f"; reference (read+rewrite the same Parquet) {ref['wall_s']:.1f} s -> "
                    f"simulation costs {sim['ratio_to_rewrite']:.1f}x the I/O floor"
                )
            print(line, flush=True)
            results[f"{preset}_{days}d"] = sim
            import shutil

            shutil.rmtree(root, ignore_errors=True)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
