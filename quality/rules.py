"""Row-level data-quality rules shared by the quality gates and the ETL's raw reader.

A *row rule* flags one row of one raw table as unusable (a null id, a timestamp outside the
partition's day, a negative position, an unknown ranking stage, a NaN feature...). Rows that
match a rule are quarantined by :mod:`quality.quarantine` (when few enough) and dropped by the ETL's
raw reader through :func:`bad_row_condition`, so both apply exactly the same rules.

Every condition is null-safe (``coalesce(..., false)``): ``df.filter(~cond)`` must never drop
a good row because a nullable column made the condition null.

Importing this module has no side effects; pyspark is imported inside the functions.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from contracts.days import parse_ds
from contracts.schemas import RANKING_STAGES

if TYPE_CHECKING:
    from pyspark.sql import Column

    from core.config import Config

# Name of the column the quarantine adds to each set-aside row.
REASON_COLUMN = "dq_reason"


@dataclass(frozen=True)
class RowRule:
    """One row-level rule of a raw table.

    Attributes:
        name: short id used in reports and the quarantine's reason column, e.g. ``null_user_id``.
        column: the column the rule is about (for error messages).
        description: what a failing row means, in words.
        condition: Spark Column, true for a failing row (null-safe).
    """

    name: str
    column: str
    description: str
    condition: Column


def day_bounds_micros(ds: str | dt.date) -> tuple[int, int]:
    """[start, end) of the partition's UTC day in epoch microseconds."""
    day = parse_ds(ds)
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC)
    end = start + dt.timedelta(days=1)
    return int(start.timestamp()) * 1_000_000, int(end.timestamp()) * 1_000_000


def null_safe(cond: Column) -> Column:
    """``cond`` with null read as false (a row rule or flag is never null)."""
    from pyspark.sql import functions as F

    return F.coalesce(cond, F.lit(False))


def _null(column: str) -> RowRule:
    from pyspark.sql import functions as F

    return RowRule(f"null_{column}", column, f"{column} is null", null_safe(F.col(column).isNull()))


# An id that is empty, starts or ends with whitespace (ASCII or Unicode) or holds a control
# character. Such ids are never trimmed into a match: they would become new, permanent
# vocabulary entries (phantom users/items), so they are quarantined or stop the day.
MALFORMED_ID_PATTERN = r"^[\s\p{Z}]|[\s\p{Z}]$|\p{Cc}"


def _malformed_id(column: str) -> RowRule:
    from pyspark.sql import functions as F

    c = F.col(column)
    cond = c.isNotNull() & ((F.length(c) == 0) | c.rlike(MALFORMED_ID_PATTERN))
    return RowRule(
        f"malformed_{column}",
        column,
        f"{column} is empty, has leading/trailing whitespace or a control character",
        null_safe(cond),
    )


def _ids(*columns: str) -> list[RowRule]:
    return [rule for c in columns for rule in (_null(c), _malformed_id(c))]


# Row rules of a multi-day frame take the partition's day from this date column.
DAY_COLUMN = "event_ds"
MICROS_PER_DAY = 86_400_000_000


def _ts_outside_day(ds: str | None) -> RowRule:
    """``ts`` outside the partition's UTC day: the day ``ds``, or (``ds`` None, a multi-day
    frame) each row's ``DAY_COLUMN``."""
    from pyspark.sql import functions as F

    # unix_micros is time-zone independent (the session zone does not matter).
    micros = F.unix_micros(F.col("ts"))
    if ds is None:
        day = F.datediff(F.col(DAY_COLUMN), F.lit("1970-01-01").cast("date")).cast("long")
        cond = F.col("ts").isNull() | (F.floor(micros / F.lit(MICROS_PER_DAY)) != day)
        return RowRule("ts_outside_day", "ts", "ts is null or outside its partition's UTC day", null_safe(cond))
    lo, hi = day_bounds_micros(ds)
    cond = F.col("ts").isNull() | (micros < F.lit(lo)) | (micros >= F.lit(hi))
    return RowRule("ts_outside_day", "ts", f"ts is null or outside the UTC day {ds}", null_safe(cond))


def _not_finite(column: str) -> Column:
    from pyspark.sql import functions as F

    c = F.col(column)
    return F.isnan(c) | (c == F.lit(math.inf)) | (c == F.lit(-math.inf))


def _numeric_feature_rules(columns: tuple[str, ...], cfg: Config) -> list[RowRule]:
    from pyspark.sql import functions as F

    out = []
    for name in columns:
        out.append(RowRule(f"nan_{name}", name, f"{name} is NaN or infinite", null_safe(_not_finite(name))))
        if name in cfg.features.numeric_ranges:
            lo, hi = cfg.features.numeric_ranges[name]
            c = F.col(name)
            # Null features are allowed (the ETL imputes them); NaN is caught by the rule above.
            cond = c.isNotNull() & ~F.isnan(c) & ((c < F.lit(lo)) | (c > F.lit(hi)))
            out.append(RowRule(f"range_{name}", name, f"{name} outside the declared range [{lo}, {hi}]", null_safe(cond)))
    return out


def row_rules(table_name: str, cfg: Config, ds: str | dt.date | None) -> list[RowRule]:
    """The row rules of raw table ``table_name`` for partition ``ds`` (empty if it has none);
    ``ds`` None: for a frame of several partitions, each row's day in ``DAY_COLUMN``.

    Rules only reference contract columns that are always present (required ones and the
    configured feature columns), so they apply to any partition that passed the schema check.
    """
    from pyspark.sql import functions as F

    ds = None if ds is None else parse_ds(ds).isoformat()
    f = cfg.features
    if table_name == "impressions":
        return [
            *_ids("request_id", "user_id", "item_id"),
            _ts_outside_day(ds),
            RowRule("negative_position", "position", "position < 0", null_safe(F.col("position") < 0)),
            RowRule("null_clicked", "clicked", "clicked is null", null_safe(F.col("clicked").isNull())),
        ]
    if table_name == "ranking_log":
        return [
            *_ids("request_id", "user_id", "item_id"),
            _ts_outside_day(ds),
            RowRule(
                "unknown_stage",
                "stage",
                f"stage is null or not one of {', '.join(RANKING_STAGES)}",
                null_safe(F.col("stage").isNull() | ~F.col("stage").isin(*RANKING_STAGES)),
            ),
            RowRule("null_passed", "passed", "passed is null", null_safe(F.col("passed").isNull())),
            RowRule("nan_score", "score", "score is NaN or infinite", null_safe(_not_finite("score"))),
        ]
    if table_name == "users":
        return [*_ids("user_id"), *_numeric_feature_rules(tuple(f.user_numeric), cfg)]
    if table_name == "items":
        return [*_ids("item_id"), *_numeric_feature_rules(tuple(f.item_numeric), cfg)]
    return []


def bad_row_condition(table_name: str, cfg: Config, ds: str | dt.date | None) -> Column | None:
    """Spark Column that is true for a row of raw ``table_name`` (partition ``ds``) that data
    quality sets aside; ``None`` when the table has no row rules.

    The ETL's raw reader keeps ``df.filter(~bad_row_condition(...))``. The condition is
    null-safe: it is never null, so no good row is dropped by three-valued logic.
    """
    rules = row_rules(table_name, cfg, ds)
    if not rules:
        return None
    cond = rules[0].condition
    for rule in rules[1:]:
        cond = cond | rule.condition
    return cond

