"""The two sections of a run report on whether the candidate is good enough: Evaluation (model
against the baselines, the oracle and the previous version) and Publish decision (the gate's
numbers and the reason)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reports import format as fm
from reports.facts import EVAL_COLUMNS, METRIC, publish_of, read_json
from reports.format import DASH, e, kv_table, num
from reports.plots import ASSETS, plot_metrics
from storage.layout import Layout


def section_evaluation(layout: Layout, ds: str, stats: dict[str, Any], metrics: dict | None, assets: Path) -> str:
    if not metrics:
        return fm.folded("Evaluation", "<p>No evaluation for this day.</p>", open_=True)
    rows: dict[str, dict[str, float]] = {}
    if isinstance(metrics.get("model"), dict):
        rows["model"] = metrics["model"]
    for name, m in (metrics.get("baselines") or {}).items():
        if isinstance(m, dict):
            rows[f"baseline: {name}"] = m
    if isinstance(metrics.get("oracle"), dict):
        rows["oracle (true propensities)"] = metrics["oracle"]
    previous = _previous_version_metrics(layout, ds, stats)
    if previous:
        rows[previous[0]] = previous[1]
    parts = []
    if rows:
        parts.append(_metrics_table(rows))
        png = plot_metrics(rows, assets / "evaluation.png")
        if png:
            parts.append(f'<img src="{ASSETS}/{png.name}" alt="evaluation vs baselines">')
    parts.append(
        '<p class="muted">recall@50_se: standard error of recall@50 over the scored users. tail: items outside '
        "the head of training clicks; cold: items without a training click. Out-of-catalogue clicks count as misses.</p>"
    )
    parts.append(fm.sub_folded("all recorded values", fm.details_table(metrics)))
    return fm.folded("Evaluation", "".join(parts), open_=True)


def _metrics_table(rows: dict[str, dict[str, Any]]) -> str:
    present = {k for r in rows.values() for k, v in r.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    keys = [k for k in EVAL_COLUMNS if k in present]  # other recorded metrics: "all recorded values"
    head = "<tr><th></th>" + "".join(f'<th class="n">{e(k)}</th>' for k in keys) + "</tr>"
    body = "".join(
        f"<tr><td>{e(name)}</td>" + "".join(f'<td class="n">{e(num(r.get(k)))}</td>' for k in keys) + "</tr>"
        for name, r in rows.items()
    )
    return f"<table>{head}{body}</table>"


def _previous_version_metrics(layout: Layout, ds: str, stats: dict[str, Any]) -> tuple[str, dict] | None:
    """The published model's metrics on this day's held-out set (from the publish gate), else
    the previous published version's own metrics (measured on its own day: not the same set)."""
    pub = publish_of(stats)
    rejected = pub is not None and pub.decision == "rejected"
    gate = (stats.get("publish") or {}).get("gate") or (_rejected_gate(layout, ds) if rejected else {})
    if isinstance(gate.get("published"), int | float):
        # The publish gate evaluated the then-published version on this day's held-out set.
        metric = gate.get("metric", METRIC)
        row = {metric: gate["published"]}
        if isinstance(gate.get("published_se"), int | float):
            row[f"{metric}_se"] = gate["published_se"]
        return f"previous version {gate.get('published_version')} (same held-out day)", row
    from core.published import published_days

    earlier = [d for d in published_days(layout) if d < ds]
    if not earlier:
        return None
    m = read_json(layout.version_dir(earlier[-1]) / "metrics.json")
    if m and isinstance(m.get("model"), dict):
        return f"previous version {earlier[-1]} (its own held-out day)", m["model"]
    return None


def _r4(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, int | float) and not isinstance(v, bool) else num(v)


def _rejected_gate(layout: Layout, ds: str) -> dict[str, Any]:
    """The gate result kept in the newest refused candidate of day ``ds`` (``_rejected/<ds>-<n>/``)."""
    root = layout.model_root / "_rejected"
    found = sorted(
        (int(p.name.rsplit("-", 1)[1]), p) for p in root.glob(f"{ds}-*") if p.is_dir() and p.name.rsplit("-", 1)[1].isdigit()
    ) if root.is_dir() else []
    return ((read_json(found[-1][1] / "manifest.json") or {}).get("gate") or {}) if found else {}


def section_publish(stats: dict[str, Any], layout: Layout | None = None, ds: str | None = None) -> str:
    pub = publish_of(stats)
    if pub is None:
        return '<h2>Publish decision</h2><p><b>not published</b>: the run stopped before the publish step.</p>'
    decision = "published" if pub.published else "not published"
    gate = stats["publish"].get("gate") or {}  # the gate's recorded figures, shown as they were written
    if not gate and not pub.published and pub.decision == "rejected" and layout is not None and ds:
        gate = _rejected_gate(layout, ds)
    reason = pub.reason or gate.get("reason") or pub.decision or ""
    if pub.version:
        decision += f" as version {pub.version}"
    rows: list[tuple[str, Any]] = []
    if gate:
        se = lambda k: f" ± {gate[k]:.4f}" if isinstance(gate.get(k), int | float) else ""  # noqa: E731
        rows += [
            (f"candidate {gate.get('metric', METRIC)}", f"{_r4(gate.get('candidate'))}{se('candidate_se')}"),
            (f"published version {gate.get('published_version') or DASH} on the same day",
             f"{_r4(gate.get('published'))}{se('published_se')}" if gate.get("published") is not None else "none (first version)"),
            ("minimum allowed (drop rule)", gate.get("min_allowed")),
            (f"best baseline ({gate.get('best_baseline_name') or DASH})", f"{_r4(gate.get('best_baseline'))}{se('best_baseline_se')}"),
            ("ANN recall", gate.get("ann_recall")),
            ("held-out users", gate.get("eval_users")),
            ("decidable (margins beyond the SE)", gate.get("decidable")),
            ("forced", gate.get("forced")),
        ]
    recorded = stats["publish"]
    for k in ("previous_latest", "latest", "path", "retention_deleted"):
        if k in recorded:
            rows.append((fm.label(k), recorded[k]))
    # Not folded: the decision is the first thing under its heading.
    return (
        f'<h2>Publish decision</h2><p><b>{decision}</b> {e(str(reason))}</p>'
        + (kv_table(rows) if rows else "")
        + fm.sub_folded("all recorded values", fm.details_table(recorded, skip=("run_info",)))
    )
