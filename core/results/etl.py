"""What each ETL stage records (``etl.jobs.run_stage`` returns one of these; the pipeline
writes ``to_dict()`` as the step ``etl_<stage>``).

Every stage result starts with :class:`EtlStageResult`'s fields (stage, run day, seconds,
window); the subclass adds what that stage counted. Maps keyed by something that varies with
the data (days, vocabularies, features, difficulty levels) stay dicts; everything else is a
field.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from core.results import StepResult


@dataclasses.dataclass(frozen=True)
class EtlStageResult(StepResult):
    """The fields every ETL stage records (set by ``run_stage`` around the stage's own result)."""

    stage: str = ""
    ds: str = ""
    seconds: float = 0.0
    window: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class ClickPositivesResult(EtlStageResult):
    rows: int = 0  # day D's click positives
    rows_by_day: dict[str, int] = dataclasses.field(default_factory=dict)  # every day this run wrote
    days_written: tuple[str, ...] = ()
    stale_days_recomputed: tuple[str, ...] = ()
    window_days_without_impressions: tuple[str, ...] = ()
    lookback_days_without_impressions: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class DistributionStats(StepResult):
    """Concentration of clicks over items (``etl.positives.distribution_stats``)."""

    items: int = 0
    clicks: float = 0.0
    top1pct_share: float = 0.0
    gini: float = 0.0
    max: float = 0.0


@dataclasses.dataclass(frozen=True)
class ResampleRule(StepResult):
    """The hot/cold resampling settings the stage ran with."""

    hot_threshold: int = 0
    cold_threshold: int = 0
    max_upsample: int = 0
    seed: int = 0


@dataclasses.dataclass(frozen=True)
class ResampledPositivesResult(EtlStageResult):
    rows_before: int = 0
    rows: int = 0
    upsampled_rows: int = 0
    train_days_missing: tuple[str, ...] = ()
    distribution_before: DistributionStats | None = None
    distribution_after: DistributionStats | None = None
    rule: ResampleRule | None = None


@dataclasses.dataclass(frozen=True)
class HardNegativesResult(EtlStageResult):
    """``requests`` is left out of the JSON when no window day has a ranking log, and
    ``shown_overlap_rows`` when the written output was not verified (``etl.verify_hard_negatives``
    off): absent means "not measured", never zero."""

    per_request_cap: int = 0
    per_day_outputs_computed: tuple[str, ...] = ()
    stale_days_recomputed: tuple[str, ...] = ()
    ranking_log_present: bool = False
    ranking_log_days_missing: tuple[str, ...] = ()
    rows: int = 0
    by_difficulty: dict[str, int] = dataclasses.field(default_factory=dict)  # "1"/"2" -> rows
    requests: int | None = None
    shown_overlap_rows: int | None = None

    _optional: ClassVar[frozenset[str]] = frozenset({"requests", "shown_overlap_rows"})  # when not measured


@dataclasses.dataclass(frozen=True)
class VocabSize(StepResult):
    size: int = 0
    new: int = 0  # values first seen on the run day
    max_id: int = 0


@dataclasses.dataclass(frozen=True)
class VocabularyResult(EtlStageResult):
    previous_partition: str | None = None  # the vocabulary extended (None: the first one)
    rows: int = 0
    vocabs: dict[str, VocabSize] = dataclasses.field(default_factory=dict)  # vocabulary name -> size


@dataclasses.dataclass(frozen=True)
class CatalogueChange(StepResult):
    """Day D's live catalogue and what changed since the day before (``None``: no earlier day)."""

    rule: str = ""  # "complete snapshot" or "carried forward"
    retire_after_days: int = 0
    compared_with: str | None = None
    added: int | None = None
    retired: int | None = None
    size: int = 0


@dataclasses.dataclass(frozen=True)
class FeatureStat(StepResult):
    mean: float = 0.0
    std: float = 0.0


@dataclasses.dataclass(frozen=True)
class FeaturesResult(EtlStageResult):
    users: int = 0
    users_with_history: int = 0
    users_snapshot_day: str = ""
    items: int = 0
    active_items: int = 0
    catalogue: CatalogueChange | None = None
    freshness_as_of: str = ""
    feature_stats: dict[str, FeatureStat] = dataclasses.field(default_factory=dict)  # feature -> mean/std


@dataclasses.dataclass(frozen=True)
class ItemSamplingResult(EtlStageResult):
    items: int = 0
    neg_prob_sum: float = 0.0
    inbatch_prob_sum: float = 0.0
    samplable: int = 0  # items with a non-zero negative-sampling probability
    max_neg_prob: float = 0.0
    max_inbatch_prob: float = 0.0
    alpha: float = 0.0
    smoothing: float = 0.0


@dataclasses.dataclass(frozen=True)
class DatasetsResult(EtlStageResult):
    train_rows: int = 0
    train_files: int = 0
    train_with_hard_negatives: int = 0
    train_with_history: int = 0
    train_event_days: tuple[str, ...] = ()  # (first, last) event day of the training examples
    final_rows: int = 0
    final_with_history: int = 0
    eval_users: int = 0
    eval_targets: int = 0
    eval_excluded: int = 0
    train_days: tuple[str, ...] = ()
    eval_days: tuple[str, ...] = ()


# The result class of each stage (to read a recorded ``etl_<stage>`` back with ``from_dict``).
STAGE_RESULTS: dict[str, type[EtlStageResult]] = {
    "click_positives": ClickPositivesResult,
    "resampled_positives": ResampledPositivesResult,
    "hard_negatives": HardNegativesResult,
    "vocabulary": VocabularyResult,
    "features": FeaturesResult,
    "item_sampling": ItemSamplingResult,
    "datasets": DatasetsResult,
}
