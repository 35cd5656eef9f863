"""Exceptions shared by every stage. Messages name the thing: table, partition, column,
count, and what to do about it."""

from __future__ import annotations


class PipelineError(Exception):
    """Base of errors that stop a pipeline step with a clear message (no traceback needed)."""


class UserError(PipelineError):
    """Bad arguments or configuration (CLI exit code 2)."""


class DataError(PipelineError):
    """Input data violates its contract (missing partition, bad column, bad rows...).

    Build messages with :func:`data_error_message` so they always name the table, the
    partition, the column and the count.
    """


class QualityGateFailed(DataError):
    """A critical data-quality check failed: nothing downstream may run or publish."""


def data_error_message(
    table: str,
    partition: str | None,
    problem: str,
    *,
    column: str | None = None,
    count: int | None = None,
    fix: str | None = None,
) -> str:
    """``table impressions, partition ds=2026-11-01, column user_id: 12 rows have null ids. Fix: ...``"""
    where = f"table {table}"
    if partition:
        where += f", partition {partition}"
    if column:
        where += f", column {column}"
    what = f"{count:,} rows: {problem}" if count is not None else problem
    msg = f"{where}: {what}"
    if fix:
        msg += f". What to do: {fix}"
    return msg
