"""The engine of the declared output checks: turns :data:`quality.output_checks.OUTPUT_CHECKS`
into one GE rows suite per ETL output (flag columns checked by GE, joins for the cross-table
checks), plus the vocabulary's stability suite.

Each kind in :data:`KINDS` adds to the suite being built: a flag column and its check, a
join that replaces the frame (subset, disjoint, alias table), or a table-level check. The
reference frames of cross-table checks are read through :mod:`quality.io`.
"""

from __future__ import annotations

import functools
import logging
import operator
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from contracts.outputs import ETL_OUTPUTS
from quality import io
from quality.checks import (
    FLAG_PREFIX,
    Check,
    Suite,
    flag_check,
    not_finite,
    overlap_flag,
    subset_flag,
    sum_to_one_check,
    unique_check,
)
from quality.output_checks import MAY_BE_EMPTY, OUTPUT_CHECKS, OutputCheck
from quality.output_suites import (
    alias_frame,
    days_flag,
    idx_range_flags,
    output_rows_suite,
    vocabulary_stability_suite,
)
from quality.rules import bad_row_condition, day_bounds_micros, null_safe

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

    from core.context import RunContext

# The gates log under one name (what operators filter on), whichever module writes the line.
log = logging.getLogger("quality.gates")


@dataclass
class _Env:
    """What the checks of one day read besides their own table."""

    ctx: RunContext
    spark: SparkSession
    frames: dict[str, DataFrame]  # the outputs that passed their contract suite
    sizes: dict[str, int]  # vocabulary -> max id

    def reference(self, name: str) -> DataFrame | None:
        return REFERENCES[name](self)


@dataclass
class _Build:
    """The suite of one table being built: joins replace ``frame``; ``flags`` are added last."""

    table: str
    source: DataFrame
    frame: DataFrame
    flags: dict[str, Column] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    extra: list[Suite] = field(default_factory=list)

    def flag(self, spec: OutputCheck, env: _Env, cond: Column) -> None:
        self.flags[FLAG_PREFIX + spec.name] = cond
        problem = spec.problem.replace("{ds}", env.ctx.ds)
        self.checks.append(flag_check(spec.name, "critical", problem, spec.fix, column=spec.named_column))


def output_row_suites(ctx: RunContext, spark: SparkSession, frames: dict[str, DataFrame]) -> list[Suite]:
    """The rows suites of the ETL outputs in ``frames`` (those that passed their contract).

    Raises:
        io.UnreadableFile: a reference partition (an earlier day's output or raw table) has a
            data file that is not readable Parquet.
    """
    env = _Env(ctx, spark, frames, _vocab_sizes(frames["vocabulary"]) if "vocabulary" in frames else {})
    out: list[Suite] = []
    for table, specs in OUTPUT_CHECKS.items():
        if table not in frames:
            continue
        build = _Build(table, frames[table], frames[table])
        for spec in specs:
            KINDS[spec.kind](spec, env, build)
        out.append(
            output_rows_suite(
                ETL_OUTPUTS[table], build.frame, ctx.ds, build.flags, build.checks, allow_empty=table in MAY_BE_EMPTY
            )
        )
        out.extend(build.extra)
    return out


def _vocab_sizes(vocabulary: DataFrame) -> dict[str, int]:
    from pyspark.sql import functions as F

    # One row per vocabulary: small to collect.
    return {r["vocab"]: int(r["max_id"]) for r in vocabulary.groupBy("vocab").agg(F.max("id").alias("max_id")).collect()}


def _col(name: str) -> Column:
    from pyspark.sql import functions as F

    return F.col(name)


# -- kinds ------------------------------------------------------------------------------------


def _not_null(spec: OutputCheck, env: _Env, b: _Build) -> None:
    b.flag(spec, env, _col(spec.columns[0]).isNull())


def _finite(spec: OutputCheck, env: _Env, b: _Build) -> None:
    terms = [not_finite(_col(c)) for c in spec.columns] + [_col(c) <= 0 for c in spec.params.get("positive", ())]
    b.flag(spec, env, null_safe(functools.reduce(operator.or_, terms)))


def _non_negative(spec: OutputCheck, env: _Env, b: _Build) -> None:
    c = _col(spec.columns[0])
    b.flag(spec, env, null_safe(c.isNull() | (c < 0)))


def _in_set(spec: OutputCheck, env: _Env, b: _Build) -> None:
    b.flag(spec, env, null_safe(~_col(spec.columns[0]).isin(*spec.params["values"])))


def _allowed_pairs(spec: OutputCheck, env: _Env, b: _Build) -> None:
    first, second = (_col(c) for c in spec.columns)
    allowed = functools.reduce(operator.or_, [(first == x) & (second == y) for x, y in spec.params["pairs"]])
    b.flag(spec, env, null_safe(~allowed))


def _non_empty_array(spec: OutputCheck, env: _Env, b: _Build) -> None:
    from pyspark.sql import functions as F

    b.flag(spec, env, null_safe(F.coalesce(F.size(spec.columns[0]), F.lit(0)) <= 0))


def _in_day(spec: OutputCheck, env: _Env, b: _Build) -> None:
    from pyspark.sql import functions as F

    ts = _col(spec.columns[0])
    lo, hi = day_bounds_micros(env.ctx.ds)
    micros = F.unix_micros(ts)
    b.flag(spec, env, null_safe(ts.isNull() | (micros < lo) | (micros >= hi)))


def _in_days(spec: OutputCheck, env: _Env, b: _Build) -> None:
    days = getattr(env.ctx.window, spec.params["days"])
    flags, checks = days_flag(spec.name, spec.columns[0], days, spec.params["what"])
    b.flags.update(flags)
    b.checks.extend(checks)


