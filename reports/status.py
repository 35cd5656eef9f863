"""The state of a run day (published, rejected or failed, and why) and how a data-quality
message reads on the page (its example rows as a table, not a repr)."""

from __future__ import annotations

import ast
import re
from typing import Any

from reports import format as fm
from reports.facts import DQ_STEPS, STEPS_AFTER_ETL, STEPS_BEFORE_ETL, publish_of
from reports.format import e, grid


def run_status(stats: dict[str, dict[str, Any]], dq: dict[str, dict[str, Any]] | None = None) -> dict[str, str]:
    """``{"state": published|rejected|failed, "detail": ...}`` from the stage stats.

    Args:
        stats: step -> its stats (``load_stage_stats``); a missing step failed or did not run.
        dq: step -> data-quality summary (``load_dq_summaries``), to name a failed gate.
    """
    dq = dq or {}
    for step in DQ_STEPS:
        if step not in stats and str(dq.get(step, {}).get("status")) == "failed":
            fails = dq[step].get("critical_failures") or []
            first = shorten(split_examples(fails[0])[0], 300) if fails else "see the data-quality summary"
            return {"state": "failed", "detail": f"data-quality gate {step} failed ({len(fails)} critical): {first}"}
    pub = publish_of(stats)
    if pub is not None:
        if pub.published:
            detail = f"version {pub.version or '?'} published"
            if pub.latest and pub.version and pub.latest != pub.version:
                detail += f"; LATEST stays at the newer {pub.latest}"
            return {"state": "published", "detail": detail}
        return {"state": "rejected", "detail": str(pub.reason or pub.decision or "publish rejected")}
    order = [*STEPS_BEFORE_ETL, *STEPS_AFTER_ETL]
    missing = next((s for s in order if s not in stats), None)
    if not stats:
        return {"state": "failed", "detail": "no step finished (validate_raw failed or did not run)"}
    return {"state": "failed", "detail": f"stopped at {missing}: it did not finish (see the task log)"}


_EXAMPLES = re.compile(r"^(?P<head>.*?)\s*Examples: (?P<rows>\[.*\])\s*(?P<tail>\(check .*)?$", re.S)


def split_examples(message: str) -> tuple[str, list[dict[str, Any]]]:
    """A quality message without its ``Examples: [{...}]`` part, and those rows (parsed as
    Python literals, never evaluated), so the page shows them as a table instead of a repr."""
    m = _EXAMPLES.match(str(message))
    if not m:
        return str(message), []
    try:
        rows = ast.literal_eval(m.group("rows"))
    except (ValueError, SyntaxError):
        return str(message), []
    rows = [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []
    return " ".join(x for x in (m.group("head"), m.group("tail")) if x), rows


def message_html(msg: Any) -> str:
    """A data-quality message as HTML: the text, then its example rows as a folded table."""
    text, rows = split_examples(str(msg))
    html_ = e(shorten(text, 1200))
    if rows:
        cols = list(dict.fromkeys(k for r in rows for k in r))
        html_ += fm.sub_folded(f"{len(rows)} example rows", grid(cols, [[r.get(c) for c in cols] for r in rows]))
    return html_


def shorten(v: Any, n: int = 600) -> str:
    text = str(v)
    return text if len(text) <= n else text[:n] + " ..."
