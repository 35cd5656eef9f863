"""The HTML run report of one day and the index page of all runs.

Reads only what the steps left on disk (never reruns anything), so it can be built after a
failure, by the DAG's ``report`` task, by ``twotower run`` or by ``twotower report --ds D``:

* ``Layout.stage_stats(ds, step)``: the JSON each pipeline step wrote (a missing file means
  the step failed or did not run), with ``run_info`` (wall seconds, code version, config hash);
* ``Layout.dq_dir(ds)``: data-quality summaries (JSON) and Great Expectations Data Docs;
* the ETL outputs ``item_sampling`` (popularity before/after resampling) and
  ``hard_negatives``, the raw ``ranking_log`` (funnel), read column-wise with pyarrow;
* ``Layout.model_dir(ds)``: ``metrics.json``, ``train_stats.json``, ``loss_curve.png``;
* the earlier days' ``summary.json`` (their facts: the trailing days a day is compared with).

The page opens with a summary (published or not and why, recall@50 against the best baseline
with standard errors, data volume against the trailing days, data quality, time, code version
and config hash) and the warnings of :func:`reports.facts.warnings_for`; every section below
is folded.

Output: ``<reports_root>/ds=D/report.html`` + PNG plots beside it in ``assets/``, a
``summary.json`` (status and facts, read by the index and ``twotower runs list``) and
``<reports_root>/index.html`` (:mod:`reports.trends`).
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import logging
import re
import shutil
from pathlib import Path
from typing import Any

from contracts.days import ds_str
from core.config import Config
from core.errors import PipelineError
from reports import format as fm
from reports.facts import (
    DQ_STEPS,
    METRIC,
    STEPS_AFTER_ETL,
    STEPS_BEFORE_ETL,
    TRAILING_DAYS,
    all_steps,
    day_facts,
    etl_steps,
    failing_rows,
    load_dq_summaries,
    load_metrics,
    load_stage_stats,
    quarantined_rows,
    read_json,
    step_seconds,
    trailing_median,
    warnings_for,
)
from reports.format import DASH, Raw, dur, e, grid, kv_table, num, pct
from reports.trends import INDEX_NAME, SUMMARY_NAME, build_index_page, load_run_summaries
from storage.layout import Layout, atomic_write_text

log = logging.getLogger(__name__)

REPORT_NAME = "report.html"
ASSETS = "assets"

__all__ = [
    "ASSETS", "DQ_STEPS", "INDEX_NAME", "REPORT_NAME", "STEPS_AFTER_ETL", "STEPS_BEFORE_ETL", "SUMMARY_NAME",
    "NeverRan", "build_index_page", "build_run_report", "etl_steps", "load_dq_summaries", "load_stage_stats",
    "plot_curves", "plot_metrics", "plot_popularity", "report_path", "run_status",
]


def report_path(layout: Layout, ds: str) -> Path:
    return layout.report_dir(ds) / REPORT_NAME


class NeverRan(PipelineError):
    """A report was asked for a day that no step ever ran for."""


def build_run_report(cfg: Config, ds: str) -> Path:
    """Write the run report of day ``ds`` and refresh the index page.

    Args:
        cfg: the configuration (only ``cfg.paths`` is used to find the inputs).
        ds: the run day ``YYYY-MM-DD``.
    Returns:
        Path of ``report.html``.
    Raises:
        NeverRan: no step of day ``ds`` left statistics or a data-quality summary (nothing
            is written, the index of runs is not touched).
    """
    ds = ds_str(ds)
    layout = Layout(cfg.paths)
    out_dir = layout.report_dir(ds)
    stats = load_stage_stats(layout, ds)
    dq = load_dq_summaries(layout, ds, stats)
    if not stats and not dq:
        raise NeverRan(
            f"no run of day {ds} to report: no step statistics under {layout.stage_stats(ds, 'x').parent} and no "
            f"data-quality summary under {layout.dq_dir(ds)}. Run the day first (`twotower run --ds {ds}`)"
        )
    assets = out_dir / ASSETS
    assets.mkdir(parents=True, exist_ok=True)

    status = run_status(stats, dq)
    metrics = load_metrics(layout, ds, stats)
    try:
        facts = day_facts(ds, stats, dq, metrics)
    except Exception as exc:  # a report never fails on one odd input: it says so instead
        log.exception("report ds=%s: cannot compute the day's facts", ds)
        facts = {"ds": ds, "error": f"cannot compute the day's facts: {exc!r}"}
    if not facts.get("code_version"):  # steps recorded before run_info existed: the version's manifest
        manifest = read_json(layout.version_dir(ds) / "manifest.json") or {}
        facts["code_version"], facts["config_hash"] = manifest.get("code_version"), manifest.get("config_hash")
    if not facts.get("code_version"):  # no step finished (a failed gate): the code building this report
        from core.version import code_version

        facts["code_version"], facts["config_hash"] = f"{code_version()} (report build)", cfg.hash()
    trailing = [s["facts"] for s in load_run_summaries(layout) if s["ds"] < ds and s.get("facts")][-TRAILING_DAYS:]
    missing = [s for s in all_steps(stats) if s not in stats] if status["state"] == "failed" else []
    warnings = warnings_for(facts, trailing, missing) if "error" not in facts else [facts["error"]]

    sections = [
        _section_steps(stats, dq),
        _section_evaluation(layout, ds, stats, metrics, assets),
        _section_publish(stats, layout, ds),
        _section_data_quality(layout, ds, stats, out_dir),
        _section_etl(layout, ds, stats, assets),
        _section_training(layout, ds, stats, assets),
        _section_index(stats),
    ]
    page = fm.page(
        f"twotower run {ds}",
        f'<p><a href="../{INDEX_NAME}">all runs</a></p><h1>twotower run for {ds}</h1>'
        + _summary(ds, status, facts, trailing, warnings, stats)
        + "".join(sections),
    )
    path = report_path(layout, ds)
    atomic_write_text(path, page)
    summary = {
        "ds": ds,
        **status,
        "built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "facts": facts,
        "warnings": warnings,
    }
    atomic_write_text(out_dir / SUMMARY_NAME, json.dumps(summary, indent=2, default=str))
    build_index_page(layout)
    log.info("run report for ds=%s: %s", ds, path)
    return path


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
            first = fm_short(split_examples(fails[0])[0], 300) if fails else "see the data-quality summary"
            return {"state": "failed", "detail": f"data-quality gate {step} failed ({len(fails)} critical): {first}"}
    pub = stats.get("publish")
    if pub is not None:
        if pub.get("published", True) is not False:
            detail = f"version {pub.get('version', '?')} published"
            latest = pub.get("latest")
            if latest and pub.get("version") and latest != pub.get("version"):
                detail += f"; LATEST stays at the newer {latest}"
            return {"state": "published", "detail": detail}
        return {"state": "rejected", "detail": str(pub.get("reason") or pub.get("decision") or "publish rejected")}
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


def _message(msg: Any) -> str:
    """A data-quality message as HTML: the text, then its example rows as a folded table."""
    text, rows = split_examples(str(msg))
    html_ = e(fm_short(text, 1200))
    if rows:
        cols = list(dict.fromkeys(k for r in rows for k in r))
        html_ += fm.sub_folded(f"{len(rows)} example rows", grid(cols, [[r.get(c) for c in cols] for r in rows]))
    return html_


def fm_short(v: Any, n: int = 600) -> str:
    text = str(v)
    return text if len(text) <= n else text[:n] + " ..."


# ------------------------------------------------------------------------------------------
# Summary
# ------------------------------------------------------------------------------------------


def _summary(ds: str, status: dict, facts: dict, trailing: list[dict], warnings: list[str], stats: dict) -> str:
    state = status["state"]
    latest = (stats.get("publish") or {}).get("latest")
    verdict = {
        "published": f"version {facts.get('version') or ds} published"
        + ("; it is what LATEST serves" if latest == (facts.get("version") or ds) else f"; LATEST stays at {latest}" if latest else ""),
        "rejected": "not published: the publish gate refused the candidate",
        "failed": "not published: the run failed",
    }.get(state, state)
    rows: list[tuple[str, Any]] = []
    pub = stats.get("publish") or {}
    gate = pub.get("gate") or {}
    if state == "published":
        why = gate.get("reason") or ""
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


# ------------------------------------------------------------------------------------------
# Sections
# ------------------------------------------------------------------------------------------


def _section_steps(stats: dict[str, Any], dq: dict[str, Any]) -> str:
    steps = all_steps(stats)
    secs = {s: step_seconds(stats.get(s)) for s in steps}
    for step in DQ_STEPS:  # a failed gate wrote no step stats, but its summary has the duration
        if secs.get(step) is None and step in dq:
            secs[step] = step_seconds(dq[step])
    longest = max((v for v in secs.values() if v), default=0.0)
    first_missing = next((s for s in steps if s not in stats), None)
    rows = []
    for step in steps:
        if step in stats:
            state = '<span class="ok">finished</span>'
        elif step in DQ_STEPS and str((dq.get(step) or {}).get("status")) == "failed":
            state = '<span class="bad">failed: data-quality gate</span>'
        elif step == first_missing:
            state = '<span class="bad">failed or stopped (see the task log)</span>'
        else:
            state = '<span class="muted">not run</span>'
        s = secs.get(step)
        bar = Raw(f'<span class="bar" style="width:{max(1, int(160 * s / longest))}px"></span>{e(dur(s))}') if s and longest else dur(s)
        finished = str(((stats.get(step) or {}).get("run_info") or {}).get("finished_at") or DASH)
        rows.append([step, Raw(state), bar, finished[11:19] if len(finished) >= 19 else finished])
    total = sum(v for v in secs.values() if v)
    body = grid(["step", "state", "wall time", "finished (UTC)"], rows) + f"<p>Total: {e(dur(total) if total else DASH)}</p>"
    return fm.folded("Steps", body, open_=True)


def _section_data_quality(layout: Layout, ds: str, stats: dict[str, Any], out_dir: Path) -> str:
    summaries = load_dq_summaries(layout, ds, stats)
    if not summaries:
        return fm.folded("Data quality", f"<p>No data-quality summary under {e(str(layout.dq_dir(ds)))}.</p>")
    parts = []
    for step, dq in summaries.items():
        status = str(dq.get("status", "?"))
        cls = "ok" if status == "passed" else "bad"
        parts.append(f'<h3>{step}: <span class="{cls}">{e(status)}</span></h3>')
        docs = dq.get("data_docs")
        if docs and _stored_file(layout, Path(docs)):
            parts.append(f'<p>Great Expectations Data Docs: <a href="{e(_rel(Path(docs), out_dir))}">{e(docs)}</a></p>')
        parts.append(
            kv_table(
                [
                    ("checks", dq.get("checks")),
                    ("checks failed", dq.get("checks_failed")),
                    ("duration", Raw(e(dur(dq.get("duration_s"))))),
                    ("summary file", dq.get("summary_path") or DASH),
                ]
            )
        )
        tables = dq.get("tables") or {}
        if tables:
            rows = "".join(
                f"<tr><td>{e(t)}</td><td>{e(num(v.get('rows')) if isinstance(v, dict) else num(v))}</td>"
                f"<td>{e(_quarantine_text((dq.get('quarantined') or {}).get(t)))}</td></tr>"
                for t, v in tables.items()
            )
            parts.append(f"<table><tr><th>table</th><th>rows</th><th>quarantined</th></tr>{rows}</table>")
        for label, items in (("Critical failures", dq.get("critical_failures")), ("Warnings", dq.get("warnings"))):
            if items:
                lis = "".join(f"<li>{_message(m)}</li>" for m in items)
                parts.append(f"<p><b>{label}</b></p><ul class={'bad' if label[0] == 'C' else ''}>{lis}</ul>")
        suites = dq.get("suites") or []
        if suites:
            srows = [
                [s.get("suite"), Raw(f'<span class="{"ok" if s.get("status") == "passed" else "bad"}">{e(s.get("status"))}</span>'),
                 s.get("passed"), s.get("failed"), s.get("warnings"), s.get("quarantined")]
                for s in suites if isinstance(s, dict)
            ]
            parts.append(fm.sub_folded(f"{len(srows)} suites", grid(["suite", "status", "passed", "failed", "warnings", "quarantined"], srows)))
    failed = any(str(s.get("status")) == "failed" for s in summaries.values())
    return fm.folded("Data quality", "".join(parts), open_=failed)


def _section_etl(layout: Layout, ds: str, stats: dict[str, Any], assets: Path) -> str:
    parts = []
    steps = etl_steps(stats)
    if steps:
        rows = [[s[4:], stats[s].get("rows"), Raw(e(dur(step_seconds(stats[s])))), _etl_note(stats[s])] for s in steps]
        parts.append(grid(["stage", "rows written", "time", "notes"], rows))
        for step in steps:
            parts.append(fm.sub_folded(f"{step}: all recorded values", fm.details_table(stats[step], skip=("run_info",))))
    sampling = _read_parquet_columns(layout, layout.path_for("item_sampling", ds), ["clicks", "clicks_resampled"])
    if sampling is not None and sampling.num_rows:
        png = plot_popularity(
            sampling.column("clicks").to_numpy(), sampling.column("clicks_resampled").to_numpy(), assets / "popularity.png"
        )
        parts.append(
            "<h3>Item popularity before and after resampling</h3>"
            f'<img src="{ASSETS}/{png.name}" alt="item popularity before/after resampling">'
        )
    else:
        parts.append("<p>item_sampling not available: no popularity plot.</p>")
    catalogue = stats.get("etl_features", {}).get("catalogue")
    if catalogue:
        parts.append(
            "<h3>Catalogue</h3>"
            + _kv_table(
                {
                    "live items (indexed)": catalogue.get("size"),
                    f"added since {catalogue.get('compared_with') or 'the day before (no partition)'}": catalogue.get("added"),
                    "retired": catalogue.get("retired"),
                    "rule": f"{catalogue.get('rule')} (retire after {catalogue.get('retire_after_days')} days unseen)",
                }
            )
        )
    parts.append(_funnel(layout, ds))
    hard = _read_parquet_columns(layout, layout.path_for("hard_negatives", ds), ["difficulty"])
    if hard is not None:
        counts = _value_counts(hard.column("difficulty").to_numpy())
        names = {1: "cut at pre_rank (difficulty 1)", 2: "cut at rank (difficulty 2)"}
        parts.append(
            "<h3>Hard negatives</h3>"
            + _kv_table({names.get(int(k), f"difficulty {k}"): v for k, v in counts.items()} | {"total": hard.num_rows})
        )
    return fm.folded("ETL", "".join(parts))


def _quarantine_text(entry: Any) -> str:
    """``12``, or ``0 (6,147 rows fail row rules: over the quarantine budget)``."""
    rows, failing = quarantined_rows(entry), failing_rows(entry)
    return num(rows) if failing <= rows else f"{num(rows)} ({num(failing)} rows fail row rules: over the quarantine budget)"


def _etl_note(s: dict[str, Any]) -> str:
    """One line of what matters in an ETL stage's stats."""
    notes = []
    for key in ("days_written", "users", "users_with_history", "active_items", "items", "train_rows", "eval_users", "new_values"):
        if key in s and not isinstance(s[key], dict):
            notes.append(f"{fm.label(key)} {fm.value(s[key], key)}")
    return "; ".join(notes[:4]) or DASH


