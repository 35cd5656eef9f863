"""The folded sections of a run report about how the day ran: Steps (state and wall time of
every step), Data quality, ETL (stage statistics, popularity before/after resampling, the
catalogue, the ranking funnel, hard negatives), Training and Index."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from reports import format as fm
from reports.facts import (
    DQ_STEPS,
    all_steps,
    etl_steps,
    failing_rows,
    load_dq_summaries,
    quarantined_rows,
    read_json,
    run_info_of,
    step_seconds,
)
from reports.format import DASH, Raw, dur, e, grid, kv_table, num
from reports.plots import ASSETS, plot_curves, plot_popularity
from reports.status import message_html
from storage.layout import Layout

log = logging.getLogger(__name__)


def section_steps(stats: dict[str, Any], dq: dict[str, Any]) -> str:
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
        finished = str(run_info_of(stats.get(step)).finished_at or DASH)
        rows.append([step, Raw(state), bar, finished[11:19] if len(finished) >= 19 else finished])
    total = sum(v for v in secs.values() if v)
    body = grid(["step", "state", "wall time", "finished (UTC)"], rows) + f"<p>Total: {e(dur(total) if total else DASH)}</p>"
    return fm.folded("Steps", body, open_=True)


def section_data_quality(layout: Layout, ds: str, stats: dict[str, Any], out_dir: Path) -> str:
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
                lis = "".join(f"<li>{message_html(m)}</li>" for m in items)
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


def section_etl(layout: Layout, ds: str, stats: dict[str, Any], assets: Path) -> str:
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


def section_training(layout: Layout, ds: str, stats: dict[str, Any], assets: Path) -> str:
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


def section_index(stats: dict[str, Any]) -> str:
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
