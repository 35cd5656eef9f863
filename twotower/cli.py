"""The ``twotower`` command line: a thin layer that wires typed options to stage functions.

Each stage package contributes its subcommands through a ``register(subparsers)`` function
in its ``cli`` module (listed in :data:`COMMAND_MODULES`). A subcommand sets ``func(cfg, args)
-> int``; the config is loaded once here (``--config FILE``, default ``twotower.toml`` +
environment overrides) and passed explicitly. ``cli`` modules import nothing heavy at module
level (no Spark, torch or FAISS), so ``twotower --help`` stays fast.

Every ``--ds`` option of every command parses with :func:`ds_type` (set here for the options
that do not name it), so a bad day is one line on stderr and exit code 2 before anything
runs. Argument errors are one line too; a closed stdout (``twotower ... | head``) ends the
command quietly with exit code 141 (128 + SIGPIPE, like other Unix tools).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from collections.abc import Sequence

from contracts.days import ds_str
from core.config import Config, ConfigError
from core.config_load import load_config
from core.errors import PipelineError, UserError

# Stage packages that add subcommands, in the order they appear in --help.
COMMAND_MODULES: tuple[str, ...] = ("twotower.commands.config", "twotower.commands.pipeline", "twotower.commands.runs", "twotower.commands.indexing", "twotower.commands.logsim", "twotower.commands.importers", "twotower.commands.etl", "twotower.commands.training", "twotower.commands.quality")


# Exit code of a command whose stdout was closed by the reader (128 + SIGPIPE).
EXIT_BROKEN_PIPE = 141


def ds_type(text: str) -> str:
    """argparse type of every ``--ds`` option: a real calendar day ``YYYY-MM-DD``, normalised
    (:func:`contracts.days.ds_str`, the one day parser)."""
    try:
        return ds_str(text)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"{text!r} is not a day: expected a real calendar date YYYY-MM-DD, e.g. 2026-11-04")


class OneLineParser(argparse.ArgumentParser):
    """Argument errors as one line (``twotower run: error: ...``) and exit code 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _ds_options(parser: argparse.ArgumentParser) -> None:
    """Give every ``--ds`` option of every (sub)command the shared :func:`ds_type`."""
    for action in parser._actions:
        if "--ds" in action.option_strings and action.type is None:
            action.type = ds_type
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _ds_options(child)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="twotower",
        description="Daily two-tower retrieval pipeline: raw logs -> Spark ETL -> training -> FAISS artifact.",
    )
    parser.add_argument("--config", metavar="FILE", help="TOML config (default: $TWOTOWER_CONFIG or ./twotower.toml)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    _ds_options(parser)
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
        code = int(args.func(cfg, args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, inside the handler below
        return code
    except BrokenPipeError:
        # Nothing more can reach the reader: point stdout at /dev/null so that the
        # interpreter's final flush does not print "Exception ignored ... BrokenPipeError".
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
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