def _funnel(layout: Layout, ds: str) -> str:
    table = _read_parquet_columns(layout, layout.path_for("ranking_log", ds), ["stage", "passed"])
    if table is None:
        return "<p>No ranking log for this day: no funnel.</p>"
    import pyarrow.compute as pc

    rows = []
    from contracts.schemas import RANKING_STAGES

    for stage in RANKING_STAGES:
        mask = pc.equal(table.column("stage"), stage)
        entered = int(pc.sum(mask.cast("int64")).as_py() or 0)
        passed = int(pc.sum(pc.and_(mask, table.column("passed")).cast("int64")).as_py() or 0)
        rows.append(f"<tr><td>{stage}</td><td>{entered:,}</td><td>{passed:,}</td></tr>")
    return (
        "<h3>Ranking funnel (raw ranking_log of the day)</h3>"
        "<table><tr><th>stage</th><th>rows entered</th><th>passed</th></tr>" + "".join(rows) + "</table>"
    )


# Training stats worth a line of their own (the rest is folded).
_TRAIN_KEYS = (
    "device", "epochs", "steps", "examples", "train_rows", "batch_size", "examples_per_s", "loss_final", "final_loss",
    "warm_start", "warm_started_from", "seconds", "training_days", "trained_days",
)


def _section_training(layout: Layout, ds: str, stats: dict[str, Any], assets: Path) -> str:
    parts = []
    for step in ("train", "train_final"):
        if step in stats:
            s = stats[step]
            head = [(fm.label(k), s[k]) for k in _TRAIN_KEYS if k in s and not isinstance(s[k], dict)]
            parts.append(f"<h3>{step}</h3>" + (kv_table(head) if head else ""))
            parts.append(fm.sub_folded(f"{step}: all recorded values", fm.details_table(s, skip=("run_info",))))
    model_dir = layout.model_dir(ds)
    curve = model_dir / "loss_curve.png"
    if curve.is_file():
        shutil.copyfile(curve, assets / "loss_curve.png")
        parts.append(f'<h3>Training curves</h3><img src="{ASSETS}/loss_curve.png" alt="training loss curve">')
    else:
        series = _numeric_series(read_json(model_dir / "train_stats.json") or stats.get("train", {}))
        if series:
            png = plot_curves(series, assets / "training_curves.png")
            parts.append(f'<h3>Training curves</h3><img src="{ASSETS}/{png.name}" alt="training curves">')
        else:
            parts.append("<p>No training curve recorded.</p>")
    return fm.folded("Training", "".join(parts))


