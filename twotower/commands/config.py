"""``twotower config``: show the effective configuration and where things are stored."""

from __future__ import annotations

import argparse

from core.config import Config
from storage.layout import Layout


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="print the effective config (file + environment) and its hash")
    p.add_argument("--paths", action="store_true", help="print only the storage roots")
    p.set_defaults(func=_config)


def _config(cfg: Config, args: argparse.Namespace) -> int:
    from twotower.cli import print_json

    if args.paths:
        layout = Layout(cfg.paths)
        print_json(
            {
                "data_root": layout.data_root,
                "artifact_root": layout.artifact_root,
                "reports_root": layout.reports_root,
                "published_versions": layout.model_root,
                "latest_pointer": layout.latest_pointer,
            }
        )
        return 0
    print_json({"config_hash": cfg.hash(), **cfg.to_dict()})
    return 0
