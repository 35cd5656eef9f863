"""The pipeline steps for one run day: the single code path shared by the Airflow DAG, the
CLI (``twotower run``) and the tests.

Each step takes the config and the run day ``ds`` (``YYYY-MM-DD``: the run for day D reads
D's logs), does its work through the stage package, writes its statistics to
``Layout.stage_stats(ds, step)`` for the run report, and returns them. Heavy libraries are
imported inside the steps, so importing this module (as DAG files do) is cheap.

Order: validate_raw -> etl stages -> validate_outputs -> train -> evaluate -> train_final ->
build_index -> publish -> report. A step raises :class:`core.errors.PipelineError` (data-quality gate,
publish gate, bad input) to stop everything downstream; nothing is published then.

Storage: with ``[paths] remote`` set, Spark steps read and write the object store directly;
every other step runs in a working copy (:mod:`storage.sync`): it pulls exactly what it reads
and pushes exactly what it wrote (the lists are in each step below). With local storage
those calls do nothing.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from contracts.days import ds_str
from contracts.schemas import ETL_OUTPUTS
from core.config import Config
from core.errors import PipelineError
from storage import sync
from storage.layout import Layout, atomic_write_text

log = logging.getLogger(__name__)

# Start (time.monotonic) of the step running in this context, set by _locked.
_step_started: contextvars.ContextVar[float | None] = contextvars.ContextVar("step_started", default=None)

STEPS = ("validate_raw", "etl", "validate_outputs", "train", "evaluate", "train_final", "build_index", "publish", "report")


def _locked(step: str) -> Callable:
    """Run the step under day ``ds``'s run lock (:mod:`twotower.runlock`): a second run of the
    same day stops at once with ``RunInProgress`` naming the running process and the lock."""

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def locked(cfg: Config, ds: str, *args, **kwargs):
            from twotower.runlock import day_lock

            with day_lock(cfg, ds, step):
                token = _step_started.set(time.monotonic())  # read by _record: the step's wall time
                try:
                    return fn(cfg, ds, *args, **kwargs)
                finally:
                    _step_started.reset(token)

        return locked

    return wrap


def _spark(cfg: Config):
    from core.spark import spark_session

    store = Layout(cfg.paths).store
    return spark_session(cfg.spark, storage_conf=store.spark_conf() if store.remote else None)


def _record(cfg: Config, ds: str, step: str, stats: dict[str, Any]) -> dict[str, Any]:
    """Write a step's statistics (returned unchanged) for the run report, with ``run_info``:
    the step's wall seconds (under its run lock), finish time, code version and config hash."""
    from core.version import code_version, utc_now

    started = _step_started.get()
    run_info = {
        "wall_seconds": None if started is None else round(time.monotonic() - started, 3),
        "finished_at": utc_now(),
        "code_version": code_version(),
        "config_hash": cfg.hash(),
    }
    path = Layout(cfg.paths).stage_stats(ds, step)
    atomic_write_text(path, json.dumps({**stats, "run_info": run_info}, indent=2, sort_keys=True, default=str))
    sync.push(cfg.paths, [path])
    log.info("step %s for ds=%s done; stats in %s", step, ds, path)
    return stats


# -- what each non-Spark step reads from the store (pulled into the working copy first) ----


def etl_outputs(layout: Layout, ds: str) -> list[Path]:
    """Every ETL output partition of day ``ds`` (what training, evaluation and indexing read)."""
    return [layout.path_for(table, ds) for table in ETL_OUTPUTS]


def _popularity_inputs(cfg: Config, layout: Layout, ds: str) -> list[Path]:
    """click_positives of the 28 days before the evaluation days: the popularity bars."""
    from contracts.days import day_range
    from training.evaluate import POPULARITY_DAYS, training_days

    last = training_days(cfg, ds)[-1]
    return [layout.path_for("click_positives", d) for d in day_range(last, max(POPULARITY_DAYS.values()))]


def _prior_inputs(cfg: Config, layout: Layout, ds: str) -> list[Path]:
    """What the popularity prior reads (nothing when it is off): the earlier days' grid records
    (their metrics.json) and click_positives of the counted days, up to day ds itself (the
    index counts through the last day the published weights saw)."""
    from contracts.days import day_range
    from training.evaluate import prior_record_days

    if cfg.training.prior == "off":
        return []
    records = [layout.model_dir(d) / "metrics.json" for d in prior_record_days(cfg, ds)]
    return [*records, *(layout.path_for("click_positives", d) for d in day_range(ds, cfg.training.prior_days + cfg.etl.eval_days))]