# Metric columns of the evaluation table, in order (those no row has are left out).
_EVAL_COLUMNS = (
    "recall@10", "recall@50", "recall@50_se", "recall@100", "hitrate@50", "ndcg@50", "coverage",
    "recall@50_tail", "recall@50_cold", "users_scored",
)


def _section_evaluation(layout: Layout, ds: str, stats: dict[str, Any], metrics: dict | None, assets: Path) -> str:
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
    keys = [k for k in _EVAL_COLUMNS if k in present]  # other recorded metrics: "all recorded values"
    head = "<tr><th></th>" + "".join(f'<th class="n">{e(k)}</th>' for k in keys) + "</tr>"
    body = "".join(
        f"<tr><td>{e(name)}</td>" + "".join(f'<td class="n">{e(num(r.get(k)))}</td>' for k in keys) + "</tr>"
        for name, r in rows.items()
    )
    return f"<table>{head}{body}</table>"


def _previous_version_metrics(layout: Layout, ds: str, stats: dict[str, Any]) -> tuple[str, dict] | None:
    """The published model's metrics on this day's held-out set (from the publish gate), else
    the previous published version's own metrics (measured on its own day: not the same set)."""
    pub = stats.get("publish") or {}
    gate = pub.get("gate") or (_rejected_gate(layout, ds) if pub.get("decision") == "rejected" else {})
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


