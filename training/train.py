"""The train step: day ds's candidate, trained on the window's ``train_examples``, ended with
passes over the last training day's own clicks, exported (and optionally evaluated) into
``Layout.model_dir(ds)``.

Runs unchanged under ``torchrun --nproc_per_node N``: every worker trains on its own shards,
worker 0 exports and evaluates.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from contracts.days import parse_ds
from contracts.outputs import FRESHNESS_FEATURES
from core.config import Config, TrainingConfig
from core.context import RunContext
from core.errors import UserError
from core.results.training import (
    DayPass,
    ExportCounts,
    FeatureColumnNames,
    NegativeCounts,
    TrainHeadline,
    TrainResult,
    WarmStartReport,
)
from storage.layout import Layout, atomic_dir
from training.columns import FeatureColumns
from training.data import (
    Catalogue,
    EvalSet,
    count_rows,
    file_schema_names,
    final_example_files,
    int_column,
    load_catalogue,
    load_eval_set,
    partition_files,
    table_sizes,
)
from training.evaluate import Oracle, evaluate_model_dir, evaluate_with_baselines
from training.export import export_model, plot_loss_curve, write_metrics
from training.loop import ABLATIONS, FitResult, Negatives, Trainer
from training.negatives import build_negatives
from training.search import Settings, SettingsChoice, candidates, search_choice
from training.stream import TrainStream, effective_batch_size, window_epochs
from training.towers import ModelSpec, TwoTowerModel
from training.warm_start import warm_start
from training.workers import DistInfo, dist_info_from_env, seed_process, setup_process

log = logging.getLogger(__name__)


def check_ablate(ablate: frozenset[str]) -> frozenset[str]:
    unknown = sorted(set(ablate) - set(ABLATIONS))
    if unknown:
        raise UserError(f"--ablate: unknown switch(es) {', '.join(unknown)} (known: {', '.join(ABLATIONS)})")
    return frozenset(ablate)


def wants_warm_start(t: TrainingConfig, ablate: frozenset[str], full_retrain: bool) -> bool:
    """Whether a run starts from the published model (when there is one)."""
    return t.warm_start and not full_retrain and "warm_start" not in ablate


def model_spec(cfg: Config, cols: FeatureColumns, sizes: dict[str, int], extra: dict[str, Any]) -> ModelSpec:
    """A new model's spec: the discovered columns, the table sizes and ``training``'s settings."""
    t = cfg.training
    return ModelSpec(
        num_users=sizes["user_id"],
        num_items=sizes["item_id"],
        user_cat_columns=cols.user_cat,
        user_cat_sizes=tuple(sizes[c] for c in cols.user_cat),
        user_num_columns=cols.user_num,
        item_cat_columns=cols.item_cat,
        item_cat_sizes=tuple(sizes[c] for c in cols.item_cat),
        item_num_columns=cols.item_num,
        history_length=cfg.features.history_length if t.use_history else 0,
        dim=t.embedding_dim,
        id_dim=t.id_dim,
        feature_dim=t.feature_dim,
        hidden=tuple(t.hidden),
        temperature=t.temperature,
        senet=t.senet,
        objectives=tuple(t.objectives),
        example_age_buckets=0 if "example_age" in extra.get("ablate", ()) else t.example_age_buckets,
        extra=extra,
    )


def output_dir(layout: Layout, ds: str, ablate: frozenset[str]) -> Path:
    """``Layout.model_dir(ds)``; an ablation run writes beside it (``ds=D.ablate-a+b``) so it
    never replaces the day's real candidate."""
    final = layout.model_dir(ds)
    return final if not ablate else final.with_name(f"{final.name}.ablate-{'+'.join(sorted(ablate))}")


