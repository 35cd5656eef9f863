"""The HTML run report of one day and the index page of all runs.

Reads only what the steps left on disk (never reruns anything), so it can be built after a
failure, by the DAG's ``report`` task, by ``twotower run`` or by ``twotower report --ds D``:

* ``Layout.stage_stats(ds, step)``: the JSON each pipeline step wrote (a missing file means
  the step failed or did not run);
* ``Layout.dq_dir(ds)``: data-quality summaries (JSON) and Great Expectations Data Docs;
* the ETL outputs ``item_sampling`` (popularity before/after resampling) and
  ``hard_negatives``, the raw ``ranking_log`` (funnel), read column-wise with pyarrow;
* ``Layout.model_dir(ds)``: ``metrics.json``, ``train_stats.json``, ``loss_curve.png``.

Output: ``<reports_root>/ds=D/report.html`` + PNG plots beside it in ``assets/``, a
``summary.json`` (status line used by the index) and ``<reports_root>/index.html``.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
import shutil
from pathlib import Path
from typing import Any

from contracts.layout import Layout, atomic_write_text, ds_str
from twotower.config import Config
from twotower.errors import PipelineError

log = logging.getLogger(__name__)

REPORT_NAME = "report.html"
SUMMARY_NAME = "summary.json"
ASSETS = "assets"
INDEX_NAME = "index.html"
# Pipeline steps in run order (the ETL stages are inserted after validate_raw).
STEPS_BEFORE_ETL = ("validate_raw",)
STEPS_AFTER_ETL = ("validate_outputs", "train", "evaluate", "train_final", "build_index", "publish")


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
    sections = [
        _section_steps(stats),
        _section_data_quality(layout, ds, stats, out_dir),
        _section_etl(layout, ds, stats, assets),
        _section_training(layout, ds, stats, assets),
        _section_evaluation(layout, ds, stats, assets),
        _section_index(stats),
        _section_publish(stats),
    ]
    page = _page(
        f"twotower run {ds}",
        f'<p><a href="../index.html">all runs</a></p><h1>twotower run for {ds}</h1>'
        f'<p class="status {status["state"]}">Status: <b>{_e(status["state"])}</b> - {_e(status["detail"])}</p>'
        + "".join(sections),
    )
    path = report_path(layout, ds)
    atomic_write_text(path, page)
    summary = {"ds": ds, **status, "built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    atomic_write_text(out_dir / SUMMARY_NAME, json.dumps(summary, indent=2))
    build_index_page(layout)
    log.info("run report for ds=%s: %s", ds, path)
    return path


# ------------------------------------------------------------------------------------------
# Inputs
# ------------------------------------------------------------------------------------------


def load_stage_stats(layout: Layout, ds: str) -> dict[str, dict[str, Any]]:
    """Every ``stats/<step>.json`` of day ``ds`` by step name (unreadable files are reported, not fatal)."""
    folder = layout.stage_stats(ds, "x").parent
    out: dict[str, dict[str, Any]] = {}
    if folder.is_dir():
        for f in sorted(folder.glob("*.json")):
            try:
                out[f.stem] = json.loads(f.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                out[f.stem] = {"unreadable": f"{f}: {exc}"}
    return out


def etl_steps(stats: dict[str, Any]) -> list[str]:
    """ETL step names present (``etl_<stage>``), in the order of ``etl.jobs.ETL_STAGES`` when known."""
    present = [k for k in stats if k.startswith("etl_")]
    try:
        from etl.jobs import ETL_STAGES

        order = [f"etl_{s}" for s in ETL_STAGES]
    except ImportError:  # the report must still render without the ETL package
        order = []
    return [s for s in order if s in present] + sorted(s for s in present if s not in order)


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
            first = _short(fails[0], 300) if fails else "see the data-quality summary"
            return {"state": "failed", "detail": f"data-quality gate {step} failed ({len(fails)} critical): {first}"}
    pub = stats.get("publish")
    if pub is not None:
        if pub.get("published", True) is not False:
            return {"state": "published", "detail": f"version {pub.get('version', '?')} published"}
        return {"state": "rejected", "detail": str(pub.get("reason") or pub.get("decision") or "publish rejected")}
    order = [*STEPS_BEFORE_ETL, *STEPS_AFTER_ETL]
    missing = next((s for s in order if s not in stats), None)
    if not stats:
        return {"state": "failed", "detail": "no step finished (validate_raw failed or did not run)"}
    return {"state": "failed", "detail": f"stopped at {missing}: it did not finish (see the task log)"}


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
# Sections
# ------------------------------------------------------------------------------------------


def _section_steps(stats: dict[str, Any]) -> str:
    rows = []
    for step in [*STEPS_BEFORE_ETL, *(etl_steps(stats) or ["etl_*"]), *STEPS_AFTER_ETL]:
        done = step in stats
        rows.append(
            f"<tr><td>{_e(step)}</td><td class={'ok' if done else 'bad'}>{'finished' if done else 'no stats: failed or not run'}</td></tr>"
        )
    return "<h2>Steps</h2><table><tr><th>step</th><th>state</th></tr>" + "".join(rows) + "</table>"


DQ_STEPS = ("validate_raw", "validate_outputs")


def load_dq_summaries(layout: Layout, ds: str, stats: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The data-quality summaries of day ``ds`` (written by quality even when its gate fails)."""
    out: dict[str, dict[str, Any]] = {}
    for step in DQ_STEPS:
        summary = _read_json(layout.dq_dir(ds) / f"{step}.json") or stats.get(step)
        if summary:
            out[step] = summary
    return out


