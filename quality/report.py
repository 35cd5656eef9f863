"""Reading the data-quality JSON summaries back for ``twotower dq show`` and the run report."""

from __future__ import annotations

from typing import Any

from contracts.days import ds_str
from quality import io
from storage.layout import Layout

STAGES = ("validate_raw", "validate_outputs")


def day_summary(layout: Layout, ds: str) -> dict[str, Any]:
    """Per stage of day ``ds``: status, per-suite pass/fail counts and the Data Docs path."""
    ds = ds_str(ds)
    out: dict[str, Any] = {"ds": ds, "stages": {}}
    for stage in STAGES:
        s = io.read_summary(layout, ds, stage)
        if s is None:
            out["stages"][stage] = {"status": "not run", "summary_path": str(io.summary_path(layout, ds, stage))}
            continue
        out["stages"][stage] = {
            "status": s["status"],
            "data_docs": s.get("data_docs"),
            "summary_path": s.get("summary_path"),
            "quarantined": s.get("quarantined", {}),
            "critical_failures": s.get("critical_failures", []),
            "warnings": s.get("warnings", []),
            "suites": [
                {
                    "suite": su["suite"],
                    "status": su["status"],
                    "rows": su.get("rows"),
                    "passed": su["passed"],
                    "failed": su["failed"],
                    "warnings": su["warnings"],
                    "quarantined": su["quarantined"],
                    "failing_checks": [
                        {"check": c["check"], "status": c["status"], "failing_count": c["failing_count"]}
                        for c in su["checks"]
                        if c["status"] != "passed"
                    ],
                }
                for su in s.get("suites", [])
            ],
        }
    return out


def render_text(summary: dict[str, Any]) -> str:
    """Human-readable lines for ``twotower dq show``."""
    lines = [f"data quality for ds={summary['ds']}"]
    for stage, s in summary["stages"].items():
        lines.append(f"\n{stage}: {s['status'].upper()}")
        if s["status"] == "not run":
            lines.append(f"  (no summary at {s['summary_path']})")
            continue
        for su in s["suites"]:
            rows = f"{su['rows']:,} rows" if su["rows"] is not None else "-"
            lines.append(
                f"  {su['status']:<8} {su['suite']:<48} {rows:>14}  passed {su['passed']}, failed {su['failed']}, "
                f"warnings {su['warnings']}, quarantined {su['quarantined']}"
            )
            for c in su["failing_checks"]:
                count = f" ({c['failing_count']:,} rows)" if c["failing_count"] is not None else ""
                lines.append(f"           - {c['status']}: {c['check']}{count}")
        for table, q in s["quarantined"].items():
            lines.append(f"  quarantine {table}: {q.get('rows', 0):,} rows {q.get('by_rule', {})} {q.get('path', '')}")
        for m in s["critical_failures"]:
            lines.append(f"  CRITICAL: {m}")
        lines.append(f"  Data Docs: {s['data_docs']}")
        lines.append(f"  Summary:   {s['summary_path']}")
    return "\n".join(lines)