def _report_inputs(layout: Layout, ds: str) -> list[Path]:
    from core.published import published_days
    from quality.io import summary_path

    model_dir = layout.model_dir(ds)
    earlier = [d for d in published_days(layout) if d < ds]
    days = [name for name in layout.store.child_dirs(layout.reports_root) if name.startswith("ds=")]
    return [
        layout.stage_stats(ds, "x").parent,
        *(summary_path(layout, ds, stage) for stage in ("validate_raw", "validate_outputs")),
        *(model_dir / name for name in ("metrics.json", "train_stats.json", "loss_curve.png")),
        *([layout.version_dir(earlier[-1]) / "metrics.json"] if earlier else []),
        *(layout.reports_root / day / "summary.json" for day in days),
    ]


@contextlib.contextmanager
def _dq_pushed(cfg: Config, ds: str, stage: str) -> Iterator[None]:
    """Push a validation stage's summary and Data Docs, also when the gate stops the run:
    the report of a failed gate is what people read."""
    from quality.io import docs_root, summary_path

    layout = Layout(cfg.paths)
    try:
        yield
    finally:
        sync.push(cfg.paths, [summary_path(layout, ds, stage), docs_root(layout, ds, stage)])


def missing_raw(cfg: Config, ds: str) -> list[str]:
    """The required raw partitions of day ``ds`` that have not landed (no data file yet), as
    store URIs; empty once the day can run. The optional ranking log is not waited for."""
    from contracts.schemas import OPTIONAL_RAW_TABLES, RAW_TABLE_NAMES

    ds = ds_str(ds)
    layout = Layout(cfg.paths)
    folders = [layout.path_for(t, ds) for t in RAW_TABLE_NAMES if t not in OPTIONAL_RAW_TABLES]
    return [layout.store.uri(f) for f in folders if not layout.store.data_files(f)]


def raw_landed(cfg: Config, ds: str) -> bool:
    """Whether day ``ds``'s required raw partitions have landed (what the DAG's
    ``wait_for_raw_data`` sensor pokes); logs what is still missing."""
    missing = missing_raw(cfg, ds)
    if missing:
        log.info("raw data of ds=%s has not landed yet: no data files in %s", ds_str(ds), ", ".join(missing))
    return not missing


@_locked("validate_raw")
def validate_raw(cfg: Config, ds: str) -> dict[str, Any]:
    """Great Expectations on the raw partitions of day ``ds`` (quarantines what it may)."""
    from quality.gates import validate_raw as _validate_raw

    ds = ds_str(ds)
    with _dq_pushed(cfg, ds, "validate_raw"):
        return _record(cfg, ds, "validate_raw", _validate_raw(cfg, _spark(cfg), ds))


def etl_stages() -> tuple[str, ...]:
    """ETL stage names in dependency order (see ``etl.jobs.STAGE_DEPENDENCIES``)."""
    from contracts.schemas import ETL_STAGE_ORDER

    return ETL_STAGE_ORDER


@_locked("etl_stage")
def etl_stage(cfg: Config, ds: str, stage: str) -> dict[str, Any]:
    """One ETL stage for day ``ds`` (read -> transform -> write)."""
    from core.context import RunContext
    from etl.jobs import run_stage

    ctx = RunContext.build(cfg, ds)
    result = run_stage(ctx, _spark(cfg), stage)
    return _record(cfg, ctx.ds, f"etl_{stage}", result.to_dict())


def etl(cfg: Config, ds: str) -> dict[str, Any]:
    """Every ETL stage for day ``ds``, in order."""
    return {stage: etl_stage(cfg, ds, stage) for stage in etl_stages()}


@_locked("validate_outputs")
def validate_outputs(cfg: Config, ds: str) -> dict[str, Any]:
    """Great Expectations on every ETL output of day ``ds``."""
    from quality.gates import validate_outputs as _validate_outputs

    ds = ds_str(ds)
    with _dq_pushed(cfg, ds, "validate_outputs"):
        return _record(cfg, ds, "validate_outputs", _validate_outputs(cfg, _spark(cfg), ds))


@_locked("train")
def train(cfg: Config, ds: str, ablate: frozenset[str] = frozenset(), full_retrain: bool = False) -> dict[str, Any]:
    """Train the two-tower model for day ``ds`` into ``Layout.model_dir(ds)``; the held-out
    evaluation is the next step (:func:`evaluate`), not repeated here."""
    from training.run import train_day

    ds = ds_str(ds)
    layout = Layout(cfg.paths)
    from indexing.artifacts import pull_published

    pull_published(layout)  # the warm start
    sync.pull(cfg.paths, etl_outputs(layout, ds))
    stats = train_day(cfg, ds, ablate=ablate, full_retrain=full_retrain, evaluate=False)
    sync.push(cfg.paths, [Path(stats["model_dir"])])
    return _record(cfg, ds, "train", stats)


@_locked("evaluate")
def evaluate(cfg: Config, ds: str) -> dict[str, Any]:
    """Held-out evaluation of the candidate against baselines (and the oracle on simulated data)."""
    from training.run import evaluate_day

    ds = ds_str(ds)
    layout = Layout(cfg.paths)
    pulled = [*etl_outputs(layout, ds), *_popularity_inputs(cfg, layout, ds), *_prior_inputs(cfg, layout, ds),
              layout.model_dir(ds), layout.truth_dir]
    with sync.working_copy(cfg.paths, pulled, [layout.model_dir(ds)]):
        stats = evaluate_day(cfg, ds)
    return _record(cfg, ds, "evaluate", stats)