def train_day(
    ctx: RunContext,
    *,
    warm_start_dir: Path | None,
    ablate: frozenset[str] = frozenset(),
    full_retrain: bool = False,
    evaluate: bool = True,
    oracle: Oracle | None = None,
) -> TrainResult:
    """Train on day ds's ETL outputs, export, evaluate; write ``Layout.model_dir(ds)``.

    Args:
        warm_start_dir: the exported model to start from (the published one, verified by the
            caller), or None to start fresh; ignored when :func:`wants_warm_start` says no.
        ablate: switches turned off for measurement (see ``training.loop.ABLATIONS``); the
            model then goes to a sibling directory (:func:`output_dir`).
        full_retrain: ignore the published model (no warm start).
        evaluate: evaluate against the baselines here (``twotower train --no-record``). The
            pipeline's train step passes False because its evaluate step
            (:func:`training.evaluate.evaluate_day`) follows and would repeat the same
            evaluation; metrics.json then holds only the training figures until that step
            completes it.
        oracle: scores of the planted truth for the evaluation (None: no oracle).
    Returns:
        The statistics (also written as train_stats.json, without ``model_dir``).
    """
    ablate = check_ablate(ablate)
    info = dist_info_from_env()
    device = setup_process(ctx.cfg, info)
    wall = time.perf_counter()
    configured = ctx.cfg.training
    choice = search_choice(ctx) if configured.search == "validated" else None
    if choice is not None:
        ctx = dataclasses.replace(ctx, cfg=ctx.cfg.replace(training=choice.settings.apply(configured)))
        log.info("ds=%s: settings %s (chosen on %s)", ctx.ds, choice.settings.key, list(choice.chosen_on) or "no record")
    cfg, layout, ds = ctx.cfg, ctx.layout, ctx.ds
    t = cfg.training
    if t.batch_size % info.world:
        raise UserError(f"training.batch_size={t.batch_size} must be divisible by the {info.world} workers")

    files = partition_files(layout, "train_examples", ds)
    cols = FeatureColumns.discover(file_schema_names(files))
    sizes = table_sizes(layout, ds, cols)
    catalogue = load_catalogue(layout, ds, cols.item_cat, cols.item_num)
    sizes["item_id"] = max(sizes["item_id"], int(catalogue.item_idx.max()) + 1)
    for j, c in enumerate(cols.item_cat):  # a vocabulary that lags the data must not index out of range
        sizes[c] = max(sizes[c], int(catalogue.cat_by_idx[:, j].max()) + 1)
    days = list(ctx.window.train_days)
    extra = {
        "ds": ds,
        "training_days": days,
        "loss": t.loss,
        "logq": "off" if "logq" in ablate else t.logq,
        "ablate": sorted(ablate),
        "use_history": t.use_history and "history" not in ablate,
        "item_freshness_features": [c for c in cols.item_num if c in FRESHNESS_FEATURES],
    }

    def fit_model(run: RunContext) -> _Fitted:
        """One model trained on the window with ``run``'s training settings (the candidate, or
        an alternate of the settings search: same data, seed and warm start)."""
        own = dict(extra, config_hash=run.cfg.hash())
        if choice is not None:  # train_final continues with the same settings
            own["search_settings"] = Settings.of(run.cfg.training).to_dict()
        return _fit(run, files, cols, sizes, catalogue, own, days,
                    warm_start_dir if wants_warm_start(run.cfg.training, ablate, full_retrain) else None,
                    ablate, info, device)

    fitted = fit_model(ctx)
    model, stream, fit, epochs, batch, warm = fitted.model, fitted.stream, fitted.fit, fitted.epochs, fitted.batch, fitted.warm
    last_pass, trainer = fitted.last_pass, fitted.trainer
    if info.enabled and torch.distributed.is_initialized():
        # All workers leave the process group together, right after the last collective. Workers
        # > 0 return below while worker 0 still exports; exiting with the gloo group alive could
        # abort in its teardown ("terminate called without an active exception", SIGABRT).
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    result = TrainResult(
        ds=ds,
        rows=stream.total_rows,
        shards=len(files),
        epochs=epochs,
        batch_size=batch,
        steps=fit.steps,
        examples=fit.examples,
        train_seconds=round(fit.seconds, 3),
        examples_per_second=round(fit.examples_per_second, 1),
        final_loss=fit.epoch_losses[-1] if fit.epoch_losses else None,
        epoch_losses=tuple(fit.epoch_losses),
        loss_curve=tuple(fit.loss_curve),
        workers=info.world,
        device=str(device),
        threads=torch.get_num_threads(),
        ablate=tuple(sorted(ablate)),
        full_retrain=full_retrain,
        negatives=NegativeCounts(trainer.n_hard, trainer.n_easy, trainer.shared),
        feature_columns=FeatureColumnNames(**dataclasses.asdict(cols)),
        table_sizes=sizes,
        last_training_day_pass=last_pass,
        warm_start=warm,
    )
    if not info.is_main:
        return result
    final = output_dir(layout, ds, ablate)
    with atomic_dir(final) as tmp:
        ev = load_eval_set(layout, ds, cols.user_cat, cols.user_num, max(cfg.features.history_length, 1))
        result = dataclasses.replace(result, export=ExportCounts(**export_model(model, tmp, catalogue, ev)))
        plot_loss_curve(fit.loss_curve, epochs, tmp / "loss_curve.png", f"two-tower {t.loss}, ds={ds}")
        metrics = evaluate_with_baselines(ctx, tmp, oracle=oracle) if evaluate else {}
        if choice is not None:
            metrics["search"] = _run_search(ctx, configured, choice, tmp, metrics.get("model"), fit_model, catalogue, ev,
                                            world=info.world)
        recorded = result.to_dict()
        metrics["train"] = {k: recorded[k] for k in ("steps", "examples", "examples_per_second", "final_loss", "ablate")}
        write_metrics(tmp, metrics)
        result = dataclasses.replace(result, wall_seconds=round(time.perf_counter() - wall, 3))
        if evaluate:
            result = dataclasses.replace(result, headline=TrainHeadline(
                recall_at_50=metrics["model"]["recall@50"],
                baseline_recall_at_50={k: v["recall@50"] for k, v in metrics["baselines"].items()},
                oracle_recall_at_50=metrics["oracle"]["recall@50"] if metrics["oracle"] else None,
            ))
        (tmp / "train_stats.json").write_text(json.dumps(result.to_dict(), indent=2, sort_keys=True, default=str))
    return dataclasses.replace(result, model_dir=str(final))


