"""``twotower etl --ds D [--stage S]``: the Spark ETL for one run day (all stages, or one)."""

from __future__ import annotations

import argparse

from core.config import Config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("etl", help="run the Spark ETL for a day (click positives ... training/eval sets)")
    p.add_argument("--ds", required=True, metavar="YYYY-MM-DD", help="run day D (the window ends at D)")
    p.add_argument(
        "--stage",
        metavar="STAGE",
        help="run only this stage (its upstream outputs must exist); default: every stage in order",
    )
    p.set_defaults(func=_etl)


def _etl(cfg: Config, args: argparse.Namespace) -> int:
    from contracts.days import ds_str
    from core.errors import UserError
    from twotower import pipeline
    from twotower.cli import print_json

    try:
        ds = ds_str(args.ds)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    if args.stage:
        stages = pipeline.etl_stages()
        if args.stage not in stages:
            raise UserError(f"unknown ETL stage {args.stage!r} (stages: {', '.join(stages)})")
        print_json(pipeline.etl_stage(cfg, ds, args.stage).to_dict())
    else:
        print_json({stage: result.to_dict() for stage, result in pipeline.etl(cfg, ds).items()})
    return 0
