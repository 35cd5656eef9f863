"""Running the training entry points in tests, the way `twotower train --no-record` runs them."""

from __future__ import annotations

from core.config import Config
from core.context import RunContext
from core.results.training import TrainResult
from storage.layout import Layout


def truth_oracle(layout: Layout):
    """The simulator truth's scores as the evaluation's oracle (None: the root has no truth),
    as the pipeline builds it."""
    from twotower.step_io import oracle

    return oracle(layout)


def train(
    cfg: Config, ds: str, *, ablate: frozenset[str] = frozenset(), full_retrain: bool = False, evaluate: bool = True
) -> TrainResult:
    """``training.train.train_day`` of day ``ds`` on a data root with nothing published (no warm
    start), evaluated in place, with the oracle when the root holds simulator truth."""
    from training.train import train_day

    ctx = RunContext.build(cfg, ds)
    return train_day(
        ctx, warm_start_dir=None, ablate=ablate, full_retrain=full_retrain, evaluate=evaluate,
        oracle=truth_oracle(ctx.layout) if evaluate else None,
    )
