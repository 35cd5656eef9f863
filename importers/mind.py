"""MIND (Microsoft News Dataset) ``behaviors.tsv`` (+ ``news.tsv``) into the raw contract.

* impressions: one row per shown item; ``clicked`` from the label (``N123-1``), ``position``
  from the order in the impression list (0-based), ``ts`` from the row time (US format
  ``11/12/2019 2:14:46 PM``, UTC), ``request_id`` = ``--id-prefix`` + impression id.
* users (per day): the users seen that day; optional numeric feature ``history_len`` (distinct
  items in the user's click-history column).
* items (per day): the items shown that day (MIND's impression lists are the day's candidate
  pool); ``category`` / ``subcategory`` from news.tsv, ``"unknown"`` for items news.tsv lacks.
* ranking_log: none (MIND has no funnel log); no partition is written.
* The click-history column (clicks before the logging period, without times): by default
  only the ``history_len`` user feature. ``history="clicks"`` also writes every (user,
  history item) pair as a clicked impression (position null, request ``history-<user>``) on
  ``history_day`` (default: the day before the first behaviours day), so the ETL uses them
  as earlier-day clicks (training positives and the user's recent-click history).
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from core.errors import UserError
from importers.common import day_stats, examples, input_error, split_days

BEHAVIOR_COLUMNS = ("impression_id", "user_id", "time", "history", "impressions")
NEWS_COLUMNS = (
    "news_id",
    "category",
    "subcategory",
    "title",
    "abstract",
    "url",
    "title_entities",
    "abstract_entities",
)
TIME_FORMAT = "%m/%d/%Y %I:%M:%S %p"
UNKNOWN = "unknown"  # category/subcategory of items news.tsv does not describe
HISTORY_FEATURE = "history_len"
HistoryMode = Literal["feature", "clicks"]


def _empty(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(col)), 0))


def parse_behaviors(fields: pa.Table, path: str | Path, id_prefix: str = "") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate behaviours fields and explode them.

    Args:
        fields: from ``importers.io.read_tsv_fields`` (string columns + ``line``).
    Returns:
        (impressions: request_id, user_id, item_id, ts, position, clicked, line;
         history: distinct (user_id, item_id) pairs of the history column).
    Raises:
        InputError naming the file, lines and column of the first kind of problem found.
    """
    line = np.asarray(fields.column("line"))
    for col in ("impression_id", "user_id"):
        bad = _empty(fields.column(col))
        if bad.any():
            raise input_error(path, f"{bad.sum():,} empty {col} values", lines=line[bad], column=col, expected="non-empty ids")
    imp_id = fields.column("impression_id")
    dup = pd.Series(np.asarray(imp_id, dtype=object)).duplicated(keep=False).to_numpy()
    if dup.any():
        raise input_error(
            path,
            f"impression id {np.asarray(imp_id, dtype=object)[dup][0]!r} appears on more than one line",
            lines=line[dup],
            column="impression_id",
            expected="unique impression ids (import files of different splits separately, or with --id-prefix)",
        )
    ts = pc.strptime(fields.column("time"), format=TIME_FORMAT, unit="us", error_is_null=True)
    bad = np.asarray(pc.is_null(ts))
    if bad.any():
        raise input_error(
            path,
            f"cannot parse time {examples(np.asarray(fields.column('time'), dtype=object)[bad])}",
            lines=line[bad],
            column="time",
            expected="US format M/D/YYYY h:mm:ss AM|PM (UTC), e.g. '11/12/2019 2:14:46 PM'",
        )
    ts = pc.assume_timezone(ts, "UTC")

    empty = _empty(fields.column("impressions"))
    if empty.any():
        raise input_error(
            path, "empty impression list", lines=line[empty], column="impressions", expected="space-separated NEWSID-LABEL"
        )
    # Split on single spaces (MIND's separator): a doubled space shows up as an empty, bad entry.
    lists = pc.split_pattern(pc.utf8_trim_whitespace(fields.column("impressions").combine_chunks()), " ")
    tokens = pc.list_flatten(lists)
    parent = np.asarray(pc.list_parent_indices(lists))
    offsets = np.asarray(lists.offsets)[:-1]
    position = (np.arange(len(tokens)) - offsets[parent]).astype(np.int32)
    parsed = pc.extract_regex(tokens, r"^(?P<item>\S+)-(?P<label>[01])$")
    bad = np.asarray(pc.is_null(parsed))
    if bad.any():
        raise input_error(
            path,
            f"bad impression entries {examples(np.asarray(tokens, dtype=object)[bad])}",
            lines=line[parent[bad]],
            column="impressions",
            expected="space-separated NEWSID-LABEL entries with LABEL 0 (shown) or 1 (clicked), e.g. 'N55689-1'",
        )
    imps = pd.DataFrame(
        {
            "request_id": np.asarray(pc.binary_join_element_wise(id_prefix, imp_id, ""), dtype=object)[parent],
            "user_id": np.asarray(fields.column("user_id"), dtype=object)[parent],
            "item_id": np.asarray(pc.struct_field(parsed, "item"), dtype=object),
            "ts": pd.to_datetime(np.asarray(pc.cast(ts, pa.int64()))[parent], unit="us", utc=True),
            "position": pd.array(position, dtype="Int32"),
            "clicked": np.asarray(pc.equal(pc.struct_field(parsed, "label"), "1")),
            "line": line[parent],
        }
    )
    dup = imps.duplicated(["request_id", "item_id"], keep=False).to_numpy()
    if dup.any():
        first = imps[dup].iloc[0]
        raise input_error(
            path,
            f"item {first.item_id!r} is listed more than once in impression {first.request_id!r}",
            lines=np.unique(imps["line"].to_numpy()[dup]),
            column="impressions",
            expected="each item at most once per impression list",
        )

    # utf8_split_whitespace turns an empty history into [""]: drop empty entries.
    hist = pc.utf8_split_whitespace(fields.column("history").combine_chunks())
    hist_items = np.asarray(pc.list_flatten(hist), dtype=object)
    keep = hist_items != ""
    history = pd.DataFrame(
        {
            "user_id": np.asarray(fields.column("user_id"), dtype=object)[np.asarray(pc.list_parent_indices(hist))[keep]],
            "item_id": hist_items[keep],
        }
    ).drop_duplicates()
    return imps, history


