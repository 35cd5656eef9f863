"""What each pipeline step reads from the store besides its own outputs, and the values the
application layer hands to the stages (the warm-start folder, the simulator's oracle).

With ``[paths] remote`` set, the non-Spark steps work in a local working copy
(:mod:`storage.sync`): these lists are what each step pulls first. Stages never import each
other; where one stage needs another's value (training's warm start from a published version,
the evaluation's oracle from the simulator's truth), the pipeline resolves it here and passes it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from contracts.days import day_range
from contracts.outputs import ETL_OUTPUTS
from core.context import RunContext
from storage.layout import Layout

if TYPE_CHECKING:
    from training.evaluate import Oracle

log = logging.getLogger("twotower.pipeline")

def etl_outputs(layout: Layout, ds: str) -> list[Path]:
    """Every ETL output partition of day ``ds`` (what training, evaluation and indexing read)."""
    return [layout.path_for(table, ds) for table in ETL_OUTPUTS]


def popularity_inputs(ctx: RunContext) -> list[Path]:
    """click_positives of the 28 days before the evaluation days: the popularity bars."""
    from training.baselines import POPULARITY_DAYS

    return [ctx.layout.path_for("click_positives", d) for d in ctx.window.before(max(POPULARITY_DAYS.values()))]


def prior_inputs(ctx: RunContext) -> list[Path]:
    """What the popularity prior reads (nothing when it is off): the earlier days' grid records
    (their metrics.json) and click_positives of the counted days, up to day ds itself (the
    index counts through the last day the published weights saw)."""
    from training.prior_context import prior_record_days

    cfg, layout = ctx.cfg, ctx.layout
    if cfg.training.prior == "off":
        return []
    records = [layout.model_dir(d) / "metrics.json" for d in prior_record_days(ctx)]
    counted = day_range(ctx.ds, cfg.training.prior_days + cfg.etl.eval_days)
    return [*records, *(layout.path_for("click_positives", d) for d in counted)]


def evaluation_inputs(ctx: RunContext) -> list[Path]:
    """What the held-out evaluation of day ds reads besides the model: the day's ETL outputs,
    the popularity bars' and the prior's inputs, and the simulator's truth (the oracle)."""
    return [*etl_outputs(ctx.layout, ctx.ds), *popularity_inputs(ctx), *prior_inputs(ctx), ctx.layout.truth_dir]


def report_inputs(ctx: RunContext) -> list[Path]:
    """What the run report reads: the day's stage statistics and DQ summaries, the model's
    metrics and curves, the previous published version's metrics and every day's summary."""
    from core.published import published_days
    from quality.io import summary_path
    from quality.report import STAGES

    layout, ds = ctx.layout, ctx.ds
    model_dir = layout.model_dir(ds)
    earlier = [d for d in published_days(layout) if d < ds]
    days = [name for name in layout.store.child_dirs(layout.reports_root) if name.startswith("ds=")]
    return [
        layout.stage_stats(ds, "x").parent,
        *(summary_path(layout, ds, stage) for stage in STAGES),
        *(model_dir / name for name in ("metrics.json", "train_stats.json", "loss_curve.png")),
        *([layout.version_dir(earlier[-1]) / "metrics.json"] if earlier else []),
        *(layout.reports_root / day / "summary.json" for day in days),
    ]


def published_model_dir(layout: Layout) -> Path | None:
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


def oracle(layout: Layout) -> Oracle | None:
    """The simulator truth's scores (user ids, item ids) -> [U, N] for the evaluation's oracle,
    or None when the data root has no truth (imported data) or logsim is not installed."""
    try:
        from logsim.truth import Truth
    except ImportError:
        return None
    truth = Truth.load(layout)
    return None if truth is None else truth.scores


def gate_evaluator(ctx: RunContext, model_dir: Path) -> dict:
    """Evaluate an exported model folder on day ds's held-out set with the oracle when the data
    root has simulator truth: what the publish gate runs on the published version
    (``indexing.publish.publish_day(evaluator=)``) and ``twotower evaluate --model-dir``."""
    from training.evaluate import evaluate_model_dir

    return evaluate_model_dir(ctx, model_dir, oracle=oracle(ctx.layout))
