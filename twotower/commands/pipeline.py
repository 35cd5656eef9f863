"""``twotower run`` (every step for one day, the same functions the DAG calls) and
``twotower report`` (rebuild a day's HTML run report)."""

from __future__ import annotations

import argparse

from core.config import Config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run the whole daily pipeline for one day in this process (validate, ETL, train, index, publish, report)",
    )
    p.add_argument("--ds", required=True, help="day to process, YYYY-MM-DD (the run for day D reads D's logs)")
    p.add_argument(
        "--force",
        action="store_true",
        help="publish even if the publish gate rejects the candidate or an earlier day is missing",
    )
    p.set_defaults(func=_run)

    r = sub.add_parser("report", help="(re)build the HTML run report of one day and print its path")
    r.add_argument("--ds", required=True, help="day, YYYY-MM-DD")
    r.set_defaults(func=_report)


def _run(cfg: Config, args: argparse.Namespace) -> int:
    from twotower import pipeline
    from twotower.cli import print_json

    out = pipeline.run_day(cfg, args.ds, force=args.force)
    report, published = out.get("report"), out.get("publish")
    print_json({"ds": args.ds, "report": report.report if report else None, "publish": published.to_dict() if published else None})
    return 0


def _report(cfg: Config, args: argparse.Namespace) -> int:
    from twotower import pipeline

    print(pipeline.report(cfg, args.ds).report)
    return 0