def parse_news(fields: pa.Table, path: str | Path) -> pd.DataFrame:
    """news.tsv fields -> frame indexed by news_id with ``category``, ``subcategory``."""
    line = np.asarray(fields.column("line"))
    bad = _empty(fields.column("news_id"))
    if bad.any():
        raise input_error(path, "empty news ids", lines=line[bad], column="news_id", expected="non-empty ids")
    news = pd.DataFrame(
        {c: np.asarray(fields.column(c), dtype=object) for c in ("news_id", "category", "subcategory")}
    )
    dup = news["news_id"].duplicated(keep=False).to_numpy()
    if dup.any():
        raise input_error(
            path,
            f"news id {news['news_id'][dup].iloc[0]!r} is described more than once",
            lines=line[dup],
            column="news_id",
            expected="one line per news id",
        )
    news = news.replace({"category": {"": UNKNOWN}, "subcategory": {"": UNKNOWN}})
    return news.set_index("news_id")


def history_clicks(history: pd.DataFrame, day: dt.date, id_prefix: str = "") -> pd.DataFrame:
    """History pairs as clicked impressions on ``day`` (00:00 UTC, position unknown)."""
    return pd.DataFrame(
        {
            "request_id": id_prefix + "history-" + history["user_id"].astype(str),
            "user_id": history["user_id"].to_numpy(),
            "item_id": history["item_id"].to_numpy(),
            "ts": pd.Timestamp(day.isoformat(), tz="UTC"),
            "position": pd.array([None] * len(history), dtype="Int32"),
            "clicked": True,
        }
    )


def build_mind_days(
    imps: pd.DataFrame,
    history: pd.DataFrame,
    news: pd.DataFrame | None,
    features,
    history_mode: HistoryMode = "feature",
    history_day: dt.date | None = None,
    id_prefix: str = "",
) -> tuple[dict[str, dict[str, pa.Table]], list[str], str | None]:
    """Per-day raw tables from parsed behaviours (pure). Returns (days, null features, history day)."""
    user_feats = pd.DataFrame({HISTORY_FEATURE: history.groupby("user_id").size().astype("float64")})
    rows = imps.drop(columns=["line"])
    hist_ds = None
    if history_mode == "clicks" and len(history):
        first = imps["ts"].min().date()
        day = history_day or first - dt.timedelta(days=1)
        if day >= first:
            raise UserError(
                f"--history-day {day} must be before the first behaviours day {first} (history clicks happened "
                "before the logging period)"
            )
        rows = pd.concat([history_clicks(history, day, id_prefix), rows], ignore_index=True)
        hist_ds = day.isoformat()
    item_feats = news[["category", "subcategory"]] if news is not None else None
    days, missing = split_days(
        rows,
        features,
        user_feats.reindex(pd.Index(rows["user_id"].unique())).fillna(0.0),
        item_feats,
        item_defaults={"category": UNKNOWN, "subcategory": UNKNOWN},
    )
    return days, missing, hist_ds


def import_mind(
    cfg,
    behaviors: str | Path,
    news: str | Path | None = None,
    history: HistoryMode = "feature",
    history_day: str | None = None,
    id_prefix: str = "",
) -> dict[str, Any]:
    """Validate the whole input, then write each day (atomically). Returns statistics."""
    from contracts.days import parse_ds
    from importers import io

    t0 = time.perf_counter()
    fields = io.read_tsv_fields(behaviors, BEHAVIOR_COLUMNS, "MIND behaviors file")
    imps, hist = parse_behaviors(fields, behaviors, id_prefix)
    news_frame = None
    if news is not None:
        news_frame = parse_news(io.read_tsv_fields(news, NEWS_COLUMNS, "MIND news file"), news)
    try:
        hday = parse_ds(history_day) if history_day else None
    except ValueError as exc:
        raise UserError(f"--history-day: {exc}") from exc
    days, missing, hist_ds = build_mind_days(imps, hist, news_frame, cfg.features, history, hday, id_prefix)
    written = io.write_days(cfg, days)
    shown_items = imps["item_id"].unique()
    described = 0 if news_frame is None else int(pd.Index(shown_items).isin(news_frame.index).sum())
    return {
        "source": "mind",
        "behaviors": str(behaviors),
        "news": str(news) if news else None,
        "behavior_lines": len(fields),
        "impressions": len(imps),
        "clicks": int(imps["clicked"].sum()),
        "users": int(imps["user_id"].nunique()),
        "items": len(shown_items),
        "items_with_category": described,
        "history_mode": history,
        "history_pairs": len(hist),
        "history_day": hist_ds,
        "ranking_log": "none (MIND has no funnel log; no hard negatives)",
        "features_written_as_null": missing,
        "per_day": day_stats(days),
        "partitions_written": written,
        "seconds": round(time.perf_counter() - t0, 2),
    }
