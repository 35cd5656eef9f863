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
from typing import TYPE_CHECKING, Any, TypeVar

from contracts.days import ds_str
from contracts.schemas import ETL_OUTPUTS
from core.config import Config
from core.errors import PipelineError
from core.results import StepResult
from core.results.indexing import BuildIndexResult, PublishResult
from storage import sync
from storage.layout import Layout, atomic_write_text

if TYPE_CHECKING:
    from core.results.training import TrainResult
    from training.evaluate import Oracle

log = logging.getLogger(__name__)
R = TypeVar("R", StepResult, dict)

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


def _record(cfg: Config, ds: str, step: str, result: R) -> R:
    """Write a step's result (returned unchanged) for the run report, with ``run_info``:
    the step's wall seconds (under its run lock), finish time, code version and config hash."""
    from core.version import code_version, utc_now

    stats = result.to_dict() if isinstance(result, StepResult) else result
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
    return result


# -- what each non-Spark step reads from the store (pulled into the working copy first) ----


def etl_outputs(layout: Layout, ds: str) -> list[Path]:
    """Every ETL output partition of day ``ds`` (what training, evaluation and indexing read)."""
    return [layout.path_for(table, ds) for table in ETL_OUTPUTS]


def _popularity_inputs(cfg: Config, layout: Layout, ds: str) -> list[Path]:
    """click_positives of the 28 days before the evaluation days: the popularity bars."""
    from core.context import Window
    from training.baselines import POPULARITY_DAYS

    return [layout.path_for("click_positives", d) for d in Window.for_run(cfg, ds).before(max(POPULARITY_DAYS.values()))]


def _prior_inputs(cfg: Config, layout: Layout, ds: str) -> list[Path]:
    """What the popularity prior reads (nothing when it is off): the earlier days' grid records
    (their metrics.json) and click_positives of the counted days, up to day ds itself (the
    index counts through the last day the published weights saw)."""
    from contracts.days import day_range
    from core.context import RunContext
    from training.prior_context import prior_record_days

    if cfg.training.prior == "off":
        return []
    records = [layout.model_dir(d) / "metrics.json" for d in prior_record_days(RunContext.build(cfg, ds))]
    return [*records, *(layout.path_for("click_positives", d) for d in day_range(ds, cfg.training.prior_days + cfg.etl.eval_days))]


def _evaluation_inputs(cfg: Config, layout: Layout, ds: str) -> list[Path]:
    """What the held-out evaluation of day ds reads besides the model: the day's ETL outputs,
    the popularity bars' and the prior's inputs, and the simulator's truth (the oracle)."""
    return [*etl_outputs(layout, ds), *_popularity_inputs(cfg, layout, ds), *_prior_inputs(cfg, layout, ds), layout.truth_dir]


def _published_model_dir(layout: Layout) -> Path | None:
    """The version directory LATEST points at, loaded the way serving loads it: every file must
    match its manifest sha256 first (``indexing.artifacts.load_version`` raises
    ``TamperedArtifact`` naming the file otherwise), so a damaged model is never warm-started
    from. None before the first publish."""
    from indexing.artifacts import load_version, read_latest

    version = read_latest(layout)
    if version is None:
        return None
    target = load_version(layout, version, verify=True).path
    if not (target / "model_state.pt").is_file() or not (target / "model_config.json").is_file():
        log.warning("LATEST points at %s, which has no model_state.pt/model_config.json: no warm start", target)
        return None
    return target


def _oracle(layout: Layout) -> Oracle | None:
    """The simulator truth's scores (user ids, item ids) -> [U, N] for the evaluation's oracle,
    or None when the data root has no truth (imported data) or logsim is not installed."""
    try:
        from logsim.truth import Truth
    except ImportError:
        return None
    truth = Truth.load(layout)
    return None if truth is None else truth.scores


def _train_model(cfg: Config, ds: str, *, ablate: frozenset[str], full_retrain: bool, evaluate: bool) -> TrainResult:
    """Train day ds's model in this process (no lock, no storage sync): the body of
    :func:`train`, and what torchrun workers other than 0 run (worker 0 holds the lock and
    syncs). Every worker joins the process group before reading LATEST, so all of them see
    what worker 0 pulled and warm-start alike."""
    from core.context import RunContext
    from training.train import train_day, wants_warm_start
    from training.workers import join_workers

    ctx = RunContext.build(cfg, ds)
    join_workers(cfg)
    warm = _published_model_dir(ctx.layout) if wants_warm_start(cfg.training, ablate, full_retrain) else None
    oracle = _oracle(ctx.layout) if evaluate else None
    return train_day(ctx, warm_start_dir=warm, ablate=ablate, full_retrain=full_retrain, evaluate=evaluate, oracle=oracle)


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
    from core.context import RunContext
    from quality.gates import validate_raw as _validate_raw

    ctx = RunContext.build(cfg, ds)
    with _dq_pushed(cfg, ctx.ds, "validate_raw"):
        return _record(cfg, ctx.ds, "validate_raw", _validate_raw(ctx, _spark(cfg)).to_dict())


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
    from core.context import RunContext
    from quality.gates import validate_outputs as _validate_outputs

    ctx = RunContext.build(cfg, ds)
    with _dq_pushed(cfg, ctx.ds, "validate_outputs"):
        return _record(cfg, ctx.ds, "validate_outputs", _validate_outputs(ctx, _spark(cfg)).to_dict())