def _section_data_quality(layout: Layout, ds: str, stats: dict[str, Any], out_dir: Path) -> str:
    parts = ["<h2>Data quality</h2>"]
    summaries = load_dq_summaries(layout, ds, stats)
    if not summaries:
        return parts[0] + f"<p>No data-quality summary under {_e(str(layout.dq_dir(ds)))}.</p>"
    for step, dq in summaries.items():
        status = str(dq.get("status", "?"))
        cls = "ok" if status == "passed" else "bad"
        parts.append(f'<h3>{step}: <span class="{cls}">{_e(status)}</span></h3>')
        docs = dq.get("data_docs")
        if docs and _stored_file(layout, Path(docs)):
            parts.append(f'<p>Great Expectations Data Docs: <a href="{_e(_rel(Path(docs), out_dir))}">{_e(docs)}</a></p>')
        parts.append(
            _kv_table(
                {
                    "checks": dq.get("checks"),
                    "checks failed": dq.get("checks_failed"),
                    "duration (s)": dq.get("duration_s"),
                    "summary": dq.get("summary_path"),
                }
            )
        )
        tables = dq.get("tables") or {}
        if tables:
            rows = "".join(
                f"<tr><td>{_e(t)}</td><td>{_e(_fmt(v.get('rows')) if isinstance(v, dict) else v)}</td>"
                f"<td>{_e(_fmt((dq.get('quarantined') or {}).get(t, 0)))}</td></tr>"
                for t, v in tables.items()
            )
            parts.append(f"<table><tr><th>table</th><th>rows</th><th>quarantined</th></tr>{rows}</table>")
        for label, items in (("Critical failures", dq.get("critical_failures")), ("Warnings", dq.get("warnings"))):
            if items:
                lis = "".join(f"<li>{_e(_short(m))}</li>" for m in items)
                parts.append(f"<p><b>{label}</b></p><ul class={'bad' if label[0] == 'C' else ''}>{lis}</ul>")
    return "".join(parts)


def _short(v: Any, n: int = 600) -> str:
    text = str(v)
    return text if len(text) <= n else text[:n] + " ..."


def _section_etl(layout: Layout, ds: str, stats: dict[str, Any], assets: Path) -> str:
    parts = ["<h2>ETL</h2>"]
    for step in etl_steps(stats):
        parts.append(f"<h3>{_e(step)}</h3>" + _kv_table(stats[step]))
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
    return "".join(parts)


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


def _section_training(layout: Layout, ds: str, stats: dict[str, Any], assets: Path) -> str:
    parts = ["<h2>Training</h2>"]
    if "train" in stats:
        parts.append(_kv_table(stats["train"]))
    model_dir = layout.model_dir(ds)
    curve = model_dir / "loss_curve.png"
    if curve.is_file():
        shutil.copyfile(curve, assets / "loss_curve.png")
        parts.append(f'<h3>Training curves</h3><img src="{ASSETS}/loss_curve.png" alt="training loss curve">')
    else:
        series = _numeric_series(_read_json(model_dir / "train_stats.json") or stats.get("train", {}))
        if series:
            png = plot_curves(series, assets / "training_curves.png")
            parts.append(f'<h3>Training curves</h3><img src="{ASSETS}/{png.name}" alt="training curves">')
        else:
            parts.append("<p>No training curve recorded.</p>")
    return "".join(parts)


def _section_evaluation(layout: Layout, ds: str, stats: dict[str, Any], assets: Path) -> str:
    parts = ["<h2>Evaluation</h2>"]
    metrics = _read_json(layout.model_dir(ds) / "metrics.json") or stats.get("evaluate")
    if not metrics:
        return parts[0] + "<p>No evaluation for this day.</p>"
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
    if rows:
        parts.append(_metrics_table(rows))
        png = plot_metrics(rows, assets / "evaluation.png")
        if png:
            parts.append(f'<img src="{ASSETS}/{png.name}" alt="evaluation vs baselines">')
    extra = {k: v for k, v in metrics.items() if k not in ("model", "baselines", "oracle")}
    if extra:
        parts.append(_kv_table(extra))
    return "".join(parts)