@_locked("train_final")
def train_final(cfg: Config, ds: str) -> dict[str, Any]:
    """After the gate's evaluation on ds: continue the candidate on ds's own clicks
    (``final_examples``) so the published weights have seen day ds (docs/training.md)."""
    from training.run import train_final_day

    ds = ds_str(ds)
    layout = Layout(cfg.paths)
    with sync.working_copy(cfg.paths, [*etl_outputs(layout, ds), layout.model_dir(ds)], [layout.model_dir(ds)]):
        stats = train_final_day(cfg, ds)
    return _record(cfg, ds, "train_final", stats)


@_locked("build_index")
def build_index(cfg: Config, ds: str) -> dict[str, Any]:
    """Embed the catalogue, build the FAISS index and stage the candidate version."""
    from indexing.artifacts import STAGING
    from indexing.publish import build_index_for_day

    ds = ds_str(ds)
    layout = Layout(cfg.paths)
    staged = layout.model_root / STAGING / ds
    with sync.working_copy(cfg.paths, [*etl_outputs(layout, ds), *_prior_inputs(cfg, layout, ds), layout.model_dir(ds)], [staged]):
        stats = build_index_for_day(cfg, ds)
    return _record(cfg, ds, "build_index", stats)


@_locked("publish")
def publish(cfg: Config, ds: str, force: bool = False) -> dict[str, Any]:
    """Quality gate, then the atomic publish of the staged version and the LATEST switch."""
    from core.published import PublishGap, publish_gap
    from indexing.publish import publish_day

    ds = ds_str(ds)
    # A failed or rejected day blocks later days from publishing on top of it (core.published).
    if not (force or cfg.publish.allow_gaps):
        reason = publish_gap(Layout(cfg.paths), ds)
        if reason:
            _record(cfg, ds, "publish", {"published": False, "decision": "blocked", "reason": reason})
            raise PublishGap(reason)
    layout = Layout(cfg.paths)
    # The whole model root: the gate compares with the published version, retention prunes.
    sync.pull(cfg.paths, [layout.model_root, *etl_outputs(layout, ds), *_prior_inputs(cfg, layout, ds), layout.truth_dir])
    try:
        stats = publish_day(cfg, ds, force=force)
    except PipelineError as exc:  # rejected by the publish gate: keep the reason for the run report
        sync.push(cfg.paths, [layout.model_root])  # the rejected candidate, kept for inspection
        _record(cfg, ds, "publish", {"published": False, "decision": "rejected", "reason": str(exc)})
        raise
    # Version files, then its manifest, then LATEST (storage.sync orders commit markers last).
    sync.push(cfg.paths, [layout.model_root])
    return _record(cfg, ds, "publish", stats)


def report(cfg: Config, ds: str) -> dict[str, Any]:
    """The run's HTML report (and the index page of all runs)."""
    from reports.run_report import ASSETS, INDEX_NAME, SUMMARY_NAME, build_run_report, report_path

    ds = ds_str(ds)
    layout = Layout(cfg.paths)
    out = layout.report_dir(ds)
    pushed = [report_path(layout, ds), out / SUMMARY_NAME, out / ASSETS, layout.reports_root / INDEX_NAME]
    with sync.working_copy(cfg.paths, _report_inputs(layout, ds), pushed):
        path = build_run_report(cfg, ds)
    return {"report": str(path)}


def run_day(cfg: Config, ds: str, force: bool = False, ablate: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Every step for day ``ds`` in order, in this process (what ``twotower run`` does).

    The run report is written even when a step fails, so the failure is visible; the
    exception is then re-raised.
    """
    from twotower.runlock import day_lock

    ds = ds_str(ds)
    out: dict[str, Any] = {}
    with day_lock(cfg, ds, "run"):  # a concurrent run of ds stops here, before writing anything
        _run_steps(cfg, ds, out, force, ablate)
    return out


def _run_steps(cfg: Config, ds: str, out: dict[str, Any], force: bool, ablate: frozenset[str]) -> None:
    try:
        out["validate_raw"] = validate_raw(cfg, ds)
        out["etl"] = etl(cfg, ds)
        out["validate_outputs"] = validate_outputs(cfg, ds)
        out["train"] = train(cfg, ds, ablate=ablate)
        out["evaluate"] = evaluate(cfg, ds)
        out["train_final"] = train_final(cfg, ds)
        out["build_index"] = build_index(cfg, ds)
        out["publish"] = publish(cfg, ds, force=force)
    finally:
        try:
            out["report"] = report(cfg, ds)
        except Exception:  # never mask the step's own failure with a report failure
            log.exception("could not write the run report for ds=%s", ds)
