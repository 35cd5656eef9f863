"""The index of all runs: trends across days (is today worse than last week?) and one row per
day linking to its report.

Reads each day's ``summary.json`` (status and the facts of :func:`reports.facts.day_facts`,
written by the run report); a day whose summary predates the facts gets them from its step
statistics when those are on this machine. Plots are inline PNGs (data URIs), so the page is
one self-contained file.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

from reports import format as fm
from reports.facts import day_facts, load_dq_summaries, load_metrics, load_stage_stats, read_json
from reports.format import DASH, dur, e, num, pct
from storage.layout import Layout, atomic_write_text

SUMMARY_NAME = "summary.json"
INDEX_NAME = "index.html"
REPORT_NAME = "report.html"


def load_run_summaries(layout: Layout) -> list[dict[str, Any]]:
    """Every run day under the reports root, oldest first: ``ds``, ``state``, ``detail``,
    ``built_at``, ``facts`` (may be ``{}``), ``warnings``, ``report`` (path relative to the
    reports root, or None when no report was built)."""
    root = layout.reports_root
    out = []
    if not root.is_dir():
        return out
    for d in sorted(p for p in root.glob("ds=*") if p.is_dir()):
        ds = d.name[3:]
        summary = read_json(d / SUMMARY_NAME) or {"state": "unknown", "detail": "no report built"}
        facts = summary.get("facts")
        if not facts and layout.stage_stats(ds, "x").parent.is_dir():
            stats = load_stage_stats(layout, ds)
            facts = day_facts(ds, stats, load_dq_summaries(layout, ds, stats), load_metrics(layout, ds, stats))
        out.append(
            {
                "ds": ds,
                "state": summary.get("state", "unknown"),
                "detail": summary.get("detail", ""),
                "built_at": summary.get("built_at"),
                "facts": facts or {},
                "warnings": summary.get("warnings") or [],
                "report": f"{d.name}/{REPORT_NAME}" if (d / REPORT_NAME).is_file() else None,
            }
        )
    return out


def build_index_page(layout: Layout) -> Path:
    """``<reports_root>/index.html``: trend plots across every run day, then one row per
    day (newest first) with its status and key numbers, linking to its report."""
    runs = load_run_summaries(layout)
    plots = trend_plots(runs) if runs else {}
    figs = "".join(
        f'<figure><img src="data:image/png;base64,{b64}" alt="{e(title)}"><figcaption>{e(title)}</figcaption></figure>'
        for title, b64 in plots.items()
    )
    latest = runs[-1] if runs else None
    head = "<h1>twotower runs</h1>"
    if latest:
        warn = len(latest["warnings"])
        head += (
            f'<p>{len(runs)} run days, {sum(r["state"] == "published" for r in runs)} published. Latest day '
            f'<b>{e(latest["ds"])}</b>: <b class="{"ok" if latest["state"] == "published" else "bad"}">{e(latest["state"])}</b>'
            + (f', <span class="warn">{warn} warning{"s" if warn > 1 else ""}</span>' if warn else "")
            + "</p>"
        )
    body = head + (f'<h2>Trends</h2><div class="plots" id="trends">{figs}</div>' if figs else "")
    body += "<h2>Runs</h2>" + runs_table(runs)
    path = layout.reports_root / INDEX_NAME
    atomic_write_text(path, fm.page("twotower runs", body))
    return path


def runs_table(runs: list[dict[str, Any]]) -> str:
    header = ["day", "status", "recall@50 ± SE", "best baseline", "impressions", "clicks", "CTR", "catalogue",
              "DQ failed / quarantined", "time", "warnings", "detail"]
    rows = []
    for r in reversed(runs):
        f = r["facts"]
        built = f"report built {r['built_at']}" if r["built_at"] else "no report built"
        link = f'<a href="{e(r["report"])}" title="{e(built)}">{e(r["ds"])}</a>' if r["report"] else e(r["ds"])
        rec = DASH if f.get("recall50") is None else f"{f['recall50']:.4f}" + (f" ± {f['recall50_se']:.4f}" if f.get("recall50_se") is not None else "")
        base = DASH if f.get("best_baseline_recall50") is None else f"{f['best_baseline_recall50']:.4f} ({f.get('best_baseline')})"
        dq = DASH if f.get("dq_checks_failed") is None else f"{num(f.get('dq_checks_failed'))} / {num(f.get('quarantined_rows'))}"
        rows.append(
            "<tr>"
            f'<td class="day">{link}</td><td class="status {e(r["state"])}">{e(r["state"])}</td>'
            + "".join(
                f'<td class="n">{e(c)}</td>'
                for c in (rec, base, num(f.get("impressions")), num(f.get("clicks")), pct(f.get("ctr"), 2),
                          num(f.get("catalogue_size")), dq, dur(f.get("total_seconds")), len(r["warnings"]) or "")
            )
            + f'<td title="{e(r["detail"])}">{e(_short(r["detail"]))}</td></tr>'
        )
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    return f'<table id="runs"><tr>{head}</tr>{"".join(rows)}</table>'


def _short(text: str, n: int = 70) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def runs_json(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What ``twotower runs list --json`` prints: one object per day, oldest first."""
    return [{k: r[k] for k in ("ds", "state", "detail", "built_at", "report", "warnings", "facts")} for r in runs]


