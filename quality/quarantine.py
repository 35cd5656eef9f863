"""The quarantine of raw rows failing a row rule: the budget, the decision per table, and
setting the rows aside (with the names of the rules they fail) under ``Layout.quarantine``.

A table whose failing rows fit the budget has them moved aside (the ETL's raw reader drops
the same rows through :func:`quality.rules.bad_row_condition`) and its row-rule checks are
``quarantined``; above the budget nothing is set aside and the checks fail.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from core.results.quality import QuarantineOutcome
from quality import io
from quality.checks import ANY_ROW_RULE, FLAG_PREFIX, Suite
from quality.rules import REASON_COLUMN

if TYPE_CHECKING:
    from core.config import Config
    from quality.gate_run import GateRun
    from quality.runner import CheckResult

# The gates log under one name (what operators filter on), whichever module writes the line.
log = logging.getLogger("quality.gates")


def quarantine_budget(cfg: Config, rows: int) -> int:
    """Most rows of a partition of ``rows`` rows that may be quarantined:
    ``max(floor(quarantine_max_fraction x rows), quarantine_min_rows)``."""
    q = cfg.quality
    return max(int(q.quarantine_max_fraction * rows), q.quarantine_min_rows)


def over_budget_text(cfg: Config, bad: int | None, rows: int | None) -> str:
    """Why nothing was quarantined: the failing rows exceed the budget."""
    q = cfg.quality
    rows = rows or 0
    budget = quarantine_budget(cfg, rows)
    what = f"{bad:,} of {rows:,} rows fail row rules" if bad is not None else "too many rows fail row rules"
    return (
        f"{what}, more than the quarantine budget of {budget:,} rows (max(quality.quarantine_max_fraction="
        f"{q.quarantine_max_fraction:g} x rows, quality.quarantine_min_rows={q.quarantine_min_rows})), so none is "
        "quarantined and the day stops"
    )


def quarantine(gate: GateRun, row_suites: list[Suite], results: list[CheckResult]) -> dict[str, bool]:
    """Quarantine rows failing row rules per table when few enough; returns table -> done.

    Rewrites each table's quarantine partition of the day (removed when nothing is set
    aside), so a rerun leaves exactly the rows that run set aside.
    """
    from pyspark.sql import functions as F

    decided: dict[str, bool] = {}
    for suite in row_suites:
        if not suite.row_rules:
            continue
        total = next((r for r in results if r.suite == suite.name and r.check.name == ANY_ROW_RULE), None)
        bad = (total.failing_count or 0) if total else 0
        rows = (total.rows or 0) if total else 0
        fraction = bad / rows if rows else 0.0
        by_rule = {
            r.check.name: r.failing_count
            for r in results
            if r.suite == suite.name and r.check.severity == "quarantine" and r.check.name != ANY_ROW_RULE
            and r.failing_count
        }
        ok = 0 < bad <= quarantine_budget(gate.cfg, rows)
        decided[suite.table] = ok
        gate.tables_bad[suite.table] = bad
        if ok:
            reasons = F.concat_ws(",", *[F.when(r.condition, F.lit(r.name)) for r in suite.row_rules])
            rows_df = suite.frame.filter(F.col(FLAG_PREFIX + ANY_ROW_RULE)).select(
                *suite.source_columns, reasons.alias(REASON_COLUMN)
            )
            path = io.write_quarantine(gate.layout, suite.table, gate.ds, rows_df)
            gate.quarantined[suite.table] = QuarantineOutcome(rows=bad, fraction=fraction, path=str(path), by_rule=by_rule)
            log.warning(
                "quarantined %d of %d rows of %s ds=%s (%s) into %s", bad, rows, suite.table, gate.ds, by_rule, path
            )
        else:
            io.write_quarantine(gate.layout, suite.table, gate.ds, None)
            if bad:
                gate.quarantined[suite.table] = QuarantineOutcome(rows=0, failing=bad, fraction=fraction, by_rule=by_rule)
    return decided
