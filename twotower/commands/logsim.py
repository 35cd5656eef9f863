"""``twotower simulate``: write simulated days (all raw tables + ground truth) to the data root."""

from __future__ import annotations

import argparse

from core.config import Config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "simulate",
        help="simulate daily feed logs with planted ground truth (presets: tiny, small, medium, large)",
        description="Write N simulated days of impressions, ranking_log, users and items (raw contract) "
        "plus the planted truth under the data root. Defaults come from [simulator] in the config.",
    )
    p.add_argument("--preset", help="tiny | small | medium | large (default: simulator.preset)")
    p.add_argument("--start", metavar="YYYY-MM-DD", help="first day (default: simulator.start)")
    p.add_argument("--days", type=int, help="number of days (default: simulator.days)")
    p.add_argument("--seed", type=int, help="world seed (default: simulator.seed)")
    p.add_argument("--json", action="store_true", help="print the full statistics as JSON")
    p.set_defaults(func=_simulate)


def format_summary(stats: dict) -> str:
    """The short human summary printed after a simulation."""
    t = stats["totals"]
    lines = [
        f"simulated {stats['days']} day(s) from {stats['start']} (preset {stats['preset']}, seed {stats['seed']}) "
        f"into {stats['data_root']} in {stats['seconds']:.1f} s",
        f"  rows: impressions {t['impressions']:,}  ranking_log {t['ranking_log']:,} "
        f"({stats['ranking_rows_per_impression']:.1f} per impression)  requests {t['requests']:,}",
        f"  users/items per day: {stats['per_day'][-1]['users']:,} / {stats['per_day'][-1]['items']:,} "
        f"({stats['per_day'][-1]['new_items']:,} new items a day)",
        f"  clicks {t['clicks']:,}  CTR {stats['ctr']:.2%}  likes {t['likes']:,}",
        f"  popularity tail: top-1% items take {stats['top1pct_click_share']:.1%} of clicks, "
        f"top-10% take {stats['top10pct_click_share']:.1%} ({stats['items_seen']:,} items)",
        f"  funnel pass rates: retrieval->pre_rank 100%, pre_rank {stats['prerank_pass_rate']:.1%}, "
        f"rank {stats['rank_pass_rate']:.1%} (rank survivors are shown)",
    ]
    for d in stats["per_day"]:
        lines.append(
            f"  {d['ds']}: {d['impressions']:,} impressions, {d['ranking_log']:,} ranking rows, "
            f"CTR {d['ctr']:.2%}, {d['seconds']:.1f} s"
        )
    return "\n".join(lines)


def _simulate(cfg: Config, args: argparse.Namespace) -> int:
    from logsim.engine import simulate

    sim = cfg.simulator
    stats = simulate(
        cfg,
        args.preset or sim.preset,
        args.start or sim.start,
        sim.days if args.days is None else args.days,
        sim.seed if args.seed is None else args.seed,
    )
    if args.json:
        from twotower.cli import print_json

        print_json(stats)
    else:
        print(format_summary(stats))
    return 0
