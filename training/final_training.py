"""The train_final step: after the gate's evaluation on D, continue the candidate on D's own
clicks so the published weights have seen day D (progressive validation, docs/training.md)."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time

import numpy as np

from contracts.days import parse_ds
from core.context import RunContext
from core.errors import UserError
from core.results.training import FinalTraining, GateEvaluation, TrainFinalResult
from storage.layout import atomic_dir, atomic_write_text
from training.columns import FeatureColumns
from training.data import final_example_files, int_column, load_catalogue, load_eval_set, partition_files
from training.export import CANDIDATE_DIR, CANDIDATE_FILES, export_model, gate_model_dir, write_metrics
from training.loop import Trainer
from training.negatives import build_negatives
from training.search import Settings
from training.stream import TrainStream, effective_batch_size
from training.towers import ModelSpec, TwoTowerModel
from training.workers import DistInfo, setup_process

log = logging.getLogger(__name__)


def train_final_day(ctx: RunContext) -> TrainFinalResult:
    """Continue the gate-evaluated candidate of day ds on ds's own clicks, then re-export.

    Protocol: the candidate trained through D-1 has been evaluated on D (the gate's figures in
    metrics.json stay those); training then continues from its weights on ``final_examples``
    of D (D's clicks in the train_examples format, ages 0) for ``final_epochs`` passes (0 = as
    many as the window got), and the directory is re-exported with the new towers and
    embeddings. The candidate's towers move to ``candidate/`` so re-evaluation stays honest; a
    rerun starts again from them (same result for a seed). ``model_config.json`` records
    ``trained_days`` and ``gate_evaluation``.
    """
    cfg, layout, ds = ctx.cfg, ctx.layout, ctx.ds
    t = cfg.training
    model_dir = layout.model_dir(ds)
    src = gate_model_dir(model_dir)
    if not (src / "model_state.pt").is_file() or not (model_dir / "metrics.json").is_file():
        raise UserError(f"no trained, evaluated model for ds={ds} in {model_dir}: run `twotower train --ds {ds}` first")
    spec = ModelSpec.from_json((src / "model_config.json").read_text())
    if spec.extra.get("search_settings"):  # the settings the search chose for this candidate
        t = Settings.from_dict(spec.extra["search_settings"]).apply(t)
    metrics = json.loads((model_dir / "metrics.json").read_text())
    eval_days = list(ctx.window.eval_days)
    gate_eval = GateEvaluation(
        model="candidate",
        trained_days=tuple(spec.extra.get("training_days", ctx.window.train_days)),
        evaluated_on=tuple(eval_days),
        recall_at_50=(metrics.get("model") or {}).get("recall@50"),
        recall_at_50_se=(metrics.get("model") or {}).get("recall@50_se"),
    )
    final_path = layout.path_for("final_examples", ds)
    skip = None
    if not t.train_on_eval_days:
        skip = "training.train_on_eval_days = false"
    elif not final_path.is_dir() or not final_example_files(layout, ds):
        skip = f"no final_examples partition at {final_path} (ETL of an older release): published as evaluated"
    if skip:
        log.warning("ds=%s: no continued training on the evaluation days: %s", ds, skip)
        trained_days = list(gate_eval.trained_days)
        extra = dict(spec.extra, trained_days=trained_days, gate_evaluation=gate_eval.to_dict(), final_training={"skipped": skip})
        atomic_write_text(model_dir / "model_config.json", dataclasses.replace(spec, extra=extra).to_json())
        return TrainFinalResult(ds=ds, skipped=skip, trained_days=tuple(trained_days))

    info = DistInfo()
    device = setup_process(cfg, info)
    wall = time.perf_counter()
    model = TwoTowerModel.from_artifact(src)
    cols = FeatureColumns(spec.user_cat_columns, spec.user_num_columns, spec.item_cat_columns, spec.item_num_columns)
    files = partition_files(layout, "final_examples", ds)
    catalogue = load_catalogue(layout, ds, cols.item_cat, cols.item_num)
    items = np.concatenate([int_column(f, "item_idx") for f in files]) if files else np.zeros(0, np.int64)
    ablate = frozenset(spec.extra.get("ablate") or ())
    negatives = build_negatives(ctx, catalogue, spec.num_items, ablate, stream_items=items)
    rows = len(items)
    batch = effective_batch_size(rows, t.batch_size, 1, t.min_batches_per_epoch)
    stream = TrainStream(
        files, cols, spec.history_length or cfg.features.history_length, max(cfg.etl.hard_negatives_per_request, 1),
        parse_ds(ds), batch_size=batch, read_batch_rows=t.read_batch_rows, seed=t.seed + 1,
    )
    window_stats = json.loads((model_dir / "train_stats.json").read_text()) if (model_dir / "train_stats.json").is_file() else {}
    epochs = t.final_epochs or int(window_stats.get("epochs", t.epochs))
    fit = None
    if stream.steps_per_epoch(0) > 0:
        trainer = Trainer(model, dataclasses.replace(t, batch_size=batch), negatives, device, ablate, info)
        fit = trainer.fit(stream, epochs)
    trained = list(gate_eval.trained_days) + [d for d in eval_days if d not in gate_eval.trained_days]
    final = FinalTraining(
        days=tuple(eval_days),
        rows=rows,
        batch_size=batch,
        epochs=epochs if fit else 0,
        steps=fit.steps if fit else 0,
        final_loss=fit.epoch_losses[-1] if fit and fit.epoch_losses else None,
        train_seconds=round(fit.seconds, 3) if fit else 0.0,
    )
    recorded = final.to_dict()
    model.spec = dataclasses.replace(
        spec, extra=dict(spec.extra, trained_days=trained, gate_evaluation=gate_eval.to_dict(), final_training=recorded)
    )
    with atomic_dir(model_dir) as tmp:
        for f in sorted(model_dir.iterdir()):
            if f.is_file() and not f.name.startswith("."):
                shutil.copy2(f, tmp / f.name)
        (tmp / CANDIDATE_DIR).mkdir()
        for name in CANDIDATE_FILES:
            shutil.copy2(src / name, tmp / CANDIDATE_DIR / name)
        ev = load_eval_set(layout, ds, cols.user_cat, cols.user_num, max(spec.history_length, 1))
        export_model(model, tmp, catalogue, ev)
        metrics["protocol"] = {"gate_evaluation": gate_eval.to_dict(), "published_trained_days": trained, "final_training": recorded}
        write_metrics(tmp, metrics)
        window_stats["final_training"] = recorded
        (tmp / "train_stats.json").write_text(json.dumps(window_stats, indent=2, sort_keys=True, default=str))
    final = dataclasses.replace(final, wall_seconds=round(time.perf_counter() - wall, 3))
    log.info("ds=%s: continued training on %s (%d rows, %d steps); published weights saw %s", ds, eval_days, rows, final.steps, trained)
    return TrainFinalResult(
        ds=ds, final_training=final, trained_days=tuple(trained), gate_evaluation=gate_eval, model_dir=str(model_dir)
    )