@dataclasses.dataclass
class _Fitted:
    """A model trained on the window, and how (what :func:`_fit` returns)."""

    model: TwoTowerModel
    trainer: Trainer
    stream: TrainStream
    fit: FitResult
    epochs: int
    batch: int
    warm: WarmStartReport
    last_pass: DayPass | None


def _fit(
    ctx: RunContext, files: list[Path], cols: FeatureColumns, sizes: dict[str, int], catalogue: Catalogue,
    extra: dict[str, Any], days: list[str], warm_start_dir: Path | None, ablate: frozenset[str], info: DistInfo,
    device: torch.device,
) -> _Fitted:
    """Build a model with ``ctx``'s training settings, warm-start it from ``warm_start_dir`` (None:
    cold), train it on the window's shards and end with the last training day's own pass."""
    cfg = ctx.cfg
    t = cfg.training
    seed_process(t.seed)  # an alternate of the search starts from the weights the plain path would
    model = TwoTowerModel(model_spec(cfg, cols, sizes, extra), use_history=extra["use_history"])
    if t.id_init_std != 0.05:
        model.reset_parameters(t.id_init_std)
    warm = WarmStartReport()
    if warm_start_dir is not None:
        warm = warm_start(model, Path(warm_start_dir))
    # Per model: the streaming frequency estimator inside is trained along with it.
    negatives = build_negatives(ctx, catalogue, sizes["item_id"], ablate)
    hard_width = max(cfg.etl.hard_negatives_per_request, 1)
    batch = effective_batch_size(count_rows(files), t.batch_size, info.world, t.min_batches_per_epoch)
    stream = TrainStream(
        files, cols, cfg.features.history_length, hard_width, parse_ds(days[-1]),
        batch_size=batch // info.world, read_batch_rows=t.read_batch_rows,
        seed=t.seed, rank=info.rank, world=info.world,
    )
    if stream.steps_per_epoch(0) == 0:
        raise UserError(
            f"train_examples ds={ctx.ds}: {stream.total_rows} rows, fewer than one example per worker "
            f"({info.world}): nothing to train on (check the ETL's training days)"
        )
    trainer = Trainer(model, dataclasses.replace(t, batch_size=batch), negatives, device, ablate, info)
    # min_steps gives a cold model on a small window enough steps; a model warm-started from the
    # published one has had them, and more passes over the same rows only overfit it (the
    # gate's drop rule then refuses every steady-state day on small data).
    epochs = t.epochs if warm.warm_start_from else window_epochs(t, stream.steps_per_epoch(0))
    fit = trainer.fit(stream, epochs)
    last_pass = _last_training_day_pass(ctx, days[-1], cols, model, negatives, device, ablate, info, epochs)
    return _Fitted(model, trainer, stream, fit, epochs, batch, warm, last_pass)


