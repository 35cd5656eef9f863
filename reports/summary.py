"""The summary that opens a run report: published or not and why, recall@50 against the best
baseline with standard errors, data volume against the trailing days, data quality, time,
code version and config hash, then the warnings of :func:`reports.facts.warnings_for`."""

from __future__ import annotations

from typing import Any

from reports.facts import METRIC, publish_of, trailing_median
from reports.format import DASH, Raw, dur, e, kv_table, num, pct


def summary_html(ds: str, status: dict, facts: dict, trailing: list[dict], warnings: list[str], stats: dict) -> str:
    """The opening block of the page: the verdict, the day's key numbers against the trailing days
    (``trailing``: their facts, oldest first) and the warnings."""
    state = status["state"]
    pub = publish_of(stats)
    latest = pub.latest if pub else None
    verdict = {
        "published": f"version {facts.get('version') or ds} published"
        + ("; it is what LATEST serves" if latest == (facts.get("version") or ds) else f"; LATEST stays at {latest}" if latest else ""),
        "rejected": "not published: the publish gate refused the candidate",
        "failed": "not published: the run failed",
    }.get(state, state)
    rows: list[tuple[str, Any]] = []
    if state == "published":
        why = (pub.reason if pub else None) or ""
        rows.append(("publish", Raw(f"version <b>{e(facts.get('version') or ds)}</b>" + (f": {e(why)}" if why else ""))))
    else:
        rows.append(("why not published", status["detail"]))

    r, se = facts.get("recall50"), facts.get("recall50_se")
    if r is not None:
        b, bn, bse = facts.get("best_baseline_recall50"), facts.get("best_baseline"), facts.get("best_baseline_se")
        text = f"<b>{r:.4f}</b>" + (f" ± {se:.4f} (SE)" if se is not None else "")
        if b is not None:
            cls = "bad" if b > r else "ok"
            lift = f", {r / b - 1:+.0%}" if b > 0 else ""
            text += f' vs best baseline {e(bn)} <span class="{cls}">{b:.4f}' + (f" ± {bse:.4f}" if bse is not None else "") + f"{lift}</span>"
        if facts.get("oracle_recall50") is not None:
            text += f"; oracle (planted truth) {facts['oracle_recall50']:.4f}"
        if facts.get("eval_users") is not None:
            text += f"; {num(facts['eval_users'])} held-out users"
        rows.append((f"{METRIC} (held-out day)", Raw(text)))
    else:
        rows.append((f"{METRIC} (held-out day)", "not evaluated"))
    cold = facts.get("cold_recall50")
    if cold is not None:
        oc = facts.get("oracle_cold_recall50")
        rows.append(("cold-item / tail recall@50", f"cold {num(cold)}" + (f" (oracle {num(oc)})" if oc is not None else "")
                     + f"; tail {num(facts.get('tail_recall50'))}"))

    vol = []
    for key, what, show in (("impressions", "impressions", num), ("clicks", "clicks", num), ("ctr", "CTR", pct)):
        v = facts.get(key)
        if v is None:
            continue
        med, k = trailing_median(trailing, key)
        cmp = f" ({float(v) / med:.0%} of the {k}-day median {show(med)})" if med else ""
        vol.append(f"{what} {show(v)}{cmp}")
    rows.append(("data volume (day)", "; ".join(vol) if vol else "not recorded"))
    if facts.get("catalogue_size") is not None:
        change = (
            f"added {num(facts.get('catalogue_added'))}, retired {num(facts.get('catalogue_retired'))} since the day before"
            if facts.get("catalogue_added") is not None else "no earlier day to compare with"
        )
        rows.append(("catalogue", f"{num(facts['catalogue_size'])} live items ({change})"))

    dq_parts = []
    for step, st in (facts.get("dq_status") or {}).items():
        cls = "ok" if st == "passed" else "bad"
        dq_parts.append(f'{e(step)} <span class="{cls}">{e(st)}</span>')
    dq_text = ", ".join(dq_parts) or "no data-quality summary"
    extra = [f"{num(facts[k])} {w}" for k, w in (("dq_checks_failed", "checks failed"), ("dq_warnings", "warnings"),
                                                  ("quarantined_rows", "rows quarantined")) if facts.get(k)]
    rows.append(("data quality", Raw(dq_text + (f"; {e(', '.join(extra))}" if extra else ""))))

    secs = facts.get("step_seconds") or {}
    if secs:
        top = sorted(secs.items(), key=lambda kv: -kv[1])[:3]
        rows.append(("time", Raw(f"<b>{dur(facts.get('total_seconds'))}</b> over {len(secs)} steps; longest: "
                                 + ", ".join(f"{e(s)} {dur(v)}" for s, v in top))))
    code = facts.get("code_version") or DASH
    cfg_hash = facts.get("config_hash")
    rows.append(("code version / config hash", Raw(f"<code>{e(code)}</code> / <code>{e(cfg_hash[:12] if cfg_hash else DASH)}</code>")))

    warn = ""
    if warnings:
        warn = (
            f'<div class="warnings"><h3>⚠ {len(warnings)} warning{"s" if len(warnings) > 1 else ""}</h3><ul>'
            + "".join(f"<li>{e(w)}</li>" for w in warnings)
            + "</ul></div>"
        )
    return (
        f'<div class="summary {e(state)}" id="summary">'
        f'<p class="status {e(state)} verdict">Status: <b>{e(state)}</b> - {e(verdict)}</p>'
        + kv_table(rows, cls="kv summary-table")
        + "</div>"
        + warn
    )