@_locked("train")
def train(
    cfg: Config, ds: str, ablate: frozenset[str] = frozenset(), full_retrain: bool = False, *,
    evaluate: bool = False, record: bool = True,
) -> dict[str, Any]:
    """Train the two-tower model for day ``ds`` into ``Layout.model_dir(ds)`` (an ablation: the
    sibling ``ds=D.ablate-...``), warm-started from the published model unless
    ``full_retrain``. The held-out evaluation is the next step (:func:`evaluate`), not repeated
    here, unless ``evaluate`` (``twotower train --no-record`` and ablations, whose model the
    evaluate step does not look at). ``record`` False: no stage statistics (ablation runs)."""
    ds = ds_str(ds)
    layout = Layout(cfg.paths)
    from indexing.artifacts import pull_published

    pull_published(layout)  # the warm start
    sync.pull(cfg.paths, _evaluation_inputs(cfg, layout, ds) if evaluate else etl_outputs(layout, ds))
    result = _train_model(cfg, ds, ablate=ablate, full_retrain=full_retrain, evaluate=evaluate)
    if result.model_dir is not None:
        sync.push(cfg.paths, [Path(result.model_dir)])
    return _record(cfg, ds, "train", result.to_dict()) if record else result.to_dict()


@_locked("evaluate")
def evaluate(cfg: Config, ds: str) -> dict[str, Any]:
    """Held-out evaluation of the candidate against baselines (and the oracle on simulated data)."""
    from core.context import RunContext
    from training.evaluate import evaluate_day

    ctx = RunContext.build(cfg, ds)
    ds, layout = ctx.ds, ctx.layout
    with sync.working_copy(cfg.paths, [*_evaluation_inputs(cfg, layout, ds), layout.model_dir(ds)], [layout.model_dir(ds)]):
        result = evaluate_day(ctx, oracle=_oracle(layout))
    return _record(cfg, ds, "evaluate", result.to_dict())


@_locked("train_final")
def train_final(cfg: Config, ds: str) -> dict[str, Any]:
    """After the gate's evaluation on ds: continue the candidate on ds's own clicks
    (``final_examples``) so the published weights have seen day ds (docs/training.md)."""
    from core.context import RunContext
    from training.final_training import train_final_day

    ctx = RunContext.build(cfg, ds)
    ds, layout = ctx.ds, ctx.layout
    with sync.working_copy(cfg.paths, [*etl_outputs(layout, ds), layout.model_dir(ds)], [layout.model_dir(ds)]):
        result = train_final_day(ctx)
    return _record(cfg, ds, "train_final", result.to_dict())


@_locked("build_index")
def build_index(cfg: Config, ds: str) -> BuildIndexResult:
    """Embed the catalogue, build the FAISS index and stage the candidate version."""
    from core.context import RunContext
    from indexing.staging import build_index_for_day
    from indexing.version_store import STAGING

    ctx = RunContext.build(cfg, ds)
    layout = ctx.layout
    staged = layout.model_root / STAGING / ctx.ds
    prior = None
    if cfg.training.prior != "off":
        from training.prior import index_prior as prior
    pulled = [*etl_outputs(layout, ctx.ds), *_prior_inputs(cfg, layout, ctx.ds), layout.model_dir(ctx.ds)]
    with sync.working_copy(cfg.paths, pulled, [staged]):
        result = build_index_for_day(ctx, prior=prior)
    return _record(cfg, ctx.ds, "build_index", result)


@_locked("publish")
def publish(cfg: Config, ds: str, force: bool = False) -> PublishResult:
    """Quality gate, then the atomic publish of the staged version and the LATEST switch."""
    from core.context import RunContext
    from indexing.publish import publish_day
    from training.evaluate import evaluate_model_dir

    ctx = RunContext.build(cfg, ds)
    ds, layout = ctx.ds, ctx.layout
    refuse_publish_gap(cfg, ds, force)  # a failed or rejected day blocks the days after it
    # The whole model root: the gate compares with the published version, retention prunes.
    sync.pull(cfg.paths, [layout.model_root, *etl_outputs(layout, ds), *_prior_inputs(cfg, layout, ds), layout.truth_dir])
    try:
        result = publish_day(ctx, evaluator=lambda c, d: evaluate_model_dir(c, d, oracle=_oracle(c.layout)), force=force)
    except PipelineError as exc:  # rejected by the publish gate: keep the reason for the run report
        sync.push(cfg.paths, [layout.model_root])  # the rejected candidate, kept for inspection
        _record(cfg, ds, "publish", PublishResult.rejected(str(exc)))
        raise
    # Version files, then its manifest, then LATEST (storage.sync orders commit markers last).
    sync.push(cfg.paths, [layout.model_root])
    return _record(cfg, ds, "publish", result)


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


def publish_gap_reason(cfg: Config, ds: str, force: bool = False) -> str | None:
    """Why day ``ds`` may not publish on top of the published history (:func:`core.published.publish_gap`),
    or None when it may, or when ``force`` or ``publish.allow_gaps`` lets it anyway."""
    from core.published import publish_gap

    if force or cfg.publish.allow_gaps:
        return None
    return publish_gap(Layout(cfg.paths), ds_str(ds))


def refuse_publish_gap(cfg: Config, ds: str, force: bool = False) -> None:
    """Raise :class:`core.published.PublishGap` (after recording the blocked publish for the
    report) when :func:`publish_gap_reason` gives a reason. The publish step and ``twotower
    index`` (before it builds anything) ask this; the DAG's previous-day sensor asks
    :func:`publish_gap_reason` before the day does any work."""
    from core.published import PublishGap

    ds = ds_str(ds)
    reason = publish_gap_reason(cfg, ds, force)
    if reason:
        _record(cfg, ds, "publish", PublishResult.blocked(reason))
        raise PublishGap(reason)
