"""The pipeline steps for one run day: the single code path shared by the Airflow DAG, the
CLI (``twotower run``) and the tests.

Each step takes the config and the run day ``ds`` (``YYYY-MM-DD``: the run for day D reads
D's logs), builds the step's :class:`core.context.RunContext` once (config, day, window,
layout), does its work through the stage package, writes its typed result
(:mod:`core.results`) to ``Layout.stage_stats(ds, step)`` for the run report, and returns it.
Heavy libraries are imported inside the steps, so importing this module (as DAG files do) is
cheap.

Order: validate_raw -> etl stages -> validate_outputs -> train -> evaluate -> train_final ->
build_index -> publish -> report. A step raises :class:`core.errors.PipelineError` (data-quality gate,
publish gate, bad input) to stop everything downstream; nothing is published then.

Storage: with ``[paths] remote`` set, Spark steps read and write the object store directly;
every other step runs in a working copy (:mod:`storage.sync`): it pulls exactly what it reads
(:mod:`twotower.step_io`) and pushes exactly what it wrote. With local storage those calls do
nothing.
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
from typing import TYPE_CHECKING, Any, TypeVar

from contracts.days import ds_str
from core.config import Config
from core.context import RunContext
from core.errors import PipelineError
from core.results import RunInfo, StepResult
from core.results.indexing import BuildIndexResult, PublishResult
from core.results.reports import ReportResult
from storage import sync
from storage.layout import Layout, atomic_write_text
from twotower import step_io

if TYPE_CHECKING:
    from core.results.etl import EtlStageResult
    from core.results.quality import ValidationResult
    from core.results.training import EvaluateResult, TrainFinalResult, TrainResult

log = logging.getLogger(__name__)
R = TypeVar("R", bound=StepResult)

# Start (time.monotonic) of the step running in this context, set by _locked.
_step_started: contextvars.ContextVar[float | None] = contextvars.ContextVar("step_started", default=None)

STEPS = ("validate_raw", "etl", "validate_outputs", "train", "evaluate", "train_final", "build_index", "publish", "report")


def _locked(step: str) -> Callable:
    """Run the step under day ``ds``'s run lock (:mod:`twotower.runlock`), with the step's run
    context built once: the wrapped function takes ``(ctx, ...)``, its callers ``(cfg, ds, ...)``.
    A second run of the same day stops at once with ``RunInProgress`` naming the running
    process and the lock."""

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def locked(cfg: Config, ds: str, *args, **kwargs):
            from twotower.runlock import day_lock

            ctx = RunContext.build(cfg, ds)
            with day_lock(cfg, ctx.ds, step):
                token = _step_started.set(time.monotonic())  # read by _record: the step's wall time
                try:
                    return fn(ctx, *args, **kwargs)
                finally:
                    _step_started.reset(token)

        return locked

    return wrap


def _spark(ctx: RunContext):
    from core.spark import spark_session

    store = ctx.layout.store
    return spark_session(ctx.cfg.spark, storage_conf=store.spark_conf() if store.remote else None)


def _record(ctx: RunContext, step: str, result: R) -> R:
    """Write a step's result (returned unchanged) for the run report, with its :class:`RunInfo`:
    the step's wall seconds (under its run lock), finish time, code version and config hash."""
    from core.version import code_version, utc_now

    started = _step_started.get()
    run_info = RunInfo(
        wall_seconds=None if started is None else round(time.monotonic() - started, 3),
        finished_at=utc_now(),
        code_version=code_version(),
        config_hash=ctx.cfg.hash(),
    )
    path = ctx.layout.stage_stats(ctx.ds, step)
    record = {**result.to_dict(), "run_info": run_info.to_dict()}
    atomic_write_text(path, json.dumps(record, indent=2, sort_keys=True, default=str))
    sync.push(ctx.cfg.paths, [path])
    log.info("step %s for ds=%s done; stats in %s", step, ctx.ds, path)
    return result


@contextlib.contextmanager
def _dq_pushed(ctx: RunContext, stage: str) -> Iterator[None]:
    """Push a validation stage's summary and Data Docs, also when the gate stops the run:
    the report of a failed gate is what people read."""
    from quality.io import docs_root, summary_path

    try:
        yield
    finally:
        sync.push(ctx.cfg.paths, [summary_path(ctx.layout, ctx.ds, stage), docs_root(ctx.layout, ctx.ds, stage)])


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
def validate_raw(ctx: RunContext) -> ValidationResult:
    """Great Expectations on the raw partitions of day ``ds`` (quarantines what it may)."""
    from quality.gates import validate_raw as _validate_raw

    with _dq_pushed(ctx, "validate_raw"):
        return _record(ctx, "validate_raw", _validate_raw(ctx, _spark(ctx)))


