"""Typed results of the training steps: ``train`` (:class:`TrainResult`), ``evaluate``
(:class:`EvaluateResult`) and ``train_final`` (:class:`TrainFinalResult`).

Their ``to_dict()`` is the JSON the steps have always recorded (``train_stats.json``, the stage
statistics, ``metrics.json``): some keys are not identifiers (``recall@50``), some appear only
when they apply (the evaluation headline of a train run that evaluated, the export counts of
worker 0), and a few nested results are written flat into their parent: the base class's
``_keys``, ``_optional`` and ``_flat`` say which (:class:`core.results.StepResult`).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Self

from core.results import StepResult

# -- train ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class NegativeCounts(StepResult):
    """Negatives per training example (hard, catalogue draws) and shared per batch."""

    hard_per_example: int = 0
    catalogue_per_example: int = 0
    shared_per_batch: int = 0


@dataclasses.dataclass(frozen=True)
class FeatureColumnNames(StepResult):
    """The feature columns the model was built on (by prefix, sorted)."""

    user_cat: tuple[str, ...] = ()
    user_num: tuple[str, ...] = ()
    item_cat: tuple[str, ...] = ()
    item_num: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class DayPass(StepResult):
    """The closing passes over the last training day's own clicks (``final_examples``)."""

    day: str = ""
    rows: int = 0
    batch_size: int = 0
    epochs: int = 0
    steps: int = 0


@dataclasses.dataclass(frozen=True)
class WarmStartReport(StepResult):
    """Where the weights started from. ``warm_start_from`` None = fresh initialisation;
    ``skipped`` says why a published model was not used (JSON ``reason``)."""

    _keys: ClassVar[dict[str, str]] = {"skipped": "reason"}
    _optional: ClassVar[frozenset[str]] = frozenset({"skipped", "tensors_copied", "tables_extended", "tensors_skipped"})

    warm_start_from: str | None = None
    skipped: str | None = None
    tensors_copied: int | None = None
    tables_extended: int | None = None
    tensors_skipped: tuple[str, ...] | None = None


@dataclasses.dataclass(frozen=True)
class ExportCounts(StepResult):
    """What the export embedded (catalogue items, evaluation users)."""

    items_embedded: int = 0
    eval_users_embedded: int = 0


@dataclasses.dataclass(frozen=True)
class TrainHeadline(StepResult):
    """recall@50 of the model, each popularity bar and the oracle, when the train run evaluated."""

    _keys: ClassVar[dict[str, str]] = {
        "recall_at_50": "recall@50", "baseline_recall_at_50": "baseline_recall@50", "oracle_recall_at_50": "oracle_recall@50",
    }

    recall_at_50: float | None = None
    baseline_recall_at_50: dict[str, float] = dataclasses.field(default_factory=dict)
    oracle_recall_at_50: float | None = None


@dataclasses.dataclass(frozen=True)
class TrainResult(StepResult):
    """What ``train`` records (also ``train_stats.json``, without ``model_dir``). Workers other
    than 0 of a torchrun job return it without the export, the headline and ``model_dir``."""

    _optional: ClassVar[frozenset[str]] = frozenset({"export", "wall_seconds", "headline", "model_dir"})
    _flat: ClassVar[frozenset[str]] = frozenset({"warm_start", "export", "headline"})

    ds: str = ""
    rows: int = 0
    shards: int = 0
    epochs: int = 0
    batch_size: int = 0
    steps: int = 0
    examples: int = 0
    train_seconds: float = 0.0
    examples_per_second: float = 0.0
    final_loss: float | None = None
    epoch_losses: tuple[float, ...] = ()
    loss_curve: tuple[float, ...] = ()
    workers: int = 1
    device: str = "cpu"
    threads: int = 1
    ablate: tuple[str, ...] = ()
    full_retrain: bool = False
    negatives: NegativeCounts = NegativeCounts()
    feature_columns: FeatureColumnNames = FeatureColumnNames()
    table_sizes: dict[str, int] = dataclasses.field(default_factory=dict)  # embedding table -> rows
    last_training_day_pass: DayPass | None = None
    warm_start: WarmStartReport = WarmStartReport()
    export: ExportCounts | None = None
    wall_seconds: float | None = None
    headline: TrainHeadline | None = None
    model_dir: str | None = None

    @property
    def warm_start_from(self) -> str | None:
        return self.warm_start.warm_start_from


# -- evaluate -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class EvaluateResult(StepResult):
    """``metrics.json`` of a day's model: the held-out counts, the metric maps of the model, of
    each popularity bar and of the oracle (metric name -> value: the ks are configured), and
    the popularity prior, continued-training protocol and training figures when recorded."""

    _keys: ClassVar[dict[str, str]] = {"lift_recall_at_50_vs_best_baseline": "lift_recall@50_vs_best_baseline"}
    _optional: ClassVar[frozenset[str]] = frozenset({"prior", "train", "protocol"})

    ds: str = ""
    eval_users: int = 0
    eval_targets: int = 0
    eval_targets_not_in_catalogue: int = 0
    eval_targets_not_in_catalogue_counted: int = 0
    model: dict[str, Any] = dataclasses.field(default_factory=dict)
    baselines: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    baseline_days: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    prior: dict[str, Any] | None = None
    oracle: dict[str, Any] | None = None
    best_baseline: str | None = None
    lift_recall_at_50_vs_best_baseline: float | None = None
    train: dict[str, Any] | None = None
    protocol: dict[str, Any] | None = None

    @property
    def recall_at_50(self) -> float:
        return self.model["recall@50"]


# -- train_final ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class GateEvaluation(StepResult):
    """The candidate the gate evaluated: the days it trained on, the days it was scored on."""

    _keys: ClassVar[dict[str, str]] = {"recall_at_50": "recall@50", "recall_at_50_se": "recall@50_se"}

    model: str = "candidate"
    trained_days: tuple[str, ...] = ()
    evaluated_on: tuple[str, ...] = ()
    recall_at_50: float | None = None
    recall_at_50_se: float | None = None


@dataclasses.dataclass(frozen=True)
class FinalTraining(StepResult):
    """The continued training on the evaluation days (``wall_seconds`` only in the step's result)."""

    _optional: ClassVar[frozenset[str]] = frozenset({"wall_seconds"})

    days: tuple[str, ...] = ()
    rows: int = 0
    batch_size: int = 0
    epochs: int = 0
    steps: int = 0
    final_loss: float | None = None
    train_seconds: float = 0.0
    wall_seconds: float | None = None


@dataclasses.dataclass(frozen=True)
class TrainFinalResult(StepResult):
    """What ``train_final`` records. Skipped (no ``final_examples``, or switched off): JSON
    ``final_training`` is ``"skipped"`` and ``reason`` says why."""

    _optional: ClassVar[frozenset[str]] = frozenset({"skipped", "gate_evaluation", "model_dir"})
    _keys: ClassVar[dict[str, str]] = {"skipped": "reason"}

    ds: str = ""
    final_training: FinalTraining | None = None
    skipped: str | None = None
    trained_days: tuple[str, ...] = ()
    gate_evaluation: GateEvaluation | None = None
    model_dir: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if self.final_training is None:
            out["final_training"] = "skipped"
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Self:
        data = dict(data or {})
        if data.get("final_training") == "skipped":
            data["final_training"] = None
        return super().from_dict(data)