def _joined(spec: OutputCheck, env: _Env, b: _Build, reference: DataFrame | None, *, disjoint: bool) -> None:
    """A cross-table check. Failing keys are looked for first, among the table's distinct keys
    only (a semi-join of the reference for a disjointness check, an anti-join for a subset
    check); on valid data there are none, and the flag is a constant, so the table is never
    joined to the reference (a window of raw impressions, say) and the suite reads the table
    alone. Otherwise the rows are flagged by the join, as the examples of failing rows need."""
    from pyspark.sql import functions as F

    if reference is None:
        return
    keys = list(spec.columns)
    mine, theirs = b.frame.select(*keys).distinct(), reference.select(*keys)
    failing = theirs.join(mine, keys, "left_semi") if disjoint else mine.join(theirs, keys, "left_anti")
    started = time.monotonic()
    none = failing.isEmpty()
    # Outside the suite's own timing line (the runner's): the cost of the cross-table part.
    found = "no failing key" if none else "failing keys found"
    log.info("check %s of %s: %s in %.1f s", spec.name, b.table, found, time.monotonic() - started)
    if none:
        b.flag(spec, env, F.lit(False))
        return
    make = overlap_flag if disjoint else subset_flag
    b.frame, check = make(b.frame, reference, keys, spec.name, spec.problem, spec.fix, column=spec.named_column)
    b.checks.append(check)


def _subset(spec: OutputCheck, env: _Env, b: _Build) -> None:
    _joined(spec, env, b, env.reference(spec.params["reference"]), disjoint=False)


def _disjoint(spec: OutputCheck, env: _Env, b: _Build) -> None:
    _joined(spec, env, b, env.reference(spec.params["reference"]), disjoint=True)


def _in_vocabulary(spec: OutputCheck, env: _Env, b: _Build) -> None:
    from pyspark.sql import functions as F

    vocabulary = env.frames.get("vocabulary")
    if vocabulary is None:
        return
    idx_col, id_col = spec.columns
    ref = vocabulary.filter(F.col("vocab") == id_col).select(F.col("id").alias(idx_col), F.col("value").alias(id_col))
    _joined(spec, env, b, ref, disjoint=False)


def _id_ranges(spec: OutputCheck, env: _Env, b: _Build) -> None:
    flags, checks = idx_range_flags(spec.columns or b.source.columns, env.sizes, env.ctx.cfg)
    b.flags.update(flags)
    b.checks.extend(checks)


def _alias_table(spec: OutputCheck, env: _Env, b: _Build) -> None:
    q, etl = env.ctx.cfg.quality, env.ctx.cfg.etl
    b.frame, checks = alias_frame(b.frame, q.probability_tolerance, etl.smoothing, env.frames.get("item_catalogue"))
    b.checks.extend(checks)


def _sum_to_one(spec: OutputCheck, env: _Env, b: _Build) -> None:
    b.checks.append(sum_to_one_check(spec.columns[0], env.ctx.cfg.quality.probability_tolerance))


def _unique(spec: OutputCheck, env: _Env, b: _Build) -> None:
    b.checks.append(unique_check(spec.columns, "critical", None, spec.fix))


def _stable_ids(spec: OutputCheck, env: _Env, b: _Build) -> None:
    ctx = env.ctx
    previous = io.previous_partition_day(ctx.layout, b.table, ctx.ds)
    prev = io.read_partition(env.spark, ctx.layout, b.table, previous) if previous else None
    if prev is not None:
        b.extra.append(vocabulary_stability_suite(b.source, prev, ctx.ds, previous))


KINDS: dict[str, Callable[[OutputCheck, _Env, _Build], None]] = {
    "not_null": _not_null,
    "finite": _finite,
    "non_negative": _non_negative,
    "in_set": _in_set,
    "allowed_pairs": _allowed_pairs,
    "non_empty_array": _non_empty_array,
    "in_day": _in_day,
    "in_days": _in_days,
    "subset": _subset,
    "disjoint": _disjoint,
    "in_vocabulary": _in_vocabulary,
    "id_ranges": _id_ranges,
    "alias_table": _alias_table,
    "sum_to_one": _sum_to_one,
    "unique": _unique,
    "stable_ids": _stable_ids,
}


# -- reference frames of the cross-table checks -------------------------------------------------


def _clicked_impressions(env: _Env) -> DataFrame | None:
    """The day's raw impressions that were clicked and pass the row rules (what positives come from)."""
    from pyspark.sql import functions as F

    ctx = env.ctx
    raw = io.read_partition(env.spark, ctx.layout, "impressions", ctx.ds)
    if raw is None or not {"request_id", "item_id", "user_id", "clicked"} <= set(raw.columns):
        return None
    return raw.filter(F.col("clicked") & ~bad_row_condition("impressions", ctx.cfg, ctx.ds))


def _training_click_positives(env: _Env) -> DataFrame | None:
    return io.read_partitions(env.spark, env.ctx.layout, "click_positives", env.ctx.window.train_days)


def _window_impressions(env: _Env) -> DataFrame | None:
    """Every (user, item) shown in the window's days."""
    from pyspark.sql import functions as F

    shown = io.read_partitions(env.spark, env.ctx.layout, "impressions", env.ctx.window.days)
    if shown is None:
        return None
    return shown.filter(F.col("user_id").isNotNull() & F.col("item_id").isNotNull())


REFERENCES: dict[str, Callable[[_Env], DataFrame | None]] = {
    "clicked_impressions": _clicked_impressions,
    "training_click_positives": _training_click_positives,
    "window_impressions": _window_impressions,
}