def etl_stages() -> tuple[str, ...]:
    """ETL stage names in dependency order (see ``etl.jobs.STAGE_DEPENDENCIES``)."""
    from contracts.outputs import ETL_STAGE_ORDER

    return ETL_STAGE_ORDER


@_locked("etl_stage")
def etl_stage(ctx: RunContext, stage: str) -> EtlStageResult:
    """One ETL stage for day ``ds`` (read -> transform -> write)."""
    from etl.jobs import run_stage

    return _record(ctx, f"etl_{stage}", run_stage(ctx, _spark(ctx), stage))


def etl(cfg: Config, ds: str) -> dict[str, EtlStageResult]:
    """Every ETL stage for day ``ds``, in order."""
    return {stage: etl_stage(cfg, ds, stage) for stage in etl_stages()}


@_locked("validate_outputs")
def validate_outputs(ctx: RunContext) -> ValidationResult:
    """Great Expectations on every ETL output of day ``ds``."""
    from quality.gates import validate_outputs as _validate_outputs

    with _dq_pushed(ctx, "validate_outputs"):
        return _record(ctx, "validate_outputs", _validate_outputs(ctx, _spark(ctx)))


def train_model(ctx: RunContext, *, ablate: frozenset[str], full_retrain: bool, evaluate: bool) -> TrainResult:
    """Train day ds's model in this process (no lock, no storage sync): the body of
    :func:`train`, and what torchrun workers other than 0 run (worker 0 holds the lock and
    syncs). Every worker joins the process group before reading LATEST, so all of them see
    what worker 0 pulled and warm-start alike."""
    from training.train import train_day, wants_warm_start
    from training.workers import join_workers

    join_workers(ctx.cfg)
    warm = step_io.published_model_dir(ctx.layout) if wants_warm_start(ctx.cfg.training, ablate, full_retrain) else None
    oracle = step_io.oracle(ctx.layout) if evaluate else None
    return train_day(ctx, warm_start_dir=warm, ablate=ablate, full_retrain=full_retrain, evaluate=evaluate, oracle=oracle)


@_locked("train")
def train(
    ctx: RunContext, ablate: frozenset[str] = frozenset(), full_retrain: bool = False, *,
    evaluate: bool = False, record: bool = True,
) -> TrainResult:
    """Train the two-tower model for day ``ds`` into ``Layout.model_dir(ds)`` (an ablation: the
    sibling ``ds=D.ablate-...``), warm-started from the published model unless
    ``full_retrain``. The held-out evaluation is the next step (:func:`evaluate`), not repeated
    here, unless ``evaluate`` (``twotower train --no-record`` and ablations, whose model the
    evaluate step does not look at). ``record`` False: no stage statistics (ablation runs)."""
    from indexing.artifacts import pull_published

    pull_published(ctx.layout)  # the warm start
    sync.pull(ctx.cfg.paths, step_io.evaluation_inputs(ctx) if evaluate else step_io.etl_outputs(ctx.layout, ctx.ds))
    result = train_model(ctx, ablate=ablate, full_retrain=full_retrain, evaluate=evaluate)
    if result.model_dir is not None:
        sync.push(ctx.cfg.paths, [Path(result.model_dir)])
    return _record(ctx, "train", result) if record else result


@_locked("evaluate")
def evaluate(ctx: RunContext) -> EvaluateResult:
    """Held-out evaluation of the candidate against baselines (and the oracle on simulated data)."""
    from training.evaluate import evaluate_day

    model_dir = ctx.layout.model_dir(ctx.ds)
    with sync.working_copy(ctx.cfg.paths, [*step_io.evaluation_inputs(ctx), model_dir], [model_dir]):
        result = evaluate_day(ctx, oracle=step_io.oracle(ctx.layout))
    return _record(ctx, "evaluate", result)


