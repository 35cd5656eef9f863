"""``twotower runs list [--json]``: every run day with its status and key numbers, from the
days' ``summary.json`` (what the runs index page plots)."""

from __future__ import annotations

import argparse

from core.config import Config


def register(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("runs", help="list the run days with their status and key numbers (the runs index)")
    rsub = r.add_subparsers(dest="runs_command", metavar="ACTION", required=True)
    ls = rsub.add_parser("list", help="every run day, oldest first: status, recall@50, baseline, volume, DQ, time")
    ls.add_argument("--json", action="store_true", help="one JSON object per day (status, warnings, all facts)")
    ls.set_defaults(func=_list)


def _list(cfg: Config, args: argparse.Namespace) -> int:
    from reports.format import dur, num, pct
    from reports.trends import runs_json
    from twotower import operations
    from twotower.cli import print_json

    runs = operations.run_summaries(cfg)
    if args.json:
        print_json(runs_json(runs))
        return 0
    if not runs:
        print(f"no runs under {cfg.paths.reports_root}")
        return 0
    header = ("day", "status", "recall@50", "best baseline", "impressions", "CTR", "catalogue", "DQ failed", "time", "warnings")
    rows = []
    for r in runs:
        f = r["facts"]
        rows.append(
            (
                r["ds"], r["state"], _recall(f.get("recall50")), _recall(f.get("best_baseline_recall50")), num(f.get("impressions")),
                pct(f.get("ctr"), 2), num(f.get("catalogue_size")), num(f.get("dq_checks_failed")), dur(f.get("total_seconds")),
                str(len(r["warnings"])),
            )
        )
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    for row in (header, *rows):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _recall(v: float | None) -> str:
    return "–" if v is None else f"{v:.4f}"
