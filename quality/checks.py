"""The vocabulary of the suites: :class:`Check` (a GE expectation with its severity and what to
do), :class:`Suite` (a frame and its checks), and the checks every suite builder shares.

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

Pure construction: nothing here reads or writes storage.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from quality.rules import RowRule

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

Severity = Literal["critical", "warning", "quarantine", "threshold"]
FLAG_PREFIX = "dq_"
ANY_ROW_RULE = "any_row_rule"
RERUN_ETL = "a bug in the ETL stage that writes this table: fix it, then rerun the ETL for the day"


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
        key: key columns of a uniqueness check (example duplicated keys are fetched on failure).
    """

    name: str
    severity: Severity
    expectation: Any
    problem: str
    fix: str
    column: str | None = None
    flag: str | None = None
    max_fraction: float | None = None
    key: tuple[str, ...] = ()


@dataclass
class Suite:
    """A GE suite over one frame: ``name`` like ``validate_raw.impressions.rows``.

    ``example_columns`` are shown for example failing rows; ``source_columns`` are the
    table's own columns (the quarantine keeps these plus the reason); ``row_rules`` are the
    raw table's row rules (what the quarantine decides on).
    """

    name: str
    table: str
    ds: str
    frame: DataFrame
    checks: list[Check]
    example_columns: tuple[str, ...] = ()
    source_columns: tuple[str, ...] = ()
    row_rules: list[RowRule] = field(default_factory=list)


def gx_expectations():
    """The ``great_expectations.expectations`` module (imported on first use: it is slow)."""
    import great_expectations.expectations as gxe

    return gxe


def meta(name: str, severity: Severity) -> dict[str, Any]:
    return {"check": name, "twotower_severity": severity}


def _gx_severity(severity: Severity) -> str:
    return "critical" if severity == "critical" else "warning"


def not_finite(c: Column) -> Column:
    """True for null, NaN and +-infinity."""
    from pyspark.sql import functions as F

    return c.isNull() | F.isnan(c) | (c == F.lit(math.inf)) | (c == F.lit(-math.inf))


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
    exp = gx_expectations().ExpectColumnValuesToBeInSet(
        column=flag,
        value_set=[False],
        description=f"No row where {problem} (flag column `{flag}`).",
        notes=f"What to do: {fix}",
        meta=meta(name, severity),
        severity=_gx_severity(severity),
    )
    return Check(name, severity, exp, problem, fix, column=column, flag=flag, max_fraction=max_fraction)


def non_empty_check() -> Check:
    return Check(
        "non_empty",
        "critical",
        gx_expectations().ExpectTableRowCountToBeBetween(min_value=1, meta=meta("non_empty", "critical"), severity="critical"),
        "the partition has no rows (empty day)",
        "the day's export ran but wrote nothing: re-export the day, then rerun",
    )


def unique_check(columns: tuple[str, ...], severity: Severity, max_fraction: float | None, fix: str) -> Check:
    """No two rows share ``columns`` (``unique:<a>,<b>``)."""
    name = "unique:" + ",".join(columns)
    gxe = gx_expectations()
    kw = {"meta": meta(name, severity), "severity": _gx_severity(severity)}
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


def sum_to_one_check(column: str, tol: float) -> Check:
    """``column`` sums to 1 within ``tol`` (``sum_to_one:<column>``)."""
    name = f"sum_to_one:{column}"
    return Check(
        name,
        "critical",
        gx_expectations().ExpectColumnSumToBeBetween(
            column=column, min_value=1.0 - tol, max_value=1.0 + tol, meta=meta(name, "critical"), severity="critical"
        ),
        f"{column} does not sum to 1 (tolerance {tol:g})",
        "the sampling distribution is not normalised: " + RERUN_ETL,
        column=column,
    )


def joined_flag(
    frame: DataFrame, reference: DataFrame, keys: list[str], name: str, *, flag_when_found: bool
) -> DataFrame:
    """``frame`` with flag column ``dq_<name>``: whether its ``keys`` are in ``reference``
    (``flag_when_found``: a disjointness check) or not (a subset check)."""
    from pyspark.sql import functions as F

    ref = reference.select(*keys).distinct().withColumn(f"_dq_in_{name}", F.lit(True))
    found = F.col(f"_dq_in_{name}")
    return frame.join(ref, keys, "left").withColumn(FLAG_PREFIX + name, found.isNotNull() if flag_when_found else found.isNull())


def subset_flag(
    frame: DataFrame, reference: DataFrame, keys: list[str], name: str, problem: str, fix: str, column: str | None = None
) -> tuple[DataFrame, Check]:
    """Flag rows of ``frame`` whose ``keys`` are NOT in ``reference`` (a subset check)."""
    joined = joined_flag(frame, reference, keys, name, flag_when_found=False)
    return joined, flag_check(name, "critical", problem, fix, column=column)


def overlap_flag(
    frame: DataFrame, forbidden: DataFrame, keys: list[str], name: str, problem: str, fix: str, column: str | None = None
) -> tuple[DataFrame, Check]:
    """Flag rows of ``frame`` whose ``keys`` ARE in ``forbidden`` (a disjointness check)."""
    joined = joined_flag(frame, forbidden, keys, name, flag_when_found=True)
    return joined, flag_check(name, "critical", problem, fix, column=column)