# ------------------------------------------------------------------------------------------
# Plots
# ------------------------------------------------------------------------------------------


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def trend_plots(runs: list[dict[str, Any]]) -> dict[str, str]:
    """Title -> base64 PNG of each trend across the run days (a missing value is a gap)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    days = [r["ds"] for r in runs]
    x = np.arange(len(days))
    facts = [r["facts"] for r in runs]

    def series(key: str, scale: float = 1.0) -> np.ndarray:
        return np.array([float(f[key]) * scale if isinstance(f.get(key), int | float) else np.nan for f in facts])

    def axes(title: str, ylabel: str):
        fig, ax = plt.subplots(figsize=(5.6, 3.3), dpi=100)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(ylabel, fontsize=9)
        ax.set_xticks(x, [d[5:] for d in days], rotation=45 if len(days) > 8 else 0, fontsize=8)
        ax.set_xlim(-0.5, len(days) - 0.5)
        ax.grid(True, alpha=0.3)
        return fig, ax

    out: dict[str, str] = {}
    # 1. recall@50: model (with +-1 SE), each baseline, oracle; failed/rejected days marked.
    fig, ax = axes("recall@50 on each held-out day", "recall@50")
    r, se = series("recall50"), series("recall50_se")
    ax.plot(x, r, "o-", color="C0", label="model", lw=2)
    ok = ~np.isnan(se)
    if ok.any():
        ax.fill_between(x, r - np.nan_to_num(se), r + np.nan_to_num(se), color="C0", alpha=0.2, label="model ± 1 SE")
    names = sorted({n for f in facts for n in (f.get("baselines") or {})})
    for i, name in enumerate(names):
        ax.plot(x, [(f.get("baselines") or {}).get(name, np.nan) for f in facts], ".--", color=f"C{i + 1}", lw=1, label=name)
    o = series("oracle_recall50")
    if not np.isnan(o).all():
        ax.plot(x, o, "k:", lw=1, label="oracle")
    for i, run in enumerate(runs):
        if run["state"] in ("failed", "rejected"):
            ax.axvline(i, color="#cf222e", alpha=0.25, lw=6)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    out["recall@50: model vs popularity baselines (red band: day not published)"] = _png(fig)

    # 2. volume: impressions and clicks (left), CTR (right)
    fig, ax = axes("Data volume of the day", "rows")
    ax.plot(x, series("impressions"), "o-", label="impressions")
    ax.plot(x, series("clicks"), "s-", label="clicks")
    ax2 = ax.twinx()
    ax2.plot(x, series("ctr", 100.0), "^:", color="C3", label="CTR (%)")
    ax2.set_ylabel("CTR (%)", fontsize=9)
    ax.set_ylim(bottom=0)
    ax2.set_ylim(bottom=0)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=7)
    fig.tight_layout()
    out["Impressions, clicks and CTR"] = _png(fig)

    # 3. catalogue size, added and retired
    fig, ax = axes("Catalogue", "items")
    ax.plot(x, series("catalogue_size"), "o-", label="live items")
    ax.bar(x - 0.2, np.nan_to_num(series("catalogue_added")), 0.4, color="C2", alpha=0.7, label="added")
    ax.bar(x + 0.2, np.nan_to_num(series("catalogue_retired")), 0.4, color="C3", alpha=0.7, label="retired")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7)
    fig.tight_layout()
    out["Catalogue size, items added and retired"] = _png(fig)

    # 4. data quality
    fig, ax = axes("Data quality", "checks")
    ax.bar(x - 0.2, np.nan_to_num(series("dq_checks_failed")), 0.4, color="C3", label="checks failed")
    ax.bar(x + 0.2, np.nan_to_num(series("dq_warnings")), 0.4, color="C1", label="warnings")
    ax2 = ax.twinx()
    ax2.plot(x, series("quarantined_rows"), "ko-", ms=4, label="quarantined rows")
    ax2.plot(x, series("rule_failing_rows"), "x:", color="C4", label="rows failing row rules")
    ax2.set_ylabel("rows", fontsize=9)
    ax.set_ylim(0, max(1.0, float(np.nanmax(np.r_[series("dq_checks_failed"), series("dq_warnings"), 0.0])) * 1.15))
    ax2.set_ylim(0, max(1.0, float(np.nanmax(np.r_[series("quarantined_rows"), series("rule_failing_rows"), 0.0])) * 1.15))
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=7)
    fig.tight_layout()
    out["Data-quality failures and quarantined rows"] = _png(fig)

    # 5. step times, stacked (ETL stages summed)
    fig, ax = axes("Step wall time", "minutes")
    groups: dict[str, np.ndarray] = {}
    for i, f in enumerate(facts):
        for step, s in (f.get("step_seconds") or {}).items():
            g = "etl" if step.startswith("etl_") else step
            groups.setdefault(g, np.zeros(len(days)))[i] += float(s) / 60.0
    bottom = np.zeros(len(days))
    for j, (g, v) in enumerate(groups.items()):
        ax.bar(x, v, 0.6, bottom=bottom, label=g, color=f"C{j % 10}")
        bottom += v
    if groups:
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    out["Time per step (ETL stages together)"] = _png(fig)
    return out


def write_json(runs: list[dict[str, Any]]) -> str:
    return json.dumps(runs_json(runs), indent=2, sort_keys=True, default=str)

