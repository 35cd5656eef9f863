"""``twotower import mind|interactions``: real logs into the raw contract (validated, then written)."""

from __future__ import annotations

import argparse

from core.config import Config


def _names(text: str | None) -> tuple[str, ...]:
    return tuple(c.strip() for c in (text or "").split(",") if c.strip())


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "import",
        help="import real logs (MIND, or your own interactions) into the raw tables",
        description="Validate the whole input first, then write one atomic partition per day and table. "
        "Bad input stops with a message naming file, line and column; nothing is written then.",
    )
    kinds = p.add_subparsers(dest="source", metavar="SOURCE", required=True)

    m = kinds.add_parser(
        "mind",
        help="MIND behaviors.tsv (+ news.tsv)",
        description="One impression row per shown item (clicked from the label, position from the order, ts "
        "from the row time in UTC, request_id from the impression id). Use --config configs/mind.toml "
        "for MIND's features. MIND has no ranking log: the pipeline then runs without hard negatives.",
    )
    m.add_argument("--behaviors", required=True, metavar="FILE", help="behaviors.tsv")
    m.add_argument("--news", metavar="FILE", help="news.tsv (category/subcategory; 'unknown' for items it lacks)")
    m.add_argument(
        "--history",
        choices=("feature", "clicks"),
        default="feature",
        help="use of the click-history column: 'feature' = only the history_len user feature (default); "
        "'clicks' = also write the history as clicked impressions on --history-day",
    )
    m.add_argument("--history-day", metavar="YYYY-MM-DD", help="day for --history clicks (default: the day before the first)")
    m.add_argument("--id-prefix", default="", help="prefix for request ids (to import several splits side by side)")
    m.set_defaults(func=_mind)

    g = kinds.add_parser(
        "interactions",
        help="your own interaction log (CSV/TSV/Parquet) with a column mapping",
        description="Each row is one item shown to a user. Clicks come from --click-col, or --rating-col "
        "with --rating-threshold (rating >= threshold). Rows without a request id get one per (user, timestamp).",
    )
    g.add_argument("--file", required=True, metavar="F", help="interactions file (.csv, .tsv or .parquet)")
    g.add_argument("--format", choices=("auto", "csv", "tsv", "parquet"), default="auto", help="default: by extension")
    g.add_argument("--sep", default=",", help="CSV separator (default ',')")
    g.add_argument("--user-col", default="user_id")
    g.add_argument("--item-col", default="item_id")
    g.add_argument("--ts-col", default="timestamp")
    g.add_argument(
        "--ts-format", default="iso", help="unix | unix_ms | iso (default; naive = UTC) | a strftime pattern, e.g. '%%d/%%m/%%Y %%H:%%M'"
    )
    g.add_argument("--click-col", help="0/1, true/false or yes/no")
    g.add_argument("--rating-col", help="numeric rating; a click when rating >= --rating-threshold")
    g.add_argument("--rating-threshold", type=float)
    g.add_argument("--request-col", help="request id (default: one request per user and timestamp)")
    g.add_argument("--position-col", help="0-based display position (default: unknown)")
    g.add_argument("--liked-col", help="a second engagement signal (0/1)")
    g.add_argument("--users-file", metavar="F", help="one row per user with feature columns")
    g.add_argument("--users-id-col", help="user id column in --users-file (default: --user-col)")
    g.add_argument("--user-cat", help="comma-separated categorical columns of --users-file")
    g.add_argument("--user-num", help="comma-separated numeric columns of --users-file")
    g.add_argument("--items-file", metavar="F", help="one row per item with feature columns")
    g.add_argument("--items-id-col", help="item id column in --items-file (default: --item-col)")
    g.add_argument("--item-cat", help="comma-separated categorical columns of --items-file")
    g.add_argument("--item-num", help="comma-separated numeric columns of --items-file")
    g.set_defaults(func=_interactions)


def format_summary(stats: dict) -> str:
    lines = [
        f"imported {stats['impressions']:,} impressions ({stats['clicks']:,} clicks) of {stats['users']:,} users "
        f"and {stats['items']:,} items in {stats['seconds']:.1f} s; ranking log: {stats['ranking_log']}",
    ]
    if stats.get("features_written_as_null"):
        lines.append(f"  declared features not in the input (written as null): {', '.join(stats['features_written_as_null'])}")
    if stats.get("history_day"):
        lines.append(f"  history: {stats['history_pairs']:,} clicked (user, item) pairs written on {stats['history_day']}")
    for d in stats["per_day"]:
        lines.append(f"  {d['ds']}: {d['impressions']:,} impressions, {d['clicks']:,} clicks, {d['users']:,} users, {d['items']:,} items")
    return "\n".join(lines)


def _mind(cfg: Config, args: argparse.Namespace) -> int:
    from importers.mind import import_mind

    stats = import_mind(cfg, args.behaviors, args.news, args.history, args.history_day, args.id_prefix)
    print(format_summary(stats))
    return 0


def _interactions(cfg: Config, args: argparse.Namespace) -> int:
    from pathlib import Path

    from importers.interactions import ColumnMapping, FeatureFile, import_interactions

    mapping = ColumnMapping(
        user=args.user_col,
        item=args.item_col,
        ts=args.ts_col,
        ts_format=args.ts_format,
        click=args.click_col,
        rating=args.rating_col,
        rating_threshold=args.rating_threshold,
        request=args.request_col,
        position=args.position_col,
        liked=args.liked_col,
    )
    users = items = None
    if args.users_file:
        users = FeatureFile(Path(args.users_file), args.users_id_col or args.user_col, _names(args.user_cat), _names(args.user_num))
    if args.items_file:
        items = FeatureFile(Path(args.items_file), args.items_id_col or args.item_col, _names(args.item_cat), _names(args.item_num))
    stats = import_interactions(cfg, args.file, mapping, users, items, args.format, args.sep)
    print(format_summary(stats))
    return 0
