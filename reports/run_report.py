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
and config hash, :mod:`reports.summary`) and the warnings of :func:`reports.facts.warnings_for`;
every section below is folded (:mod:`reports.sections`, :mod:`reports.evaluation_and_publish`;
plots in :mod:`reports.plots`).

Output: ``<reports_root>/ds=D/report.html`` + PNG plots beside it in ``assets/``, a
``summary.json`` (status and facts, read by the index and ``twotower runs list``) and
``<reports_root>/index.html`` (:mod:`reports.trends`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

from contracts.days import ds_str
from core.config import Config
from core.errors import PipelineError
from reports import format as fm
from reports.evaluation_and_publish import section_evaluation, section_publish
from reports.facts import (
    TRAILING_DAYS,
    all_steps,
    day_facts,
    load_dq_summaries,
    load_metrics,
    load_stage_stats,
    read_json,
    warnings_for,
)
from reports.plots import ASSETS
from reports.sections import section_data_quality, section_etl, section_index, section_steps, section_training
from reports.status import run_status
from reports.summary import summary_html
from reports.trends import INDEX_NAME, SUMMARY_NAME, build_index_page, load_run_summaries
from storage.layout import Layout, atomic_write_text

log = logging.getLogger(__name__)

REPORT_NAME = "report.html"

__all__ = ["ASSETS", "INDEX_NAME", "SUMMARY_NAME", "NeverRan", "build_run_report", "report_path", "run_status"]


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
        section_steps(stats, dq),
        section_evaluation(layout, ds, stats, metrics, assets),
        section_publish(stats, layout, ds),
        section_data_quality(layout, ds, stats, out_dir),
        section_etl(layout, ds, stats, assets),
        section_training(layout, ds, stats, assets),
        section_index(stats),
    ]
    page = fm.page(
        f"twotower run {ds}",
        f'<p><a href="../{INDEX_NAME}">all runs</a></p><h1>twotower run for {ds}</h1>'
        + summary_html(ds, status, facts, trailing, warnings, stats)
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