def _section_index(stats: dict[str, Any]) -> str:
    s = stats.get("build_index")
    if s is None:
        return fm.folded("Index", "<p>No index was built.</p>")
    ann = s.get("ann") or {}
    index = s.get("index") or {}
    check = s.get("tower_check") or {}
    rows = [
        ("index", f"{index.get('kind', DASH)} ({index.get('factory', DASH)})"),
        ("search parameters", index.get("params") or DASH),
        ("vectors x dimension", f"{num(s.get('ntotal'))} x {num(s.get('dimension'))}"),
        (f"ANN recall@{ann.get('k', '?')} vs exact", ann.get("recall")),
        ("queries/s: ANN / exact", f"{num(ann.get('qps_ann'))} / {num(ann.get('qps_exact'))}"),
        ("build / tuning time", f"{dur(ann.get('build_seconds'))} / {dur(ann.get('tune_seconds'))}"),
        ("item tower re-check", f"{check.get('status', DASH)}, max |diff| {num(check.get('max_abs_diff'))}"
         if check.get("status") == "ok" else check.get("reason") or check.get("status") or DASH),
        ("files in the version", s.get("files")),
    ]
    notes = index.get("notes") or []
    body = kv_table(rows) + ("<ul>" + "".join(f"<li>{e(n)}</li>" for n in notes) + "</ul>" if notes else "")
    body += fm.sub_folded("all recorded values", fm.details_table(s, skip=("run_info",)))
    return fm.folded("Index", body)


