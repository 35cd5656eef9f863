"""The run day: every partition is ``ds=YYYY-MM-DD`` (UTC); the one parser of day strings."""

from __future__ import annotations

import datetime as dt


def parse_ds(ds: str | dt.date) -> dt.date:
    """Validate a day string ``YYYY-MM-DD`` (or pass a date through)."""
    if isinstance(ds, dt.date):
        return ds
    try:
        return dt.date.fromisoformat(ds)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"invalid day {ds!r}: expected YYYY-MM-DD") from exc


def ds_str(ds: str | dt.date) -> str:
    return parse_ds(ds).isoformat()


def day_range(end: str | dt.date, days: int) -> list[str]:
    """The ``days`` days ending at ``end`` (inclusive), oldest first."""
    end_d = parse_ds(end)
    return [(end_d - dt.timedelta(days=days - 1 - i)).isoformat() for i in range(days)]
