"""The ``twotower`` command line: a thin layer that wires typed options to stage functions.

Each stage package contributes its subcommands through a ``register(subparsers)`` function
in its ``cli`` module (listed in :data:`COMMAND_MODULES`). A subcommand sets ``func(cfg, args)
-> int``; the config is loaded once here (``--config FILE``, default ``twotower.toml`` +
environment overrides) and passed explicitly. ``cli`` modules import nothing heavy at module
level (no Spark, torch or FAISS), so ``twotower --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys
from collections.abc import Sequence

from twotower.config import Config, ConfigError, load_config
from twotower.errors import PipelineError, UserError

# Stage packages that add subcommands, in the order they appear in --help.
COMMAND_MODULES: tuple[str, ...] = ("twotower.cli_config", "twotower.cli_pipeline", "indexing.cli", "logsim.cli", "importers.cli", "etl.cli", "training.cli", "quality.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="twotower",
        description="Daily two-tower retrieval pipeline: raw logs -> Spark ETL -> training -> FAISS artifact.",
    )
    parser.add_argument("--config", metavar="FILE", help="TOML config (default: $TWOTOWER_CONFIG or ./twotower.toml)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        cfg: Config = load_config(args.config)
        return int(args.func(cfg, args) or 0)
    except (ConfigError, UserError) as exc:
        print(f"twotower {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except PipelineError as exc:
        print(f"twotower {args.command}: failed: {exc}", file=sys.stderr)
        return 1


def print_json(obj) -> None:
    print(json.dumps(obj, indent=2, sort_keys=True, default=str))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
