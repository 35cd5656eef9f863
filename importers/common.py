"""Shared pieces of the importers: input errors that name file/line/column, and the pure
conversion of validated interactions + feature frames into per-day raw-contract tables."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from contracts.schemas import IMPRESSIONS, raw_tables
from core.errors import DataError, UserError

log = logging.getLogger(__name__)

DAY_US = 86_400 * 1_000_000


class InputError(DataError):
    """An input file violates what the importer expects; the message names file, line/column and the fix."""


def format_lines(numbers: Sequence[int] | np.ndarray, word: str = "line", show: int = 5) -> str:
    """``line 7`` / ``lines 3, 9, 12 and 40 more (43 in all)``."""
    numbers = np.asarray(numbers)
    n = len(numbers)
    shown = ", ".join(str(int(x)) for x in numbers[:show])
    text = f"{word}{'s' if n > 1 else ''} {shown}"
    if n > show:
        text += f" and {n - show:,} more ({n:,} in all)"
    return text


def input_error(
    file: str | Path,
    problem: str,
    *,
    lines: Sequence[int] | np.ndarray | None = None,
    line_word: str = "line",
    column: str | None = None,
    expected: str | None = None,
) -> InputError:
    """``<file>, lines 3, 9, column 'ts': cannot parse '2026-13-01'; expected ISO 8601 timestamps``."""
    where = [str(file)]
    if lines is not None and len(lines):
        where.append(format_lines(lines, line_word))
    if column is not None:
        where.append(f"column {column!r}")
    msg = ", ".join(where) + f": {problem}"
    if expected:
        msg += f"; expected {expected}"
    return InputError(msg)


def require_file(path: str | Path, what: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{what} {p} does not exist (or is not a file)")
    return p


def examples(values: pd.Series | np.ndarray, k: int = 3) -> str:
    return ", ".join(repr(v) for v in list(pd.Series(values).head(k)))


@dataclass(frozen=True)
class Features:
    """Feature columns for one snapshot (users or items) as declared by the config."""

    categorical: tuple[str, ...]
    numeric: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return self.categorical + self.numeric


def snapshot(
    ids: np.ndarray | pd.Index, feats: pd.DataFrame | None, id_name: str, schema: pa.Schema, defaults: dict | None = None
) -> tuple[pa.Table, list[str]]:
    """A users/items snapshot in the contract ``schema`` for ``ids``.

    Args:
        feats: frame indexed by id holding (some of) the declared feature columns, or None.
        defaults: values for ids absent from ``feats`` per column (e.g. ``category: "unknown"``).
    Returns:
        (table, declared feature columns the input does not provide: written as null).
    """
    out = pd.DataFrame({id_name: np.asarray(ids, dtype=object)})
    missing = []
    for field in schema:
        if field.name == id_name:
            continue
        if feats is not None and field.name in feats.columns:
            col = feats[field.name].reindex(out[id_name]).to_numpy()
            if defaults and field.name in defaults:
                col = np.where(pd.isna(col), defaults[field.name], col)
            out[field.name] = col
        else:
            if field.name not in (defaults or {}) and field.name != "created_at":
                missing.append(field.name)
            out[field.name] = (defaults or {}).get(field.name)
    present = [f for f in schema if f.name in out.columns]
    table = pa.Table.from_pandas(out[[f.name for f in present]], schema=pa.schema(present), preserve_index=False)
    return table.replace_schema_metadata(None), missing


def day_of(ts: pd.Series) -> np.ndarray:
    """UTC day number (days since 1970-01-01) of tz-aware timestamps."""
    return (ts.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype("datetime64[D]")).astype(np.int64)


def split_days(
    impressions: pd.DataFrame,
    features,
    user_feats: pd.DataFrame | None,
    item_feats: pd.DataFrame | None,
    *,
    all_users: pd.Index | None = None,
    all_items: pd.Index | None = None,
    item_defaults: dict | None = None,
) -> tuple[dict[str, dict[str, pa.Table]], list[str]]:
    """Per-day raw tables from validated impressions.

    Args:
        impressions: columns request_id, user_id, item_id, ts (datetime64 UTC), position (Int32,
            nullable), clicked (bool) and optionally liked (bool / nullable).
        features: the config's FeaturesConfig (which feature columns the contract has).
        all_users / all_items: ids listed in a features file (a known catalogue): part of every
            day's snapshot besides the ids seen that day.
    Returns:
        ({ds: {"impressions"|"users"|"items": table}}, declared features written as null).
    """
    contract = raw_tables(features)
    present = ["liked"] if "liked" in impressions.columns else []
    imp_schema = IMPRESSIONS.arrow_schema(present=present)
    users_schema = contract["users"].arrow_schema()
    items_schema = contract["items"].arrow_schema(present=[])  # created_at: the ETL uses first-seen day
    days = day_of(impressions["ts"])
    out: dict[str, dict[str, pa.Table]] = {}
    missing: set[str] = set()
    for day_number in np.unique(days):
        ds = (np.datetime64(0, "D") + day_number).astype(str)
        day = impressions[days == day_number]
        users = pd.Index(day["user_id"].unique())
        items = pd.Index(day["item_id"].unique())
        if all_users is not None:
            users = users.union(all_users, sort=False)
        if all_items is not None:
            items = items.union(all_items, sort=False)
        u_table, u_missing = snapshot(users, user_feats, "user_id", users_schema)
        i_table, i_missing = snapshot(items, item_feats, "item_id", items_schema, item_defaults)
        missing.update(f"users.{c}" for c in u_missing)
        missing.update(f"items.{c}" for c in i_missing)
        imp = pa.Table.from_pandas(day[[f.name for f in imp_schema]], schema=imp_schema, preserve_index=False)
        imp = imp.replace_schema_metadata(None)
        out[str(ds)] = {"impressions": imp, "users": u_table, "items": i_table}
    if missing:
        log.warning(
            "declared features not in the input, written as null: %s (declare the dataset's own [features], "
            "e.g. --config configs/mind.toml)",
            ", ".join(sorted(missing)),
        )
    return out, sorted(missing)


def day_stats(days: dict[str, dict[str, pa.Table]]) -> list[dict]:
    """Rows per table and clicks per day (for the CLI summary / run report)."""
    stats = []
    for ds, tables in sorted(days.items()):
        imp = tables["impressions"]
        stats.append(
            {
                "ds": ds,
                "impressions": imp.num_rows,
                "clicks": int(np.asarray(imp.column("clicked")).sum()),
                "users": tables["users"].num_rows,
                "items": tables["items"].num_rows,
            }
        )
    return stats