def _run_search(
    ctx: RunContext, configured: TrainingConfig, choice: SettingsChoice, candidate_dir: Path,
    candidate_metrics: dict[str, Any] | None, fit_model: Callable[[RunContext], _Fitted], catalogue: Catalogue,
    ev: EvalSet, world: int,
) -> dict[str, Any]:
    """The day's search record (``metrics.json`` ``search``): the candidate (exported in
    ``candidate_dir``, trained with ``choice``) and every other setting of
    :func:`training.search.candidates`, each trained by ``fit_model`` and evaluated on the day's
    held-out set by :func:`training.evaluate.evaluate_model_dir`, the gate's own scoring (with
    the popularity prior, the day's beta). Alternates stop starting once the search has taken
    ``search_budget_seconds``; each one is exported into a scratch directory removed after its
    evaluation. ``candidate_metrics``: the candidate's ``model`` figures when the caller has
    already evaluated it (None: evaluated here)."""
    started = time.perf_counter()
    cand = candidate_metrics or evaluate_model_dir(ctx, candidate_dir)["model"]
    rows = [_search_row(choice.settings, cand, None)]
    users = int(cand.get("users_scored") or 0)
    alternates = [s for s in candidates(configured) if s != choice.settings]
    if world > 1:
        log.warning("ds=%s: settings search skipped under %d workers (it runs on one)", ctx.ds, world)
        return _search_record(choice, users, rows, [s.key for s in alternates], configured, started)
    skipped: list[str] = []
    for s in alternates:
        if time.perf_counter() - started > configured.search_budget_seconds:
            skipped.append(s.key)
            continue
        run = dataclasses.replace(ctx, cfg=ctx.cfg.replace(training=s.apply(configured)))
        t0 = time.perf_counter()
        fitted = fit_model(run)
        scratch = candidate_dir / f".search-{len(rows)}"
        scratch.mkdir()
        try:
            export_model(fitted.model, scratch, catalogue, ev)
            m = evaluate_model_dir(run, scratch)["model"]
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        rows.append(_search_row(s, m, time.perf_counter() - t0))
        log.info("ds=%s: search %s recall@50 %.4f", ctx.ds, s.key, m["recall@50"])
    if skipped:
        log.warning("ds=%s: settings search budget (%.0f s) reached: not trained %s", ctx.ds, configured.search_budget_seconds, skipped)
    return _search_record(choice, users, rows, skipped, configured, started)


def _search_record(choice: SettingsChoice, users: int, rows: list[dict[str, Any]], not_trained: list[str],
                   configured: TrainingConfig, started: float) -> dict[str, Any]:
    return {
        "chosen": choice.to_dict(),
        "users": users,
        "records": rows,
        "not_trained": not_trained,
        "budget_seconds": configured.search_budget_seconds,
        "seconds": round(time.perf_counter() - started, 3),
    }


def _search_row(s: Settings, m: dict[str, Any], seconds: float | None) -> dict[str, Any]:
    return {"key": s.key, "settings": s.to_dict(), "recall@50": m["recall@50"], "recall@50_se": m.get("recall@50_se"),
            "seconds": None if seconds is None else round(seconds, 3), "candidate": seconds is None}


def _last_training_day_pass(
    ctx: RunContext, day: str, cols: FeatureColumns, model: TwoTowerModel, negatives: Negatives,
    device: torch.device, ablate: frozenset[str], info: DistInfo, epochs: int,
) -> DayPass | None:
    """End the candidate's training as the published weights' ended: with passes over the last
    training day's own clicks (``final_examples`` of that day, written by its run).

    Without it the candidate (the window in one resampled pass) is compared by the gate with a
    published version whose last passes were on its own day, the most informative one, and
    loses to it every steady-state day. None when ``train_on_eval_days`` is off or the day has
    no ``final_examples`` partition (a first run of the window)."""
    cfg = ctx.cfg
    t = cfg.training
    files = final_example_files(ctx.layout, day) if t.train_on_eval_days else []
    if not files or set(cols.names) - set(file_schema_names(files)):
        return None
    rows = count_rows(files)
    batch = effective_batch_size(rows, t.batch_size, info.world, t.min_batches_per_epoch)
    stream = TrainStream(
        files, cols, cfg.features.history_length, max(cfg.etl.hard_negatives_per_request, 1), parse_ds(day),
        batch_size=batch // info.world, read_batch_rows=t.read_batch_rows, seed=t.seed + 2, rank=info.rank, world=info.world,
    )
    if stream.steps_per_epoch(0) == 0:
        return None
    # p_j of the logQ correction: the day's own rows (the stream actually batched); sampled
    # negatives keep the window's features as of that day (item_day_features, age 0 = the day).
    items = np.concatenate([int_column(f, "item_idx") for f in files])
    size = negatives.inbatch_prob.shape[0]
    counts = np.bincount(np.clip(items, 0, size - 1), minlength=size).astype(np.float64)
    day_negatives = dataclasses.replace(negatives, inbatch_prob=torch.from_numpy(counts / max(counts.sum(), 1.0)), resample_weight=None)
    passes = t.final_epochs or epochs
    fit = Trainer(model, dataclasses.replace(t, batch_size=batch), day_negatives, device, ablate, info).fit(stream, passes)
    return DayPass(day=day, rows=rows, batch_size=batch, epochs=passes, steps=fit.steps)