@_locked("train_final")
def train_final(ctx: RunContext) -> TrainFinalResult:
    """After the gate's evaluation on ds: continue the candidate on ds's own clicks
    (``final_examples``) so the published weights have seen day ds (docs/training.md)."""
    from training.final_training import train_final_day

    model_dir = ctx.layout.model_dir(ctx.ds)
    with sync.working_copy(ctx.cfg.paths, [*step_io.etl_outputs(ctx.layout, ctx.ds), model_dir], [model_dir]):
        result = train_final_day(ctx)
    return _record(ctx, "train_final", result)


@_locked("build_index")
def build_index(ctx: RunContext) -> BuildIndexResult:
    """Embed the catalogue, build the FAISS index and stage the candidate version."""
    from indexing.staging import build_index_for_day
    from indexing.version_store import STAGING

    layout = ctx.layout
    staged = layout.model_root / STAGING / ctx.ds
    prior = None
    if ctx.cfg.training.prior != "off":
        from training.prior import index_prior as prior
    pulled = [*step_io.etl_outputs(layout, ctx.ds), *step_io.prior_inputs(ctx), layout.model_dir(ctx.ds)]
    with sync.working_copy(ctx.cfg.paths, pulled, [staged]):
        result = build_index_for_day(ctx, prior=prior)
    return _record(ctx, "build_index", result)


@_locked("publish")
def publish(ctx: RunContext, force: bool = False) -> PublishResult:
    """Quality gate, then the atomic publish of the staged version and the LATEST switch."""
    from indexing.publish import publish_day

    _refuse_gap(ctx, force)  # a failed or rejected day blocks the days after it
    layout = ctx.layout
    # The whole model root: the gate compares with the published version, retention prunes.
    sync.pull(ctx.cfg.paths, [layout.model_root, *step_io.etl_outputs(layout, ctx.ds), *step_io.prior_inputs(ctx), layout.truth_dir])
    try:
        result = publish_day(ctx, evaluator=step_io.gate_evaluator, force=force)
    except PipelineError as exc:  # rejected by the publish gate: keep the reason for the run report
        sync.push(ctx.cfg.paths, [layout.model_root])  # the rejected candidate, kept for inspection
        _record(ctx, "publish", PublishResult.rejected(str(exc)))
        raise
    # Version files, then its manifest, then LATEST (storage.sync orders commit markers last).
    sync.push(ctx.cfg.paths, [layout.model_root])
    return _record(ctx, "publish", result)


def report(cfg: Config, ds: str) -> ReportResult:
    """The run's HTML report (and the index page of all runs)."""
    from reports.run_report import ASSETS, INDEX_NAME, SUMMARY_NAME, build_run_report, report_path

    ctx = RunContext.build(cfg, ds)
    layout, out = ctx.layout, ctx.layout.report_dir(ctx.ds)
    pushed = [report_path(layout, ctx.ds), out / SUMMARY_NAME, out / ASSETS, layout.reports_root / INDEX_NAME]
    with sync.working_copy(cfg.paths, step_io.report_inputs(ctx), pushed):
        path = build_run_report(cfg, ctx.ds)
    return ReportResult(report=str(path))


def run_day(cfg: Config, ds: str, force: bool = False, ablate: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Every step for day ``ds`` in order, in this process (what ``twotower run`` does): step
    name -> its result (``etl``: stage -> result).

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


def publish_gap_reason(cfg: Config, ds: str, force: bool = False) -> str | None:
    """Why day ``ds`` may not publish on top of the published history (:func:`core.published.publish_gap`),
    or None when it may, or when ``force`` or ``publish.allow_gaps`` lets it anyway."""
    return _gap_reason(cfg, Layout(cfg.paths), ds_str(ds), force)


def _gap_reason(cfg: Config, layout: Layout, ds: str, force: bool) -> str | None:
    from core.published import publish_gap

    return None if force or cfg.publish.allow_gaps else publish_gap(layout, ds)


def refuse_publish_gap(cfg: Config, ds: str, force: bool = False) -> None:
    """Raise :class:`core.published.PublishGap` (after recording the blocked publish for the
    report) when :func:`publish_gap_reason` gives a reason. The publish step and ``twotower
    index`` (before it builds anything) ask this; the DAG's previous-day sensor asks
    :func:`publish_gap_reason` before the day does any work."""
    _refuse_gap(RunContext.build(cfg, ds), force)


def _refuse_gap(ctx: RunContext, force: bool) -> None:
    from core.published import PublishGap

    reason = _gap_reason(ctx.cfg, ctx.layout, ctx.ds, force)
    if reason:
        _record(ctx, "publish", PublishResult.blocked(reason))
        raise PublishGap(reason)
