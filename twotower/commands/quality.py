"""``twotower dq``: data-quality results of a day (``show``) and running a gate by hand.

Imports nothing heavy at module level (Spark and GE load only inside ``dq validate``).
"""

from __future__ import annotations

import argparse

from core.config import Config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dq", help="data quality: show a day's suite results, or run a gate")
    dq = p.add_subparsers(dest="dq_command", metavar="DQ_COMMAND", required=True)
    show = dq.add_parser("show", help="each suite's pass/fail with counts and the Data Docs path")
    show.add_argument("--ds", required=True, help="run day YYYY-MM-DD")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(func=_show)
    val = dq.add_parser("validate", help="run a gate (validate_raw / validate_outputs) for a day")
    val.add_argument("--ds", required=True, help="run day YYYY-MM-DD")
    val.add_argument("--stage", choices=("raw", "outputs"), default="raw")
    val.set_defaults(func=_validate)


def _show(cfg: Config, args: argparse.Namespace) -> int:
    from contracts.days import parse_ds
    from core.errors import UserError
    from quality.report import render_text
    from twotower import operations
    from twotower.cli import print_json

    try:
        parse_ds(args.ds)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    summary = operations.dq_summary(cfg, args.ds)
    if args.json:
        print_json(summary)
    else:
        print(render_text(summary))
    statuses = [s["status"] for s in summary["stages"].values()]
    return 1 if "failed" in statuses else 0


def _validate(cfg: Config, args: argparse.Namespace) -> int:
    from twotower import pipeline

    step = pipeline.validate_raw if args.stage == "raw" else pipeline.validate_outputs
    out = step(cfg, args.ds)
    print(f"{out.stage} ds={out.ds}: {out.status}; Data Docs: {out.data_docs}")
    return 0
