"""ETL entry points: the stage graph and the runner; each stage's job (``read -> pure
transforms -> write``) is in :mod:`etl.stages`.

``run_stage(ctx, spark, stage)`` runs one stage for the run day of ``ctx`` and returns its
:class:`core.results.etl.EtlStageResult` for the run report; ``run_etl`` runs them all in
dependency order. ``STAGE_DEPENDENCIES`` says which stages could run in parallel once their
upstreams are done (docs/scaling.md).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from contracts.outputs import ETL_STAGE_ORDER
from core.errors import UserError
from core.results.etl import EtlStageResult
from etl.stages.datasets import stage_datasets
from etl.stages.features import stage_features, stage_item_sampling, stage_vocabulary
from etl.stages.hard_negatives import stage_hard_negatives
from etl.stages.positives import stage_click_positives, stage_resampled_positives

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from core.context import RunContext

log = logging.getLogger(__name__)

ETL_STAGES: tuple[str, ...] = ETL_STAGE_ORDER

STAGE_DEPENDENCIES: dict[str, tuple[str, ...]] = {
    "click_positives": (),
    "resampled_positives": ("click_positives",),
    "hard_negatives": ("click_positives",),
    "vocabulary": ("click_positives",),
    "features": ("vocabulary",),
    "item_sampling": ("features", "resampled_positives"),
    "datasets": ("features", "resampled_positives", "hard_negatives"),
}

# Tables each stage writes (for docs, the DAG and tests).
STAGE_OUTPUTS: dict[str, tuple[str, ...]] = {
    "click_positives": ("click_positives",),
    "resampled_positives": ("resampled_positives",),
    "hard_negatives": ("hard_negative_candidates", "shown_pairs", "hard_negatives"),
    "vocabulary": ("vocabulary",),
    "features": ("feature_stats", "user_features", "serving_user_features", "item_catalogue"),
    "item_sampling": ("item_sampling",),
    "datasets": ("train_examples", "final_examples", "item_day_features", "eval_examples"),
}

_STAGES: dict[str, Callable[[RunContext, SparkSession], EtlStageResult]] = {
    "click_positives": stage_click_positives,
    "resampled_positives": stage_resampled_positives,
    "hard_negatives": stage_hard_negatives,
    "vocabulary": stage_vocabulary,
    "features": stage_features,
    "item_sampling": stage_item_sampling,
    "datasets": stage_datasets,
}


def run_stage(ctx: RunContext, spark: SparkSession, stage: str) -> EtlStageResult:
    """Run one ETL stage for the run day ``ctx.ds`` and return its result (the stage's own
    subclass of :class:`EtlStageResult`, with the stage, day, seconds and window set).

    Raises:
        UserError: unknown stage.
        DataError: a required input partition is missing or bad.
    """
    if stage not in _STAGES:
        raise UserError(f"unknown ETL stage {stage!r} (stages: {', '.join(ETL_STAGES)})")
    win = ctx.window
    place = f"{ETL_STAGES.index(stage) + 1}/{len(ETL_STAGES)}"
    log.info("ETL stage %s %s for ds=%s started (%d-day window)", place, stage, ctx.ds, len(win.days))
    start = time.perf_counter()
    spark.sparkContext.setJobGroup(f"etl-{stage}", f"twotower ETL {stage} ds={ctx.ds}")
    result = _STAGES[stage](ctx, spark)
    seconds = round(time.perf_counter() - start, 3)
    log.info("ETL stage %s %s for ds=%s done in %.1f s: %s", place, stage, ctx.ds, seconds, row_counts(result))
    return dataclasses.replace(result, stage=stage, ds=ctx.ds, seconds=seconds, window=win.days)


_COUNT_KEYS = frozenset({"rows", "users", "items", "requests"})


def row_counts(stats: EtlStageResult | Mapping[str, Any]) -> str:
    """The row counts of a stage's result for its progress line, e.g. ``rows=1,204
    upsampled_rows=310`` or ``users=900 items=4,000``; "no row counts" when it reports none."""
    values = stats.to_dict() if isinstance(stats, EtlStageResult) else stats
    counts = [
        f"{key}={value:,}"
        for key, value in values.items()
        if (key in _COUNT_KEYS or key.endswith("_rows")) and isinstance(value, int) and not isinstance(value, bool)
    ]
    return " ".join(counts) or "no row counts"


def run_etl(ctx: RunContext, spark: SparkSession) -> dict[str, EtlStageResult]:
    """Every stage for the run day ``ctx.ds`` in dependency order; returns stage -> result."""
    return {stage: run_stage(ctx, spark, stage) for stage in ETL_STAGES}
