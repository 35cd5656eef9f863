"""Contract suites: a frame's columns and types against its table contract (schema only, no
data pass). Both gates run them first; a table whose contract suite fails gets no rows suite.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from contracts.outputs import ITEM_CAT_PREFIX, ITEM_NUM_PREFIX, USER_CAT_PREFIX, USER_NUM_PREFIX
from contracts.schemas import Table
from quality.checks import Check, Suite, gx_expectations, meta

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

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
FEATURE_PREFIXES = tuple(_PREFIX_TYPES)

_FIX_MISSING = (
    "the producer renamed or dropped the column: restore it (or update contracts/schemas.py "
    "and the config's features if the change is intended), then rerun the day"
)


def contract_suite(table: Table, frame: DataFrame, ds: str, stage: str, prefixes: tuple[str, ...] = ()) -> Suite:
    """Columns and types of ``frame`` against the contract ``table``.

    Required columns must exist (``column_exists:<col>``, critical); every contract column
    present, and every column starting with one of ``prefixes`` (``u_cat_*``...), must have
    the contract's type (``type:<col>``, critical).
    """
    gxe = gx_expectations()
    present = set(frame.columns)
    checks: list[Check] = [
        Check(
            "columns",
            "critical",
            gxe.ExpectTableColumnsToMatchSet(
                column_set=list(table.required_names),
                exact_match=False,
                meta=meta("columns", "critical"),
                severity="critical",
            ),
            "required contract columns are missing",
            _FIX_MISSING,
        )
    ]
    for c in table.columns:
        if not c.required and c.name not in present:
            continue
        checks.append(
            Check(
                f"column_exists:{c.name}",
                "critical",
                gxe.ExpectColumnToExist(column=c.name, meta=meta(f"column_exists:{c.name}", "critical"), severity="critical"),
                f"column {c.name} is missing",
                _FIX_MISSING,
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
                        meta=meta(f"type:{c.name}", "critical"),
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
                            column=name, type_=_PREFIX_TYPES[prefix], meta=meta(f"type:{name}", "critical"), severity="critical"
                        ),
                        f"feature column {name} is not {_PREFIX_TYPES[prefix]}",
                        "fix the ETL stage that writes it, then rerun the ETL",
                        column=name,
                    )
                )
    return Suite(f"{stage}.{table.name}.contract", table.name, ds, frame, checks)
