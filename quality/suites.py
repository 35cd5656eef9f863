"""Great Expectations suites for raw tables and ETL outputs, built from Spark DataFrames.

Pure construction: every function takes DataFrames (and small Python facts such as vocabulary
sizes or trailing-day counts) and returns :class:`Suite` objects; nothing here reads or writes
storage. :mod:`quality.runner` executes the suites with Great Expectations.

Row-level rules that GE has no native expectation for (cross-table subsets, alias-table
reconstruction, id ranges in arrays...) are computed as boolean *flag* columns ``dq_<check>``
(true = the row fails) on the frame being validated, and checked with the native
``ExpectColumnValuesToBeInSet(value_set=[False])``: GE then counts failing rows in the same
aggregation pass as every other expectation of the suite. Table-level properties use native
expectations (columns, types, row counts, sums, compound uniqueness).

Severities:
  * ``critical``: a failure stops the run (:class:`core.errors.QualityGateFailed`);
  * ``warning``: reported, the run goes on;
  * ``quarantine``: row rules of raw tables; failing rows are set aside when they are at most
    ``quality.quarantine_max_fraction`` of the partition, otherwise the check is critical;
  * ``threshold``: a warning up to ``max_fraction`` of the rows, critical above it
    (duplicated impressions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from contracts.schemas import (
    ITEM_CAT_PREFIX,
    ITEM_NUM_PREFIX,
    RANKING_STAGES,
    USER_CAT_PREFIX,
    USER_NUM_PREFIX,
    Table,
)
from quality.rules import RowRule, row_rules

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

    from core.config import Config

Severity = Literal["critical", "warning", "quarantine", "threshold"]
FLAG_PREFIX = "dq_"
ANY_ROW_RULE = "any_row_rule"

_SPARK_TYPE_NAMES = {
    "string": "StringType",
    "int32": "IntegerType",
    "int64": "LongType",
    "float32": "FloatType",
    "float64": "DoubleType",
    "bool": "BooleanType",
    "timestamp": "TimestampType",
    "date": "DateType",
    "array<int64>": "ArrayType",
}
# Types of the dataset-dependent prefixed feature columns of ETL outputs.
_PREFIX_TYPES = {
    USER_CAT_PREFIX: "LongType",
    ITEM_CAT_PREFIX: "LongType",
    USER_NUM_PREFIX: "FloatType",
    ITEM_NUM_PREFIX: "FloatType",
}


@dataclass(frozen=True)
class Check:
    """One expectation with its severity and what to do when it fails.

    Attributes:
        name: stable id, e.g. ``null_user_id``; GE meta ``check`` carries it.
        severity: see the module docstring.
        expectation: the GE expectation object.
        problem: what a failure means, e.g. "user_id is null".
        fix: what the operator should do.
        column: the column concerned, if any.
        flag: name of the boolean flag column (row checks), used to fetch example rows.
        max_fraction: for ``threshold`` checks, the failing fraction tolerated as a warning.
    """

    name: str
    severity: Severity
    expectation: Any
    problem: str
    fix: str
    column: str | None = None
    flag: str | None = None
    max_fraction: float | None = None
    # Key columns of a uniqueness check (example duplicated keys are fetched on failure).
    key: tuple[str, ...] = ()


@dataclass
class Suite:
    """A GE suite over one frame: ``name`` like ``raw.impressions.rows``."""

    name: str
    table: str
    ds: str
    frame: DataFrame
    checks: list[Check]
    # Columns shown for example failing rows.
    example_columns: tuple[str, ...] = ()
    # The original columns of the table (the quarantine keeps these plus the reason).
    source_columns: tuple[str, ...] = ()
    row_rules: list[RowRule] = field(default_factory=list)


def _gxe():
    import great_expectations.expectations as gxe

    return gxe


def _meta(name: str, severity: Severity) -> dict[str, Any]:
    return {"check": name, "twotower_severity": severity}


def _gx_severity(severity: Severity) -> str:
    return "critical" if severity == "critical" else "warning"


def flag_check(
    name: str,
    severity: Severity,
    problem: str,
    fix: str,
    column: str | None = None,
    max_fraction: float | None = None,
) -> Check:
    """A check that no row of the frame has flag column ``dq_<name>`` set."""
    flag = FLAG_PREFIX + name
    exp = _gxe().ExpectColumnValuesToBeInSet(
        column=flag,
        value_set=[False],
        description=f"No row where {problem} (flag column `{flag}`).",
        notes=f"What to do: {fix}",
        meta=_meta(name, severity),
        severity=_gx_severity(severity),
    )
    return Check(name, severity, exp, problem, fix, column=column, flag=flag, max_fraction=max_fraction)


def _safe(cond: Column) -> Column:
    from pyspark.sql import functions as F

    return F.coalesce(cond, F.lit(False))


def _not_finite(c: Column) -> Column:
    from pyspark.sql import functions as F

    return c.isNull() | F.isnan(c) | (c == F.lit(math.inf)) | (c == F.lit(-math.inf))


def _out_of_range(c: Column, low: int, high: int) -> Column:
    return c.isNull() | (c < low) | (c > high)


def _array_out_of_range(c: Column, low: int, high: int) -> Column:
    from pyspark.sql import functions as F

    return F.exists(c, lambda x: x.isNull() | (x < low) | (x > high))


# --------------------------------------------------------------------------------------
# Contract suites (schema only: no data pass)
# --------------------------------------------------------------------------------------


def contract_suite(table: Table, frame: DataFrame, ds: str, stage: str, prefixes: tuple[str, ...] = ()) -> Suite:
    """Columns and types of ``frame`` against the contract ``table``.

    Required columns must exist (``column_exists:<col>``, critical); every contract column
    present, and every prefixed feature column (``u_cat_*``...), must have the contract's
    type (``type:<col>``, critical).
    """
    gxe = _gxe()
    checks: list[Check] = []
    present = set(frame.columns)
    fix_missing = (
        "the producer renamed or dropped the column: restore it (or update contracts/schemas.py "
        "and the config's features if the change is intended), then rerun the day"
    )
    checks.append(
        Check(
            "columns",
            "critical",
            gxe.ExpectTableColumnsToMatchSet(
                column_set=list(table.required_names),
                exact_match=False,
                meta=_meta("columns", "critical"),
                severity="critical",
            ),
            "required contract columns are missing",
            fix_missing,
        )
    )
    for c in table.columns:
        if not c.required and c.name not in present:
            continue
        checks.append(
            Check(
                f"column_exists:{c.name}",
                "critical",
                gxe.ExpectColumnToExist(column=c.name, meta=_meta(f"column_exists:{c.name}", "critical"), severity="critical"),
                f"column {c.name} is missing",
                fix_missing,
                column=c.name,
            )
        )
        if c.name in present:
            checks.append(
                Check(
                    f"type:{c.name}",
                    "critical",
                    gxe.ExpectColumnValuesToBeOfType(
                        column=c.name,
                        type_=_SPARK_TYPE_NAMES[c.type],
                        meta=_meta(f"type:{c.name}", "critical"),
                        severity="critical",
                    ),
                    f"column {c.name} is not of contract type {c.type} ({_SPARK_TYPE_NAMES[c.type]})",
                    "fix the producer's schema (or cast when importing), then rerun the day",
                    column=c.name,
                )
            )
    for name in sorted(present):
        for prefix in prefixes:
            if name.startswith(prefix):
                checks.append(
                    Check(
                        f"type:{name}",
                        "critical",
                        gxe.ExpectColumnValuesToBeOfType(
                            column=name, type_=_PREFIX_TYPES[prefix], meta=_meta(f"type:{name}", "critical"), severity="critical"
                        ),
                        f"feature column {name} is not {_PREFIX_TYPES[prefix]}",
                        "fix the ETL stage that writes it, then rerun the ETL",
                        column=name,
                    )
                )
    return Suite(f"{stage}.{table.name}.contract", table.name, ds, frame, checks)


# --------------------------------------------------------------------------------------
# Raw row suites
# --------------------------------------------------------------------------------------

_ROW_RULE_FIX = (
    "a few such rows are quarantined automatically; this many means the producer is broken: fix the "
    "export for this day (or raise quality.quarantine_max_fraction if the rows are known to be junk), "
    "then rerun the day"
)


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
        checks.append(
            flag_check(ANY_ROW_RULE, "quarantine", "the row fails at least one row rule", _ROW_RULE_FIX)
        )
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
        _gxe().ExpectTableRowCountToBeBetween(
            min_value=low,
            max_value=high,
            meta={**_meta("volume", "critical"), "trailing_counts": trailing, "median": median},
            severity="critical",
        ),
        f"the day's row count is outside [{low:,}, {high:,}] = [{q.volume_low}, {q.volume_high}] x the median "
        f"{median:,.0f} of the trailing {len(counts)} days",
        "check that the day's export is complete (a partial upload or a duplicated one); if the change is "
        "real (launch, outage), rerun with TWOTOWER__QUALITY__VOLUME_LOW / VOLUME_HIGH adjusted",
    )


def non_empty_check() -> Check:
    return Check(
        "non_empty",
        "critical",
        _gxe().ExpectTableRowCountToBeBetween(min_value=1, meta=_meta("non_empty", "critical"), severity="critical"),
        "the partition has no rows (empty day)",
        "the day's export ran but wrote nothing: re-export the day, then rerun",
    )


def unique_check(columns: tuple[str, ...], severity: Severity, max_fraction: float | None, fix: str) -> Check:
    name = "unique:" + ",".join(columns)
    gxe = _gxe()
    kw = {"meta": _meta(name, severity), "severity": _gx_severity(severity)}
    exp = (
        gxe.ExpectColumnValuesToBeUnique(column=columns[0], **kw)
        if len(columns) == 1
        else gxe.ExpectCompoundColumnsToBeUnique(column_list=list(columns), **kw)
    )
    return Check(
        name,
        severity,
        exp,
        f"rows share the same ({', '.join(columns)}) (duplicates)",
        fix,
        max_fraction=max_fraction,
        key=tuple(columns),
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
    q = cfg.quality
    if table.unique:
        checks.append(
            unique_check(
                table.unique,
                "threshold",
                q.duplicate_max_fraction,
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
        flags[FLAG_PREFIX + "clicked_not_shown"] = _safe(is_cut & F.col("clicked"))
        flags[FLAG_PREFIX + "shown_but_cut"] = _safe(is_cut)
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
        flags[FLAG_PREFIX + name] = _safe(F.col(col).isNotNull() & F.col(f"_dq_{name}").isNull())
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
        example_columns=tuple(c for c in df.columns),
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
        _safe((F.col("stage") != RANKING_STAGES[0]) & (passed_retrieval == 0)),
    )
    check = flag_check(
        "funnel_skips_retrieval",
        "warning",
        "an item has a pre_rank/rank row but no passed retrieval row for the same request",
        "the ranking-log export is missing retrieval rows; hard negatives may be incomplete",
        column="stage",
    )
    return frame, [check]


# --------------------------------------------------------------------------------------
# ETL output suites
# --------------------------------------------------------------------------------------

_RERUN_ETL = "a bug in the ETL stage that writes this table: fix it, then rerun the ETL for the day"


def output_rows_suite(
    table: Table,
    frame: DataFrame,
    ds: str,
    flags: dict[str, Column],
    checks: list[Check],
    allow_empty: bool = False,
) -> Suite:
    """Generic output suite: non-empty (unless allowed), unique key, plus the given flag checks."""
    all_checks = [] if allow_empty else [non_empty_check()]
    if table.unique:
        all_checks.append(unique_check(table.unique, "critical", None, _RERUN_ETL))
    all_checks.extend(checks)
    return Suite(
        f"validate_outputs.{table.name}.rows",
        table.name,
        ds,
        frame.withColumns(flags) if flags else frame,
        all_checks,
        example_columns=tuple(frame.columns),
        source_columns=tuple(frame.columns),
    )


def idx_range_flags(
    frame_columns: list[str], sizes: dict[str, int], cfg: Config
) -> tuple[dict[str, Column], list[Check]]:
    """Range checks of id columns against vocabulary sizes (max id per vocab).

    ``user_idx`` / ``item_idx`` / ``target_idx``... must lie in [0, max id] of vocab
    ``user_id`` / ``item_id``; ``u_cat_<f>`` / ``i_cat_<f>`` in [0, max id] of ``user.<f>`` /
    ``item.<f>``; numeric features ``u_num_*`` / ``i_num_*`` must be finite.
    """
    from pyspark.sql import functions as F

    flags: dict[str, Column] = {}
    checks: list[Check] = []
    fix = "ids beyond the vocabulary would index past the embedding tables: " + _RERUN_ETL

    def add_range(col: str, vocab: str, is_array: bool) -> None:
        if vocab not in sizes:
            return
        high = sizes[vocab]
        c = F.col(col)
        cond = _array_out_of_range(c, 0, high) if is_array else _out_of_range(c, 0, high)
        name = f"range:{col}"
        flags[FLAG_PREFIX + name] = _safe(cond)
        checks.append(flag_check(name, "critical", f"{col} holds an id outside [0, {high}] (vocab {vocab})", fix, column=col))

    for col in frame_columns:
        if col in ("user_idx",):
            add_range(col, "user_id", False)
        elif col in ("item_idx",):
            add_range(col, "item_id", False)
        elif col in ("u_hist", "hard_neg_idx", "target_idx", "exclude_idx"):
            add_range(col, "item_id", True)
        elif col.startswith(USER_CAT_PREFIX):
            add_range(col, "user." + col[len(USER_CAT_PREFIX) :], False)
        elif col.startswith(ITEM_CAT_PREFIX):
            add_range(col, "item." + col[len(ITEM_CAT_PREFIX) :], False)
        elif col.startswith((USER_NUM_PREFIX, ITEM_NUM_PREFIX)):
            name = f"finite:{col}"
            flags[FLAG_PREFIX + name] = _safe(_not_finite(F.col(col)))
            checks.append(
                flag_check(name, "critical", f"{col} is null, NaN or infinite", "check feature_stats (std 0?): " + _RERUN_ETL, column=col)
            )
    return flags, checks


def days_flag(name: str, column: str, days: list[str], what: str) -> tuple[dict[str, Column], list[Check]]:
    """``column`` (a date) must be one of ``days`` (e.g. the training days: no eval leakage)."""
    from pyspark.sql import functions as F

    cond = _safe(F.col(column).isNull() | ~F.col(column).cast("string").isin(*days))
    return (
        {FLAG_PREFIX + name: cond},
        [flag_check(name, "critical", f"{column} is not one of {what} ({', '.join(days)})", _RERUN_ETL, column=column)],
    )


def sum_to_one_check(column: str, tol: float) -> Check:
    name = f"sum_to_one:{column}"
    return Check(
        name,
        "critical",
        _gxe().ExpectColumnSumToBeBetween(
            column=column, min_value=1.0 - tol, max_value=1.0 + tol, meta=_meta(name, "critical"), severity="critical"
        ),
        f"{column} does not sum to 1 (tolerance {tol:g})",
        "the sampling distribution is not normalised: " + _RERUN_ETL,
        column=column,
    )


def alias_frame(
    sampling: DataFrame, tol: float, smoothing: float, catalogue: DataFrame | None = None
) -> tuple[DataFrame, list[Check]]:
    """Flags for the item_sampling table's probabilities and Vose alias table.

    ``neg_prob`` must be positive exactly for the active catalogue items (``catalogue``'s
    ``active``; all items when no catalogue is given), and for clicked ones only when
    ``smoothing`` is 0; inactive items have 0. The alias table reconstructs ``neg_prob``: with
    n slots, P(i) = (alias_prob_i + sum over slots j with alias_idx_j = i of (1 - alias_prob_j)) / n.
    """
    from pyspark.sql import functions as F

    if catalogue is not None:
        sampling = sampling.join(
            catalogue.select("item_idx", F.col("active").alias("_dq_active")), "item_idx", "left"
        ).withColumn("_dq_active", F.coalesce(F.col("_dq_active"), F.lit(False)))
    else:
        sampling = sampling.withColumn("_dq_active", F.lit(True))

    n = F.count(F.lit(1)).over(_whole())
    donated = (
        sampling.filter(F.col("alias_prob") < 1.0)
        .groupBy(F.col("alias_idx").alias("item_idx"))
        .agg(F.sum(1.0 - F.col("alias_prob")).alias("_dq_donated"))
    )
    valid_idx = sampling.select("item_idx").withColumn("_dq_alias_ok", F.lit(True))
    frame = (
        sampling.join(donated, "item_idx", "left")
        .join(valid_idx.withColumnRenamed("item_idx", "alias_idx"), "alias_idx", "left")
        .withColumn("_dq_n", n)
        .withColumn(
            "_dq_recon_prob", (F.col("alias_prob") + F.coalesce(F.col("_dq_donated"), F.lit(0.0))) / F.col("_dq_n")
        )
    )
    should_be_positive = F.col("_dq_active") if smoothing > 0 else (F.col("_dq_active") & (F.col("clicks") > 0))
    positive = (F.col("neg_prob") > 0) == should_be_positive
    flags = {
        FLAG_PREFIX + "neg_prob_positive": _safe(~positive | _not_finite(F.col("neg_prob"))),
        FLAG_PREFIX + "alias_prob_range": _safe(_not_finite(F.col("alias_prob")) | (F.col("alias_prob") < 0) | (F.col("alias_prob") > 1)),
        FLAG_PREFIX + "alias_idx_valid": _safe((F.col("alias_prob") < 1) & F.col("_dq_alias_ok").isNull()),
        FLAG_PREFIX + "alias_reconstructs": _safe(F.abs(F.col("_dq_recon_prob") - F.col("neg_prob")) > tol),
        FLAG_PREFIX + "inbatch_prob_valid": _safe(
            _not_finite(F.col("inbatch_prob"))
            | (F.col("inbatch_prob") < 0)
            | ((F.col("clicks_resampled") == 0) & (F.col("inbatch_prob") != 0))
        ),
    }
    fix = "negative sampling would draw from a wrong distribution: " + _RERUN_ETL
    rule = (
        "positive exactly for the active catalogue items"
        if smoothing > 0
        else "positive exactly for the clicked active items (smoothing = 0)"
    )
    checks = [
        flag_check("neg_prob_positive", "critical", f"neg_prob is not {rule}", fix, column="neg_prob"),
        flag_check("alias_prob_range", "critical", "alias_prob is outside [0, 1]", fix, column="alias_prob"),
        flag_check("alias_idx_valid", "critical", "alias_idx is not an item_idx of the table", fix, column="alias_idx"),
        flag_check(
            "alias_reconstructs",
            "critical",
            f"the alias table does not reconstruct neg_prob (|error| > {tol:g})",
            fix,
            column="alias_prob",
        ),
        flag_check(
            "inbatch_prob_valid",
            "critical",
            "inbatch_prob is negative/non-finite or non-zero for an item never positive",
            fix,
            column="inbatch_prob",
        ),
        sum_to_one_check("neg_prob", tol),
    ]
    return frame.withColumns(flags), checks


def _whole():
    from pyspark.sql import Window

    return Window.partitionBy()


def subset_flag(
    frame: DataFrame, reference: DataFrame, keys: list[str], name: str, problem: str, fix: str, column: str | None = None
) -> tuple[DataFrame, Check]:
    """Flag rows of ``frame`` whose ``keys`` are NOT in ``reference`` (a subset check)."""
    from pyspark.sql import functions as F

    ref = reference.select(*keys).distinct().withColumn(f"_dq_in_{name}", F.lit(True))
    joined = frame.join(ref, keys, "left").withColumn(FLAG_PREFIX + name, F.col(f"_dq_in_{name}").isNull())
    return joined, flag_check(name, "critical", problem, fix, column=column)


def overlap_flag(
    frame: DataFrame, forbidden: DataFrame, keys: list[str], name: str, problem: str, fix: str, column: str | None = None
) -> tuple[DataFrame, Check]:
    """Flag rows of ``frame`` whose ``keys`` ARE in ``forbidden`` (a disjointness check)."""
    from pyspark.sql import functions as F

    ref = forbidden.select(*keys).distinct().withColumn(f"_dq_in_{name}", F.lit(True))
    joined = frame.join(ref, keys, "left").withColumn(FLAG_PREFIX + name, F.col(f"_dq_in_{name}").isNotNull())
    return joined, flag_check(name, "critical", problem, fix, column=column)


def vocabulary_stability_suite(current: DataFrame, previous: DataFrame, ds: str, previous_ds: str) -> Suite:
    """Every (vocab, value) of the previous day's vocabulary keeps its id (ids never change meaning)."""
    from pyspark.sql import functions as F

    prev = previous.select("vocab", "value", F.col("id").alias("previous_id"))
    cur = current.select("vocab", "value", F.col("id").alias("current_id"))
    frame = prev.join(cur, ["vocab", "value"], "left").withColumn(
        FLAG_PREFIX + "id_stable", _safe(F.col("current_id").isNull() | (F.col("current_id") != F.col("previous_id")))
    )
    check = flag_check(
        "id_stable",
        "critical",
        f"a value's id changed or disappeared since the vocabulary of ds={previous_ds}",
        "ids must never change meaning (a model trained earlier would read them wrongly): fix the vocabulary "
        "stage so it only appends new values, then rerun the ETL",
        column="id",
    )
    return Suite(
        "validate_outputs.vocabulary.stability",
        "vocabulary",
        ds,
        frame,
        [check],
        example_columns=("vocab", "value", "previous_id", "current_id"),
    )
