"""Rows suites of the raw tables: the row rules (quarantine severity), duplicates, the day's
volume against the trailing days, and the consistency of impressions with the ranking log
and the day's user/item snapshots.

Pure construction from DataFrames and small Python facts (trailing-day counts): nothing here
reads storage.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from contracts.days import day_range
from contracts.schemas import RANKING_STAGES, Table
from quality.checks import (
    ANY_ROW_RULE,
    FLAG_PREFIX,
    Check,
    Suite,
    flag_check,
    gx_expectations,
    meta,
    non_empty_check,
    unique_check,
)
from quality.rules import RowRule, bad_row_condition, null_safe, row_rules

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

    from core.config import Config

_ROW_RULE_FIX = (
    "a few such rows are quarantined automatically; this many means the producer is broken: fix the "
    "export for this day (or raise quality.quarantine_max_fraction if the rows are known to be junk), "
    "then rerun the day"
)


def trailing_days(ds: str, days: int) -> list[str]:
    """The ``days`` days before ``ds`` (the volume check's history), oldest first."""
    return day_range(ds, days + 1)[:-1]


def row_rule_checks(rules: list[RowRule]) -> tuple[dict[str, Column], list[Check]]:
    """Flag columns and quarantine checks for the table's row rules, plus the union flag."""
    flags: dict[str, Column] = {}
    checks: list[Check] = []
    for rule in rules:
        flags[FLAG_PREFIX + rule.name] = rule.condition
        checks.append(flag_check(rule.name, "quarantine", rule.description, _ROW_RULE_FIX, column=rule.column))
    if rules:
        any_bad = rules[0].condition
        for rule in rules[1:]:
            any_bad = any_bad | rule.condition
        flags[FLAG_PREFIX + ANY_ROW_RULE] = any_bad
        checks.append(flag_check(ANY_ROW_RULE, "quarantine", "the row fails at least one row rule", _ROW_RULE_FIX))
    return flags, checks


def volume_check(table: str, trailing: dict[str, int], cfg: Config) -> Check | None:
    """Row count of the day within [volume_low, volume_high] x median(trailing days' counts)."""
    counts = sorted(v for v in trailing.values() if v > 0)
    if not counts:
        return None
    mid = len(counts) // 2
    median = counts[mid] if len(counts) % 2 else (counts[mid - 1] + counts[mid]) / 2
    q = cfg.quality
    low, high = math.ceil(q.volume_low * median), math.floor(q.volume_high * median)
    return Check(
        "volume",
        "critical",
        gx_expectations().ExpectTableRowCountToBeBetween(
            min_value=low,
            max_value=high,
            meta={**meta("volume", "critical"), "trailing_counts": trailing, "median": median},
            severity="critical",
        ),
        f"the day's row count is outside [{low:,}, {high:,}] = [{q.volume_low}, {q.volume_high}] x the median "
        f"{median:,.0f} of the trailing {len(counts)} days",
        "check that the day's export is complete (a partial upload or a duplicated one); if the change is "
        "real (launch, outage), rerun with TWOTOWER__QUALITY__VOLUME_LOW / VOLUME_HIGH adjusted",
    )


def raw_rows_suite(
    table: Table,
    df: DataFrame,
    ds: str,
    cfg: Config,
    trailing_counts: dict[str, int] | None = None,
    ranking_cut: DataFrame | None = None,
    known_users: DataFrame | None = None,
    known_items: DataFrame | None = None,
) -> Suite:
    """Row-level suite of a raw partition that passed its contract check.

    Args:
        table: the raw table's contract.
        df: the partition as read.
        trailing_counts: row counts of the trailing days present (volume check; None = skip).
        ranking_cut: for impressions, distinct (request_id, item_id) the ranking log cut
            (a passed=false row): a shown row there is inconsistent, a click there is a click
            on a row that was not shown.
        known_users / known_items: for impressions, the day's snapshot ids (unknown ids are a
            warning: the ETL maps them to out-of-vocabulary).
    """
    from pyspark.sql import functions as F

    rules = row_rules(table.name, cfg, ds)
    flags, checks = row_rule_checks(rules)
    checks.insert(0, non_empty_check())
    if table.unique:
        checks.append(
            unique_check(
                table.unique,
                "threshold",
                cfg.quality.duplicate_max_fraction,
                "the export duplicated rows (a retried upload?): deduplicate the day's export and rerun; a "
                "few duplicates are tolerated (the ETL keeps one row per key)",
            )
        )
    if trailing_counts is not None:
        vc = volume_check(table.name, trailing_counts, cfg)
        if vc is not None:
            checks.append(vc)
    frame = df
    if ranking_cut is not None:
        cut = ranking_cut.select("request_id", "item_id").distinct().withColumn("_dq_cut", F.lit(True))
        frame = frame.join(cut, ["request_id", "item_id"], "left")
        is_cut = F.col("_dq_cut").isNotNull()
        flags[FLAG_PREFIX + "clicked_not_shown"] = null_safe(is_cut & F.col("clicked"))
        flags[FLAG_PREFIX + "shown_but_cut"] = null_safe(is_cut)
        checks.append(
            flag_check(
                "clicked_not_shown",
                "critical",
                "a click is logged on an item the ranking log says was cut before display (not shown)",
                "impressions and ranking_log disagree: the click logging attributes clicks to items that were "
                "never displayed; fix the click join in the export, then rerun the day",
                column="clicked",
            )
        )
        checks.append(
            flag_check(
                "shown_but_cut",
                "warning",
                "an impression is logged for an item the ranking log says was cut",
                "check the ranking-log export (passed flags) for this day",
            )
        )
    for name, known, col in (("unknown_user", known_users, "user_id"), ("unknown_item", known_items, "item_id")):
        if known is None:
            continue
        ids = known.select(F.col(col)).distinct().withColumn(f"_dq_{name}", F.lit(True))
        frame = frame.join(F.broadcast(ids), [col], "left")
        flags[FLAG_PREFIX + name] = null_safe(F.col(col).isNotNull() & F.col(f"_dq_{name}").isNull())
        checks.append(
            flag_check(
                name,
                "warning",
                f"{col} is not in the day's {col.split('_')[0]}s snapshot",
                "the id still gets a vocabulary id but no snapshot features (imputed), and an unknown item is "
                "not in the catalogue or the index; check the snapshot export if the count is large",
                column=col,
            )
        )
    frame = frame.withColumns(flags)
    return Suite(
        f"validate_raw.{table.name}.rows",
        table.name,
        ds,
        frame,
        checks,
        example_columns=tuple(df.columns),
        source_columns=tuple(df.columns),
        row_rules=rules,
    )


def ranking_funnel_flags(df: DataFrame) -> tuple[DataFrame, list[Check]]:
    """Funnel consistency of the ranking log: an item at pre_rank/rank also passed retrieval."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    w = Window.partitionBy("request_id", "item_id")
    passed_retrieval = F.max(F.when((F.col("stage") == RANKING_STAGES[0]) & F.col("passed"), 1).otherwise(0)).over(w)
    frame = df.withColumn(
        FLAG_PREFIX + "funnel_skips_retrieval",
        null_safe((F.col("stage") != RANKING_STAGES[0]) & (passed_retrieval == 0)),
    )
    check = flag_check(
        "funnel_skips_retrieval",
        "warning",
        "an item has a pre_rank/rank row but no passed retrieval row for the same request",
        "the ranking-log export is missing retrieval rows; hard negatives may be incomplete",
        column="stage",
    )
    return frame, [check]


def raw_row_suites(
    cfg: Config,
    ds: str,
    frames: dict[str, DataFrame],
    contracts: dict[str, Table],
    earlier_counts: dict[str, dict[str, int]],
) -> list[Suite]:
    """The rows suites of the raw tables in ``frames`` (those that passed their contract).

    Args:
        earlier_counts: table -> {day: rows} of the days before ``ds`` present (the volume
            check takes the trailing ``quality.volume_trailing_days`` of them).
    """
    from pyspark.sql import functions as F

    wanted = set(trailing_days(ds, cfg.quality.volume_trailing_days))

    def trailing(table: str) -> dict[str, int]:
        return {d: n for d, n in earlier_counts.get(table, {}).items() if d in wanted}

    out: list[Suite] = []
    ranking = frames.get("ranking_log")
    if "impressions" in frames:
        cut = None
        if ranking is not None:
            cut = ranking.filter(~bad_row_condition("ranking_log", cfg, ds) & ~F.col("passed"))
        users = frames.get("users")
        items = frames.get("items")
        out.append(
            raw_rows_suite(
                contracts["impressions"],
                frames["impressions"],
                ds,
                cfg,
                trailing_counts=trailing("impressions"),
                ranking_cut=cut,
                known_users=users.filter(F.col("user_id").isNotNull()) if users is not None else None,
                known_items=items.filter(F.col("item_id").isNotNull()) if items is not None else None,
            )
        )
    if ranking is not None:
        suite = raw_rows_suite(contracts["ranking_log"], ranking, ds, cfg, trailing_counts=trailing("ranking_log"))
        suite.frame, funnel = ranking_funnel_flags(suite.frame)
        suite.checks.extend(funnel)
        out.append(suite)
    for name in ("users", "items"):
        if name in frames:
            out.append(raw_rows_suite(contracts[name], frames[name], ds, cfg))
    return out