def _r4(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, int | float) and not isinstance(v, bool) else num(v)


def _rejected_gate(layout: Layout, ds: str) -> dict[str, Any]:
    """The gate result kept in the newest refused candidate of day ``ds`` (``_rejected/<ds>-<n>/``)."""
    root = layout.model_root / "_rejected"
    found = sorted(
        (int(p.name.rsplit("-", 1)[1]), p) for p in root.glob(f"{ds}-*") if p.is_dir() and p.name.rsplit("-", 1)[1].isdigit()
    ) if root.is_dir() else []
    return ((read_json(found[-1][1] / "manifest.json") or {}).get("gate") or {}) if found else {}


def _section_publish(stats: dict[str, Any], layout: Layout | None = None, ds: str | None = None) -> str:
    pub = stats.get("publish")
    if pub is None:
        return '<h2>Publish decision</h2><p><b>not published</b>: the run stopped before the publish step.</p>'
    decision = "published" if pub.get("published", True) is not False else "not published"
    gate = pub.get("gate") or {}
    if not gate and decision == "not published" and pub.get("decision") == "rejected" and layout is not None and ds:
        gate = _rejected_gate(layout, ds)
    reason = pub.get("reason") or gate.get("reason") or pub.get("decision") or ""
    if pub.get("version"):
        decision += f" as version {pub['version']}"
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
    for k in ("previous_latest", "latest", "path", "retention_deleted"):
        if k in pub:
            rows.append((fm.label(k), pub[k]))
    # Not folded: the decision is the first thing under its heading.
    return (
        f'<h2>Publish decision</h2><p><b>{decision}</b> {e(str(reason))}</p>'
        + (kv_table(rows) if rows else "")
        + fm.sub_folded("all recorded values", fm.details_table(pub, skip=("run_info",)))
    )


