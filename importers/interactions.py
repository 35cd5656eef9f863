"""Generic importer for a product's own interaction logs (CSV/TSV or Parquet) with a column mapping.

Each input row is one exposure of an item to a user: ``clicked`` comes from a click column
(0/1, true/false, yes/no) or from a rating column and a threshold (``rating >= threshold``).
Rows without a request id get one per (user, timestamp): ``<user>@<microseconds since epoch>``.
Timestamps: ``unix`` (seconds), ``unix_ms``, ``iso`` (ISO 8601; naive = UTC) or a strftime
pattern such as ``%d/%m/%Y %H:%M``. Output is partitioned by the UTC day of the timestamp.

Optional feature files (one row per user / item) name their categorical and numeric columns;
their ids are part of every day's users / items snapshot (a known catalogue). Without them, a
day's snapshot holds the ids seen that day.
"""

from __future__ import annotations

import difflib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from core.errors import UserError
from importers.common import day_stats, examples, input_error, split_days

TS_FORMATS = ("unix", "unix_ms", "iso")
_TRUE = {"1", "true", "t", "yes", "y", "1.0"}
_FALSE = {"0", "false", "f", "no", "n", "0.0"}


@dataclass(frozen=True)
class ColumnMapping:
    """Which input columns hold what. ``click`` xor (``rating`` + ``rating_threshold``)."""

    user: str = "user_id"
    item: str = "item_id"
    ts: str = "timestamp"
    ts_format: str = "iso"
    click: str | None = None
    rating: str | None = None
    rating_threshold: float | None = None
    request: str | None = None
    position: str | None = None
    liked: str | None = None

    def roles(self) -> dict[str, str]:
        """Role -> column for every mapped column."""
        names = ("user", "item", "ts", "click", "rating", "request", "position", "liked")
        return {r: getattr(self, r) for r in names if getattr(self, r) is not None}

    def validate(self) -> None:
        """UserError for an inconsistent mapping (before any file is read)."""
        seen: dict[str, str] = {}
        for role, col in self.roles().items():
            if col in seen:
                raise UserError(
                    f"column mapping names column {col!r} twice (--{seen[col]}-col and --{role}-col); "
                    "each role needs its own column"
                )
            seen[col] = role
        if (self.click is None) == (self.rating is None):
            raise UserError("name exactly one of --click-col or --rating-col (with --rating-threshold)")
        if self.rating is not None and self.rating_threshold is None:
            raise UserError(f"--rating-col {self.rating!r} needs --rating-threshold (rating >= threshold is a click)")
        if self.click is not None and self.rating_threshold is not None:
            raise UserError("--rating-threshold only applies with --rating-col")


@dataclass(frozen=True)
class FeatureFile:
    """A users or items file: its id column and the feature columns to take from it."""

    path: Path
    id_col: str
    categorical: tuple[str, ...] = ()
    numeric: tuple[str, ...] = ()

    def validate(self, what: str) -> None:
        cols = [self.id_col, *self.categorical, *self.numeric]
        dup = sorted({c for c in cols if cols.count(c) > 1})
        if dup:
            raise UserError(f"{what} file {self.path}: column {dup[0]!r} is named twice in the mapping")


