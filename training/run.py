"""Stage entry points: :func:`train_day` (train, export, evaluate into ``Layout.model_dir(ds)``)
and :func:`evaluate_day` (re-evaluate that directory against the baselines and the oracle).

Runs unchanged under ``torchrun --nproc_per_node N``: every worker trains on its own shards,
worker 0 exports and evaluates.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from contracts.days import day_range, ds_str, parse_ds
from contracts.schemas import FRESHNESS_FEATURES
from core.config import Config
from core.errors import DataError, UserError
from storage.layout import Layout, atomic_dir, atomic_write_text
from training.data import (
    FeatureColumns,
    TrainStream,
    load_catalogue,
    load_eval_set,
    load_item_day_features,
    load_item_sampling,
    partition_files,
    table_sizes,
)
from training.evaluate import evaluate_with_baselines, training_days, write_metrics
from training.export import export_model, plot_loss_curve
from training.frequency import StreamingFrequencyEstimator
from training.loop import ABLATIONS, DistInfo, Negatives, Trainer
from training.samplers import AliasSampler
from training.towers import ModelSpec, TwoTowerModel

log = logging.getLogger(__name__)


def dist_info_from_env(env: Mapping[str, str] | None = None) -> DistInfo:
    """torchrun sets RANK / WORLD_SIZE / LOCAL_RANK; read once at the entry point."""
    env = os.environ if env is None else env
    return DistInfo(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))


def pick_device(cfg: Config, info: DistInfo) -> torch.device:
    if cfg.training.device == "cuda" or (cfg.training.device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise UserError("training.device = 'cuda' but no CUDA device is available (use 'auto' or 'cpu')")
        return torch.device("cuda", info.local_rank)
    return torch.device("cpu")


def _setup(cfg: Config, info: DistInfo) -> torch.device:
    threads = cfg.training.threads or max(1, (os.cpu_count() or 1) // info.world)
    torch.set_num_threads(threads)
    torch.manual_seed(cfg.training.seed)
    np.random.seed(cfg.training.seed % 2**32)
    device = pick_device(cfg, info)
    if info.enabled and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def _check_ablate(ablate: frozenset[str]) -> frozenset[str]:
    unknown = sorted(set(ablate) - set(ABLATIONS))
    if unknown:
        raise UserError(f"--ablate: unknown switch(es) {', '.join(unknown)} (known: {', '.join(ABLATIONS)})")
    return frozenset(ablate)


def latest_published_dir(layout: Layout) -> Path | None:
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


def warm_start(model: TwoTowerModel, src: Path) -> dict[str, Any]:
    """Copy a previous model's weights: embedding rows of known ids are kept (new rows keep their
    fresh initialisation), other tensors are copied when shapes match."""
    old_spec = ModelSpec.from_json((src / "model_config.json").read_text())
    state = torch.load(src / "model_state.pt", map_location="cpu", weights_only=True)
    if (old_spec.dim, old_spec.id_dim, old_spec.feature_dim, tuple(old_spec.hidden)) != (
        model.spec.dim, model.spec.id_dim, model.spec.feature_dim, tuple(model.spec.hidden)
    ):
        log.warning("published model %s has other dimensions: training from scratch", src)
        return {"warm_start_from": None, "reason": "dimensions differ"}
    own = model.state_dict()
    copied, partial, skipped = 0, 0, []
    with torch.no_grad():
        for name, new in own.items():
            old = state.get(name)
            if old is None:
                skipped.append(name)
            elif old.shape == new.shape:
                new.copy_(old)
                copied += 1
            elif old.dim() == 2 and old.shape[1] == new.shape[1] and name.endswith("weight") and "emb" in name:
                n = min(old.shape[0], new.shape[0])
                new[:n].copy_(old[:n])
                partial += 1
            else:
                skipped.append(name)
    return {"warm_start_from": str(src), "tensors_copied": copied, "tables_extended": partial, "tensors_skipped": skipped}


def _spec(cfg: Config, cols: FeatureColumns, sizes: dict[str, int], extra: dict[str, Any]) -> ModelSpec:
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


def _negatives(
    cfg: Config, layout: Layout, ds: str, catalogue, size: int, ablate: frozenset[str],
    stream_items: np.ndarray | None = None,
) -> Negatives:
    """Sampling state of a training run. ``stream_items`` (the item_idx of every row of the
    stream, for the continued training on the evaluation days): p_j of the logQ correction is
    then those rows' item distribution, and negatives take the catalogue's features (as of D,
    the rows' own day) instead of ``item_day_features``."""
    t = load_item_sampling(layout, ds)
    idx = t.column("item_idx").to_numpy().astype(np.int64)
    size = max(size, int(idx.max(initial=0)) + 1)
    if stream_items is not None and len(stream_items):
        size = max(size, int(stream_items.max()) + 1)
    neg_prob = np.zeros(size)
    neg_prob[idx] = t.column("neg_prob").to_numpy()
    # p_j describes the stream actually batched: the resampled positives.
    inbatch = np.zeros(size)
    resampled = t.column("clicks_resampled").to_numpy().astype(np.float64)
    inbatch[idx] = resampled / max(resampled.sum(), 1.0)
    if stream_items is not None:
        counts = np.bincount(np.clip(stream_items, 0, None), minlength=size).astype(np.float64)
        inbatch = counts / max(counts.sum(), 1.0)
    # Ablating resampling re-weights each example by clicks / clicks_resampled of its item,
    # which restores the original click distribution in expectation (importance weights).
    undo = None
    if "resampling" in ablate:
        clicks = t.column("clicks").to_numpy().astype(np.float64)
        undo = np.zeros(size, dtype=np.float32)
        undo[idx] = np.where(resampled > 0, clicks / np.maximum(resampled, 1.0), 0.0)
    sampler = AliasSampler(
        torch.from_numpy(idx),
        torch.from_numpy(t.column("alias_prob").to_numpy().copy()),
        torch.from_numpy(t.column("alias_idx").to_numpy().astype(np.int64)),
        torch.from_numpy(t.column("neg_prob").to_numpy().copy()),
    )
    estimator = None
    if cfg.training.logq == "streaming":
        buckets = cfg.training.freq_buckets or 2 * size
        estimator = StreamingFrequencyEstimator(buckets, cfg.training.freq_hashes, cfg.training.freq_alpha, cfg.training.seed)
    last_train_day = parse_ds(training_days(cfg, ds)[-1])
    day_features = None if stream_items is not None else load_item_day_features(layout, ds, catalogue.num_columns, last_train_day)
    if day_features is None and stream_items is None and any(c in catalogue.num_columns for c in FRESHNESS_FEATURES):
        log.warning(
            "item_day_features ds=%s is missing: sampled negatives get the catalogue's freshness as of "
            "the run day while positives carry their own day's (rerun `twotower etl --ds %s --stage datasets`)",
            ds, ds,
        )
    return Negatives(
        catalogue, sampler, torch.from_numpy(inbatch), torch.from_numpy(neg_prob), estimator,
        None if undo is None else torch.from_numpy(undo), day_features,
    )


def output_dir(layout: Layout, ds: str, ablate: frozenset[str]) -> Path:
    """``Layout.model_dir(ds)``; an ablation run writes beside it (``ds=D.ablate-a+b``) so it
    never replaces the day's real candidate."""
    final = layout.model_dir(ds)
    return final if not ablate else final.with_name(f"{final.name}.ablate-{'+'.join(sorted(ablate))}")


def train_day(
    cfg: Config, ds: str, ablate: frozenset[str] = frozenset(), full_retrain: bool = False, evaluate: bool = True
) -> dict[str, Any]:
    """Train on day ds's ETL outputs, export, evaluate; write ``Layout.model_dir(ds)``.

    Args:
        ablate: switches turned off for measurement (see ``training.loop.ABLATIONS``); the
            model then goes to a sibling directory (:func:`output_dir`).
        full_retrain: ignore the published model (no warm start).
        evaluate: evaluate against the baselines here (``twotower train``). The pipeline's
            train step passes False because its evaluate step (:func:`evaluate_day`) follows
            and would repeat the same evaluation (minutes on a medium day); metrics.json then
            holds only the training figures until that step completes it.
    Returns:
        JSON-serialisable statistics (also written as train_stats.json).
    """
    ds = ds_str(ds)
    ablate = _check_ablate(ablate)
    info = dist_info_from_env()
    device = _setup(cfg, info)
    t = cfg.training
    layout = Layout(cfg.paths)
    wall = time.perf_counter()
    if t.batch_size % info.world:
        raise UserError(f"training.batch_size={t.batch_size} must be divisible by the {info.world} workers")

    files = partition_files(layout, "train_examples", ds)
    names = partition_schema_names(files)
    cols = FeatureColumns.discover(names)
    sizes = table_sizes(layout, ds, cols)
    catalogue = load_catalogue(layout, ds, cols.item_cat, cols.item_num)
    sizes["item_id"] = max(sizes["item_id"], int(catalogue.item_idx.max()) + 1)
    for c in cols.item_cat:  # a vocabulary that lags the data must not index out of range
        j = cols.item_cat.index(c)
        sizes[c] = max(sizes[c], int(catalogue.cat_by_idx[:, j].max()) + 1)
    days = training_days(cfg, ds)
    extra = {
        "ds": ds,
        "training_days": days,
        "loss": t.loss,
        "logq": "off" if "logq" in ablate else t.logq,
        "ablate": sorted(ablate),
        "use_history": t.use_history and "history" not in ablate,
        "config_hash": cfg.hash(),
        "item_freshness_features": [c for c in cols.item_num if c in FRESHNESS_FEATURES],
    }
    model = TwoTowerModel(_spec(cfg, cols, sizes, extra), use_history=extra["use_history"])
    if t.id_init_std != 0.05:
        model.reset_parameters(t.id_init_std)
    warm: dict[str, Any] = {"warm_start_from": None}
    if t.warm_start and not full_retrain and "warm_start" not in ablate:
        src = latest_published_dir(layout)
        if src is not None:
            warm = warm_start(model, src)
    negatives = _negatives(cfg, layout, ds, catalogue, sizes["item_id"], ablate)
    hard_width = max(cfg.etl.hard_negatives_per_request, 1)
    rows = count_rows(files)
    batch = effective_batch_size(rows, t.batch_size, info.world, t.min_batches_per_epoch)
    stream = TrainStream(
        files, cols, cfg.features.history_length, hard_width, parse_ds(days[-1]),
        batch_size=batch // info.world, read_batch_rows=t.read_batch_rows,
        seed=t.seed, rank=info.rank, world=info.world,
    )
    if stream.steps_per_epoch(0) == 0:
        raise UserError(
            f"train_examples ds={ds}: {stream.total_rows} rows, fewer than one example per worker "
            f"({info.world}): nothing to train on (check the ETL's training days)"
        )
    trainer = Trainer(model, dataclasses.replace(t, batch_size=batch), negatives, device, ablate, info)
    # min_steps gives a cold model on a small window enough steps; a model warm-started from the
    # published one has had them, and more passes over the same rows only overfit it (the
    # gate's drop rule then refuses every steady-state day on small data).
    epochs = t.epochs if warm["warm_start_from"] else window_epochs(t, stream.steps_per_epoch(0))
    result = trainer.fit(stream, epochs)
    last_pass = _last_training_day_pass(cfg, layout, days[-1], cols, model, negatives, device, ablate, info, epochs)
    if info.enabled and torch.distributed.is_initialized():
        # All workers leave the process group together, right after the last collective. Workers
        # > 0 return below while worker 0 still exports; exiting with the gloo group alive could
        # abort in its teardown ("terminate called without an active exception", SIGABRT).
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    stats: dict[str, Any] = {
        "ds": ds,
        "rows": stream.total_rows,
        "shards": len(files),
        "epochs": epochs,
        "batch_size": batch,
        "steps": result.steps,
        "examples": result.examples,
        "train_seconds": round(result.seconds, 3),
        "examples_per_second": round(result.examples_per_second, 1),
        "final_loss": result.epoch_losses[-1] if result.epoch_losses else None,
        "epoch_losses": result.epoch_losses,
        "loss_curve": result.loss_curve,
        "workers": info.world,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "ablate": sorted(ablate),
        "full_retrain": full_retrain,
        "negatives": {"hard_per_example": trainer.n_hard, "catalogue_per_example": trainer.n_easy, "shared_per_batch": trainer.shared},
        "feature_columns": dataclasses.asdict(cols),
        "table_sizes": sizes,
        "last_training_day_pass": last_pass,
        **warm,
    }
    if not info.is_main:
        return stats
    final = output_dir(layout, ds, ablate)
    with atomic_dir(final) as tmp:
        ev = load_eval_set(layout, ds, cols.user_cat, cols.user_num, max(cfg.features.history_length, 1))
        stats.update(export_model(model, tmp, catalogue, ev))
        plot_loss_curve(result.loss_curve, epochs, tmp / "loss_curve.png", f"two-tower {t.loss}, ds={ds}")
        metrics = evaluate_with_baselines(cfg, ds, tmp) if evaluate else {}
        metrics["train"] = {k: stats[k] for k in ("steps", "examples", "examples_per_second", "final_loss", "ablate")}
        write_metrics(tmp, metrics)
        stats["wall_seconds"] = round(time.perf_counter() - wall, 3)
        if evaluate:
            stats["recall@50"] = metrics["model"]["recall@50"]
            stats["baseline_recall@50"] = {k: v["recall@50"] for k, v in metrics["baselines"].items()}
            stats["oracle_recall@50"] = metrics["oracle"]["recall@50"] if metrics["oracle"] else None
        (tmp / "train_stats.json").write_text(json.dumps(stats, indent=2, sort_keys=True, default=str))
    stats["model_dir"] = str(final)
    return stats


def _last_training_day_pass(
    cfg: Config, layout: Layout, day: str, cols: FeatureColumns, model: TwoTowerModel, negatives: Negatives,
    device: torch.device, ablate: frozenset[str], info: DistInfo, epochs: int,
) -> dict[str, Any] | None:
    """End the candidate's training as the published weights' ended: with passes over the last
    training day's own clicks (``final_examples`` of that day, written by its run).

    Without it the candidate (the window in one resampled pass) is compared by the gate with a
    published version whose last passes were on its own day, the most informative one, and
    loses to it every steady-state day. None when ``train_on_eval_days`` is off or the day has
    no ``final_examples`` partition (a first run of the window)."""
    t = cfg.training
    files = partition_files_or_none(layout, day) if t.train_on_eval_days else []
    if not files or set(cols.user_cat + cols.user_num + cols.item_cat + cols.item_num) - set(partition_schema_names(files)):
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
    items = np.concatenate([pq_column(f, "item_idx") for f in files])
    size = negatives.inbatch_prob.shape[0]
    counts = np.bincount(np.clip(items, 0, size - 1), minlength=size).astype(np.float64)
    day_negatives = dataclasses.replace(negatives, inbatch_prob=torch.from_numpy(counts / max(counts.sum(), 1.0)), resample_weight=None)
    passes = t.final_epochs or epochs
    result = Trainer(model, dataclasses.replace(t, batch_size=batch), day_negatives, device, ablate, info).fit(stream, passes)
    return {"day": day, "rows": rows, "batch_size": batch, "epochs": passes, "steps": result.steps}


def count_rows(files: list[Path]) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


def effective_batch_size(rows: int, configured: int, world: int = 1, min_batches: int = 8) -> int:
    """Batch size for ``rows`` training rows (the rule in docs/training.md).

    The configured batch when the data holds at least ``min_batches`` of it; otherwise the
    largest power of two <= ``rows / min_batches`` (at least ``world``, a multiple of it), so a
    window smaller than a batch still trains with several steps per pass instead of stopping.
    """
    if rows >= configured * min_batches:
        return configured
    target = max(rows // max(min_batches, 1), 1)
    b = min(1 << (target.bit_length() - 1), configured)
    return max(world, b // world * world)


def window_epochs(t, steps_per_epoch: int) -> int:
    """Passes over the window: ``epochs``, raised to reach ``min_steps`` optimizer steps on a
    small window, never above ``max_epochs`` (more passes over few rows overfit)."""
    epochs = max(t.epochs, -(-t.min_steps // max(steps_per_epoch, 1)))
    return max(1, min(epochs, max(t.max_epochs, t.epochs)))


def partition_schema_names(files: list[Path]) -> list[str]:
    import pyarrow.parquet as pq

    return pq.read_schema(files[0]).names


CANDIDATE_DIR = "candidate"
CANDIDATE_FILES = ("user_tower.pt", "item_tower.pt", "model_state.pt", "model_config.json")


def gate_model_dir(model_dir: Path) -> Path:
    """The model the gate evaluates: the candidate trained through D-1. After the continued
    training on D it is kept in ``<model_dir>/candidate/`` (not part of the published version),
    so re-evaluating the day never scores weights that have seen its held-out clicks."""
    cand = Path(model_dir) / CANDIDATE_DIR
    return cand if (cand / "user_tower.pt").is_file() else Path(model_dir)


def train_final_day(cfg: Config, ds: str) -> dict[str, Any]:
    """Continue the gate-evaluated candidate of day ds on ds's own clicks, then re-export.

    Protocol (progressive validation, docs/training.md): the candidate trained through D-1 has
    been evaluated on D (the gate's figures in metrics.json stay those); training then continues
    from its weights on ``final_examples`` of D (D's clicks in the train_examples format, ages
    0) for ``final_epochs`` passes (0 = as many as the window got), and the directory is
    re-exported with the new towers and embeddings. The candidate's towers move to
    ``candidate/`` so re-evaluation stays honest; a rerun starts again from them (same result
    for a seed). ``model_config.json`` records ``trained_days`` and ``gate_evaluation``.
    """
    ds = ds_str(ds)
    t = cfg.training
    layout = Layout(cfg.paths)
    model_dir = layout.model_dir(ds)
    src = gate_model_dir(model_dir)
    if not (src / "model_state.pt").is_file() or not (model_dir / "metrics.json").is_file():
        raise UserError(f"no trained, evaluated model for ds={ds} in {model_dir}: run `twotower train --ds {ds}` first")
    spec = ModelSpec.from_json((src / "model_config.json").read_text())
    metrics = json.loads((model_dir / "metrics.json").read_text())
    eval_days = day_range(ds, cfg.etl.eval_days)
    gate_eval = {
        "model": "candidate",
        "trained_days": list(spec.extra.get("training_days", training_days(cfg, ds))),
        "evaluated_on": eval_days,
        "recall@50": (metrics.get("model") or {}).get("recall@50"),
        "recall@50_se": (metrics.get("model") or {}).get("recall@50_se"),
    }
    final_path = layout.path_for("final_examples", ds)
    skip = None
    if not t.train_on_eval_days:
        skip = "training.train_on_eval_days = false"
    elif not final_path.is_dir() or not partition_files_or_none(layout, ds):
        skip = f"no final_examples partition at {final_path} (ETL of an older release): published as evaluated"
    if skip:
        log.warning("ds=%s: no continued training on the evaluation days: %s", ds, skip)
        extra = dict(spec.extra, trained_days=gate_eval["trained_days"], gate_evaluation=gate_eval, final_training={"skipped": skip})
        atomic_write_text(model_dir / "model_config.json", dataclasses.replace(spec, extra=extra).to_json())
        return {"ds": ds, "final_training": "skipped", "reason": skip, "trained_days": extra["trained_days"]}

    info = DistInfo()
    device = _setup(cfg, info)
    wall = time.perf_counter()
    model = TwoTowerModel.from_artifact(src)
    cols = FeatureColumns(spec.user_cat_columns, spec.user_num_columns, spec.item_cat_columns, spec.item_num_columns)
    files = partition_files(layout, "final_examples", ds)
    catalogue = load_catalogue(layout, ds, cols.item_cat, cols.item_num)
    items = np.concatenate([pq_column(f, "item_idx") for f in files]) if files else np.zeros(0, np.int64)
    ablate = frozenset(spec.extra.get("ablate") or ())
    negatives = _negatives(cfg, layout, ds, catalogue, spec.num_items, ablate, stream_items=items)
    rows = len(items)
    batch = effective_batch_size(rows, t.batch_size, 1, t.min_batches_per_epoch)
    stream = TrainStream(
        files, cols, spec.history_length or cfg.features.history_length, max(cfg.etl.hard_negatives_per_request, 1),
        parse_ds(ds), batch_size=batch, read_batch_rows=t.read_batch_rows, seed=t.seed + 1,
    )
    window_stats = json.loads((model_dir / "train_stats.json").read_text()) if (model_dir / "train_stats.json").is_file() else {}
    epochs = t.final_epochs or int(window_stats.get("epochs", t.epochs))
    result = None
    if stream.steps_per_epoch(0) > 0:
        trainer = Trainer(model, dataclasses.replace(t, batch_size=batch), negatives, device, ablate, info)
        result = trainer.fit(stream, epochs)
    trained = gate_eval["trained_days"] + [d for d in eval_days if d not in gate_eval["trained_days"]]
    final_stats = {
        "days": eval_days,
        "rows": rows,
        "batch_size": batch,
        "epochs": epochs if result else 0,
        "steps": result.steps if result else 0,
        "final_loss": result.epoch_losses[-1] if result and result.epoch_losses else None,
        "train_seconds": round(result.seconds, 3) if result else 0.0,
    }
    model.spec = dataclasses.replace(
        spec, extra=dict(spec.extra, trained_days=trained, gate_evaluation=gate_eval, final_training=final_stats)
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
        metrics["protocol"] = {"gate_evaluation": gate_eval, "published_trained_days": trained, "final_training": final_stats}
        write_metrics(tmp, metrics)
        window_stats["final_training"] = final_stats
        (tmp / "train_stats.json").write_text(json.dumps(window_stats, indent=2, sort_keys=True, default=str))
    final_stats["wall_seconds"] = round(time.perf_counter() - wall, 3)
    log.info("ds=%s: continued training on %s (%d rows, %d steps); published weights saw %s", ds, eval_days, rows, final_stats["steps"], trained)
    return {"ds": ds, "final_training": final_stats, "trained_days": trained, "gate_evaluation": gate_eval, "model_dir": str(model_dir)}


def partition_files_or_none(layout: Layout, ds: str) -> list[Path]:
    try:
        return partition_files(layout, "final_examples", ds)
    except DataError:
        return []


def pq_column(path: Path, column: str) -> np.ndarray:
    import pyarrow.parquet as pq

    return pq.read_table(path, columns=[column]).column(column).to_numpy().astype(np.int64)


def evaluate_day(cfg: Config, ds: str) -> dict[str, Any]:
    """Re-evaluate ``Layout.model_dir(ds)`` on day ds's held-out set against both popularity
    baselines and the oracle; rewrites metrics.json (idempotent) and returns it."""
    ds = ds_str(ds)
    model_dir = Layout(cfg.paths).model_dir(ds)
    if not (model_dir / "user_tower.pt").is_file():
        raise UserError(f"no trained model for ds={ds} in {model_dir}: run `twotower train --ds {ds}` first")
    # After the continued training on ds the gate's model is the kept candidate (never trained on ds).
    metrics = evaluate_with_baselines(cfg, ds, gate_model_dir(model_dir))
    old = model_dir / "metrics.json"
    if old.is_file():
        train_part = json.loads(old.read_text()).get("train")
        if train_part is not None:
            metrics["train"] = train_part
        protocol = json.loads(old.read_text()).get("protocol")
        if protocol is not None:
            metrics["protocol"] = protocol
    write_metrics(model_dir, metrics)
    return metrics