def _previous_version_metrics(layout: Layout, ds: str, stats: dict[str, Any]) -> tuple[str, dict] | None:
    """The published model's metrics on this day's held-out set (from the publish gate), else
    the previous published version's own metrics (measured on its own day: not the same set)."""
    gate = (stats.get("publish") or {}).get("gate") or {}
    if isinstance(gate.get("published"), int | float):
        # The publish gate evaluated the then-published version on this day's held-out set.
        metric = gate.get("metric", "recall@50")
        return f"previous version {gate.get('published_version')} (same held-out day)", {metric: gate["published"]}
    from twotower.rundays import published_days

    earlier = [d for d in published_days(layout) if d < ds]
    if not earlier:
        return None
    m = _read_json(layout.version_dir(earlier[-1]) / "metrics.json")
    if m and isinstance(m.get("model"), dict):
        return f"previous version {earlier[-1]} (its own held-out day)", m["model"]
    return None


def _section_index(stats: dict[str, Any]) -> str:
    if "build_index" not in stats:
        return "<h2>Index</h2><p>No index was built.</p>"
    return "<h2>Index</h2>" + _kv_table(stats["build_index"])


def _section_publish(stats: dict[str, Any]) -> str:
    pub = stats.get("publish")
    if pub is None:
        return "<h2>Publish decision</h2><p><b>not published</b>: the run stopped before the publish step.</p>"
    decision = "published" if pub.get("published", True) is not False else "not published"
    reason = pub.get("reason") or (pub.get("gate") or {}).get("reason") or pub.get("decision") or ""
    if pub.get("version"):
        decision += f" as version {pub['version']}"
    return f"<h2>Publish decision</h2><p><b>{decision}</b> {_e(str(reason))}</p>" + _kv_table(pub)


# ------------------------------------------------------------------------------------------
# Index page
# ------------------------------------------------------------------------------------------


def build_index_page(layout: Layout) -> Path:
    """``<reports_root>/index.html``: every run day with its status, newest first."""
    root = layout.reports_root
    rows = []
    for d in sorted((p for p in root.glob("ds=*") if p.is_dir()), reverse=True):
        summary = _read_json(d / SUMMARY_NAME) or {"state": "unknown", "detail": "no report built"}
        link = f'<a href="{d.name}/{REPORT_NAME}">{_e(d.name[3:])}</a>' if (d / REPORT_NAME).is_file() else _e(d.name[3:])
        rows.append(
            f'<tr><td>{link}</td><td class="status {_e(summary.get("state", ""))}">{_e(summary.get("state", ""))}</td>'
            f"<td>{_e(summary.get('detail', ''))}</td><td>{_e(summary.get('built_at', ''))}</td></tr>"
        )
    page = _page(
        "twotower runs",
        "<h1>twotower runs</h1><table><tr><th>day</th><th>status</th><th>detail</th><th>report built</th></tr>"
        + "".join(rows)
        + "</table>",
    )
    path = root / INDEX_NAME
    atomic_write_text(path, page)
    return path


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
# HTML helpers
# ------------------------------------------------------------------------------------------

_CSS = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:13px}
.ok{color:#176f2c}.bad{color:#a31515}.status.published{color:#176f2c}.status.failed,.status.rejected{color:#a31515}
img{max-width:100%;border:1px solid #ddd}"""


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f"<style>{_CSS}</style></head><body>{body}</body></html>\n"
    )


def _e(s: Any) -> str:
    return html.escape(str(s))


def _kv_table(d: Any, max_rows: int = 60) -> str:
    flat = _flatten(d)
    rows = "".join(f"<tr><td>{_e(k)}</td><td>{_e(_short(_fmt(v), 300))}</td></tr>" for k, v in list(flat.items())[:max_rows])
    more = f"<tr><td colspan=2>... {len(flat) - max_rows} more</td></tr>" if len(flat) > max_rows else ""
    return f"<table>{rows}{more}</table>"


def _metrics_table(rows: dict[str, dict[str, Any]]) -> str:
    keys = sorted({k for r in rows.values() for k, v in r.items() if isinstance(v, int | float)})
    head = "<tr><th></th>" + "".join(f"<th>{_e(k)}</th>" for k in keys) + "</tr>"
    body = "".join(
        f"<tr><td>{_e(name)}</td>" + "".join(f"<td>{_e(_fmt(r.get(k, '')))}</td>" for k in keys) + "</tr>"
        for name, r in rows.items()
    )
    return f"<table>{head}{body}</table>"


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    if isinstance(d, list) and (len(d) > 12 or any(isinstance(x, dict | list) for x in d)):
        return {prefix.rstrip("."): f"[{len(d)} values]"}
    return {prefix.rstrip("."): d}


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


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


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _rel(target: Path, start: Path) -> str:
    import os

    return os.path.relpath(target, start)