def _check_columns(frame: pd.DataFrame, path: Path, wanted: dict[str, str]) -> None:
    """InputError listing every mapped column the file lacks (with the closest real name)."""
    available = [str(c) for c in frame.columns]
    problems, first = [], None
    for role, col in wanted.items():
        if col not in frame.columns:
            lower = {c.lower(): c for c in available}
            close = [lower[c] for c in difflib.get_close_matches(col.lower(), list(lower), n=1, cutoff=0.5)]
            problems.append(f"no column {col!r} for {role}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            first = first or col
    if problems:
        raise input_error(
            path, "; ".join(problems), column=first, expected=f"one of the file's columns: {', '.join(available)}"
        )


def _row_numbers(mask: np.ndarray, first: int) -> np.ndarray:
    return np.flatnonzero(mask) + first


def _ids(frame: pd.DataFrame, col: str, path: Path, word: str, first: int) -> pd.Series:
    raw = frame[col]
    values = raw.astype("string").str.strip()
    bad = values.isna() | (values == "")
    if bad.any():
        raise input_error(
            path,
            f"{int(bad.sum()):,} null or empty ids",
            lines=_row_numbers(bad.to_numpy(), first),
            line_word=word,
            column=col,
            expected="an id on every row",
        )
    return values.astype(object)


def parse_timestamps(values: pd.Series, fmt: str) -> pd.Series:
    """Parse to tz-aware UTC timestamps (microseconds); unparseable -> NaT."""
    if pd.api.types.is_datetime64_any_dtype(values):
        ts = pd.to_datetime(values, utc=True)
    elif fmt in ("unix", "unix_ms"):
        num = pd.to_numeric(values, errors="coerce")
        ts = pd.to_datetime(num, unit="s" if fmt == "unix" else "ms", utc=True, errors="coerce")
    elif fmt == "iso":
        ts = pd.to_datetime(values, format="ISO8601", utc=True, errors="coerce")
    else:
        ts = pd.to_datetime(values, format=fmt, utc=True, errors="coerce")
    return ts.dt.floor("us")


def _expected_ts(fmt: str) -> str:
    return {
        "unix": "unix seconds, e.g. 1730419200",
        "unix_ms": "unix milliseconds, e.g. 1730419200000",
        "iso": "ISO 8601, e.g. 2026-11-01T10:00:00Z (naive = UTC)",
    }.get(fmt, f"timestamps in the format {fmt!r}")


def _booleans(values: pd.Series, path: Path, col: str, word: str, first: int, allow_null: bool) -> pd.Series:
    if pd.api.types.is_bool_dtype(values):
        return values.astype("boolean")
    text = values.astype("string").str.strip().str.lower()
    out = pd.Series(pd.NA, index=values.index, dtype="boolean")
    out[text.isin(_TRUE).fillna(False)] = True
    out[text.isin(_FALSE).fillna(False)] = False
    bad = out.isna() & (text.notna() | (not allow_null))
    if bad.any():
        raise input_error(
            path,
            f"{int(bad.sum()):,} values are not booleans: {examples(values[bad])}",
            lines=_row_numbers(bad.to_numpy(), first),
            line_word=word,
            column=col,
            expected="0/1, true/false or yes/no" + ("" if allow_null else " on every row"),
        )
    return out


def _numbers(values: pd.Series, path: Path, col: str, word: str, first: int, allow_null: bool = True) -> pd.Series:
    num = pd.to_numeric(values, errors="coerce")
    bad = num.isna() & (values.notna() | (not allow_null))
    if bad.any():
        raise input_error(
            path,
            f"{int(bad.sum()):,} values are not numbers: {examples(values[bad])}",
            lines=_row_numbers(bad.to_numpy(), first),
            line_word=word,
            column=col,
            expected="numbers" + ("" if allow_null else " on every row"),
        )
    return num.astype("float64")


def parse_interactions(frame: pd.DataFrame, path: Path, mapping: ColumnMapping, word: str, first: int) -> pd.DataFrame:
    """Validate and convert the mapped columns (pure). Returns the impressions frame for ``split_days``."""
    _check_columns(frame, path, mapping.roles())
    out = pd.DataFrame(index=frame.index)
    out["user_id"] = _ids(frame, mapping.user, path, word, first)
    out["item_id"] = _ids(frame, mapping.item, path, word, first)
    ts = parse_timestamps(frame[mapping.ts], mapping.ts_format)
    bad = ts.isna().to_numpy()
    if bad.any():
        raise input_error(
            path,
            f"{int(bad.sum()):,} timestamps cannot be parsed: {examples(frame[mapping.ts][bad])}",
            lines=_row_numbers(bad, first),
            line_word=word,
            column=mapping.ts,
            expected=_expected_ts(mapping.ts_format),
        )
    out["ts"] = ts
    if mapping.click is not None:
        out["clicked"] = _booleans(frame[mapping.click], path, mapping.click, word, first, allow_null=False).astype(bool)
    else:
        rating = _numbers(frame[mapping.rating], path, mapping.rating, word, first, allow_null=False)
        out["clicked"] = (rating >= mapping.rating_threshold).to_numpy()
    if mapping.liked is not None:
        out["liked"] = _booleans(frame[mapping.liked], path, mapping.liked, word, first, allow_null=True)
    if mapping.position is not None:
        pos = _numbers(frame[mapping.position], path, mapping.position, word, first)
        bad = (pos.notna() & ((pos < 0) | (pos != np.floor(pos)) | (pos > 2**31 - 1))).to_numpy()
        if bad.any():
            raise input_error(
                path,
                f"{int(bad.sum()):,} positions are not 0-based integers: {examples(frame[mapping.position][bad])}",
                lines=_row_numbers(bad, first),
                line_word=word,
                column=mapping.position,
                expected="integers >= 0 (or empty when unknown)",
            )
        out["position"] = pos.astype("Int32")
    else:
        out["position"] = pd.array([None] * len(out), dtype="Int32")
    if mapping.request is not None:
        out["request_id"] = _ids(frame, mapping.request, path, word, first)
    else:
        # One request per (user, timestamp): rows shown together share both.
        micros = out["ts"].astype("int64") // 1_000 if out["ts"].dt.unit == "ns" else out["ts"].astype("int64")
        out["request_id"] = out["user_id"].astype(str) + "@" + micros.astype(str)
    dup = out.duplicated(["request_id", "item_id"], keep=False).to_numpy()
    if dup.any():
        first_dup = out[dup].iloc[0]
        raise input_error(
            path,
            f"item {first_dup.item_id!r} appears more than once in request {first_dup.request_id!r} "
            "(without a request column, a request is one user at one timestamp)",
            lines=_row_numbers(dup, first),
            line_word=word,
            expected="each (request, item) at most once",
        )
    return out


def parse_feature_file(spec: FeatureFile, what: str, fmt: str, sep: str) -> pd.DataFrame:
    """A users/items feature file -> frame indexed by id with the named columns (validated)."""
    from importers import io

    spec.validate(what)
    frame, word, first = io.read_frame(spec.path, f"{what} file", fmt, sep)
    _check_columns(frame, spec.path, {"id": spec.id_col, **{f"feature {c}": c for c in spec.categorical + spec.numeric}})
    ids = _ids(frame, spec.id_col, spec.path, word, first)
    dup = ids.duplicated(keep=False).to_numpy()
    if dup.any():
        raise input_error(
            spec.path,
            f"id {ids[dup].iloc[0]!r} has more than one row",
            lines=_row_numbers(dup, first),
            line_word=word,
            column=spec.id_col,
            expected="one row per id",
        )
    out = pd.DataFrame(index=pd.Index(ids.to_numpy(), name=spec.id_col))
    for c in spec.categorical:
        col = frame[c].astype("string").to_numpy(dtype=object, na_value=None)
        out[c] = col
    for c in spec.numeric:
        out[c] = _numbers(frame[c], spec.path, c, word, first).to_numpy()
    return out


def import_interactions(
    cfg,
    file: str | Path,
    mapping: ColumnMapping,
    users: FeatureFile | None = None,
    items: FeatureFile | None = None,
    fmt: str = "auto",
    sep: str = ",",
) -> dict[str, Any]:
    """Validate the whole input (interactions + feature files), then write each day atomically."""
    from importers import io

    t0 = time.perf_counter()
    mapping.validate()
    if mapping.ts_format not in TS_FORMATS and "%" not in mapping.ts_format:
        raise UserError(f"--ts-format {mapping.ts_format!r}: use one of {', '.join(TS_FORMATS)} or a strftime pattern")
    path = Path(file)
    frame, word, first = io.read_frame(path, "interactions file", fmt, sep)
    imps = parse_interactions(frame, path, mapping, word, first)
    user_feats = parse_feature_file(users, "users", "auto", sep) if users else None
    item_feats = parse_feature_file(items, "items", "auto", sep) if items else None
    days, missing = split_days(
        imps,
        cfg.features,
        user_feats,
        item_feats,
        all_users=None if user_feats is None else user_feats.index,
        all_items=None if item_feats is None else item_feats.index,
    )
    written = io.write_days(cfg, days, complete_items=item_feats is not None)
    return {
        "source": "interactions",
        "file": str(path),
        "rows": len(imps),
        "impressions": len(imps),
        "clicks": int(imps["clicked"].sum()),
        "users": int(imps["user_id"].nunique()),
        "items": int(imps["item_id"].nunique()),
        "requests": int(imps["request_id"].nunique()),
        "ranking_log": "none (no funnel log imported; no hard negatives)",
        "features_written_as_null": missing,
        "per_day": day_stats(days),
        "partitions_written": written,
        "seconds": round(time.perf_counter() - t0, 2),
    }