# ------------------------------------------------------------------------------------------
# Inputs
# ------------------------------------------------------------------------------------------


def _read_parquet_columns(layout: Layout, path: Path, columns: list[str]):
    """A pyarrow Table of ``columns`` from a partition folder in the store (read in place,
    also from an object store), or ``None`` if absent/unreadable."""
    store = layout.store
    if not store.is_dir(path):
        return None
    try:
        import pyarrow.dataset as pads

        source, fs = (store.key(path), store.fs) if store.remote else (str(path), None)
        return pads.dataset(source, filesystem=fs, format="parquet").to_table(columns=columns)
    except Exception as exc:  # a report never fails on one unreadable input
        log.warning("report: cannot read %s columns %s: %s", path, columns, exc)
        return None


# ------------------------------------------------------------------------------------------
# Plots (matplotlib, Agg backend, imported lazily)
# ------------------------------------------------------------------------------------------


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_popularity(before, after, path: Path) -> Path:
    """Rank-frequency (log-log) of item clicks before and after hot/cold resampling.

    Args:
        before, after: per-item counts (1-D arrays, same items).
    """
    import numpy as np

    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for counts, label in ((before, "click positives (before)"), (after, "resampled positives (after)")):
        c = np.sort(np.asarray(counts, dtype=np.float64))[::-1]
        c = c[c > 0]
        if c.size:
            ax.loglog(np.arange(1, c.size + 1), c, label=f"{label}: {int(c.sum()):,} rows, {c.size:,} items")
    ax.set_xlabel("item rank by count")
    ax.set_ylabel("positives per item")
    ax.set_title("Item popularity before / after resampling")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_curves(series: dict[str, list[float]], path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for name, values in series.items():
        ax.plot(range(1, len(values) + 1), values, marker="o" if len(values) < 30 else None, label=name)
    ax.set_xlabel("step / epoch (as recorded)")
    ax.set_title("Training curves")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_metrics(rows: dict[str, dict[str, Any]], path: Path) -> Path | None:
    """Grouped bars of the recall/hitrate/ndcg metrics shared by every row."""
    import numpy as np

    first = next(iter(rows.values()))
    keys = [
        k for k, v in first.items()
        if isinstance(v, int | float) and k.startswith(("recall@", "hitrate@", "ndcg@")) and not k.endswith("_se")
    ]
    keys.sort(key=lambda k: (_EVAL_COLUMNS.index(k) if k in _EVAL_COLUMNS else len(_EVAL_COLUMNS), k))
    if not keys:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(7, 1.1 * len(keys) * len(rows) / 2), 5.0), dpi=110)
    width = 0.8 / len(rows)
    x = np.arange(len(keys))
    for i, (name, r) in enumerate(rows.items()):
        values = [float(r[k]) if isinstance(r.get(k), int | float) else np.nan for k in keys]  # nan: no bar
        ax.bar(x + i * width - 0.4 + width / 2, values, width, label=name)
    ax.set_xticks(x, keys, rotation=20)
    ax.set_ylabel("value on the held-out day")
    ax.set_title("Model vs baselines (and the previous version)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------


def _kv_table(d: dict[str, Any]) -> str:
    """Label -> value rows, values formatted for people."""
    return "<table>" + "".join(f"<tr><td>{e(k)}</td><td>{e(fm.value(v, str(k)))}</td></tr>" for k, v in d.items()) + "</table>"


def _numeric_series(d: Any, prefix: str = "") -> dict[str, list[float]]:
    """Lists of at least two numbers found in a stats dict (loss per epoch, per step, ...)."""
    out: dict[str, list[float]] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(_numeric_series(v, f"{prefix}{k}."))
    elif (
        isinstance(d, list) and len(d) >= 2 and all(isinstance(x, int | float) and not isinstance(x, bool) for x in d)
    ):
        out[prefix.rstrip(".")] = [float(x) for x in d]
    return out


def _value_counts(values) -> dict[int, int]:
    import numpy as np

    uniq, counts = np.unique(values, return_counts=True)
    return {int(u): int(c) for u, c in zip(uniq, counts, strict=True)}


def _stored_file(layout: Layout, path: Path) -> bool:
    """The file is in the store (the Data Docs stay there; the report step does not pull them)."""
    try:
        return layout.store.is_file(path)
    except ValueError:  # a path outside this layout's roots (written under other roots)
        return False


def _rel(target: Path, start: Path) -> str:
    import os

    return os.path.relpath(target, start)
