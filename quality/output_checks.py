"""The row checks of every ETL output, declared as data.

``OUTPUT_CHECKS`` maps each checked ETL output to its checks, in the order they run and are
reported; :mod:`quality.output_engine` turns them into one GE suite per table. Every table's
suite also checks that the partition is non-empty (unless it is in ``MAY_BE_EMPTY``) and
that its contract key is unique. To add a check: add an :class:`OutputCheck` to the table
(its ``kind`` one of ``quality.output_engine.KINDS``), then a test in
``tests/test_bad_inputs.py`` that injects the bad rows and expects the check to fail.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from quality.checks import RERUN_ETL


@dataclass(frozen=True)
class OutputCheck:
    """One declared check of an ETL output; every one is critical.

    Attributes:
        kind: what the engine computes (``quality.output_engine.KINDS``): ``not_null``,
            ``finite`` (not null/NaN/inf; ``params["positive"]`` columns also > 0),
            ``non_negative``, ``in_set``, ``allowed_pairs``, ``non_empty_array``, ``in_day``,
            ``in_days``, ``subset`` / ``disjoint`` (against a named reference frame),
            ``in_vocabulary``, ``id_ranges``, ``alias_table``, ``sum_to_one``, ``unique``,
            ``stable_ids``.
        name: the check's id in reports (``id_ranges`` / ``alias_table`` name theirs per column).
        columns: the columns it reads (the keys of a subset/disjoint/in_vocabulary check).
        params: what the kind needs besides columns (``days``: a ``core.context.Window``
            attribute; ``reference``: a frame the engine reads; ``values``, ``pairs``...).
        problem: what a failing row means (``{ds}`` is filled in with the run day).
        fix: what to do.
        column: the column named in messages (default: the first of ``columns``).
    """

    kind: str
    name: str = ""
    columns: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    problem: str = ""
    fix: str = RERUN_ETL
    column: str | None = None

    @property
    def named_column(self) -> str | None:
        return self.column or (self.columns[0] if self.columns else None)


def _not_null(*columns: str) -> tuple[OutputCheck, ...]:
    return tuple(OutputCheck("not_null", f"null_{c}", (c,), problem=f"{c} is null") for c in columns)


def _in_days(name: str, days: str, what: str) -> OutputCheck:
    return OutputCheck("in_days", name, ("event_ds",), {"days": days, "what": what})


_IDS = _not_null("request_id", "user_id", "item_id")
_WEIGHT = OutputCheck("finite", "weight_positive", ("weight",), {"positive": ("weight",)}, "weight is not a positive finite number")
_LABEL = OutputCheck("in_set", "label_liked_binary", ("label_liked",), {"values": (0.0, 1.0)}, "label_liked is not 0 or 1")
_ID_RANGES = OutputCheck("id_ranges")  # every id and numeric feature column of the table


def _in_vocabulary(idx_col: str, id_col: str) -> OutputCheck:
    """Encoded ids agree with the persisted vocabulary (id -> value)."""
    return OutputCheck(
        "in_vocabulary",
        "idx_matches_vocabulary",
        (idx_col, id_col),
        problem=f"({idx_col}, {id_col}) disagrees with the {id_col} vocabulary",
    )


# ETL outputs that may legitimately be empty (no ranking log; no numeric features).
MAY_BE_EMPTY = ("hard_negatives", "hard_negative_candidates", "feature_stats")

OUTPUT_CHECKS: dict[str, tuple[OutputCheck, ...]] = {
    "click_positives": (
        *_IDS,
        OutputCheck("in_day", "ts_in_day", ("ts",), problem="ts is outside the event day {ds}"),
        _WEIGHT,
        OutputCheck(
            "subset",
            "subset_of_shown_clicked",
            ("request_id", "item_id", "user_id"),
            {"reference": "clicked_impressions"},
            "the positive is not a shown-and-clicked impression of the day (a shown-but-not-clicked or "
            "quarantined row became a positive)",
            "positives must come only from clicked impressions: fix etl positives, then rerun the ETL",
            column="item_id",
        ),
    ),
    "resampled_positives": (
        _in_days("event_ds_in_training_days", "train_days", "the training days"),
        *_IDS,
        _WEIGHT,
        OutputCheck("non_negative", "replica_non_negative", ("replica",), problem="replica is negative"),
        OutputCheck(
            "subset",
            "subset_of_click_positives",
            ("request_id", "item_id"),
            {"reference": "training_click_positives"},
            "the resampled positive is not a click positive of the training days",
            "resampling must only copy or drop click positives: " + RERUN_ETL,
            column="item_id",
        ),
    ),
    "hard_negatives": (
        *_IDS,
        OutputCheck(
            "allowed_pairs",
            "stage_cut_valid",
            ("stage_cut", "difficulty"),
            {"pairs": (("pre_rank", 1), ("rank", 2))},
            "stage_cut/difficulty is not (pre_rank, 1) or (rank, 2)",
        ),
        # The evaluation days' hard negatives feed final_examples only (never the evaluation).
        _in_days("event_ds_in_window_days", "days", "the window's days"),
        OutputCheck(
            "disjoint",
            "disjoint_from_shown_or_clicked",
            ("user_id", "item_id"),
            {"reference": "window_impressions"},
            "the hard negative was shown to (or clicked by) the same user in the window: it is not a negative",
            "hard negatives must exclude every item shown or clicked by the user in the window: fix the "
            "anti-join in etl hard negatives, then rerun the ETL",
            column="item_id",
        ),
    ),
    "item_sampling": (
        OutputCheck("alias_table"),
        OutputCheck("sum_to_one", columns=("inbatch_prob",)),
        OutputCheck("id_ranges", columns=("item_idx",)),
    ),
    "vocabulary": (
        OutputCheck("non_negative", "id_non_negative", ("id",), problem="id is null or negative"),
        OutputCheck("unique", columns=("vocab", "id"), fix="two values share one id: " + RERUN_ETL),
        OutputCheck("stable_ids"),  # its own suite, against the previous day's vocabulary
    ),
    "feature_stats": (
        OutputCheck(
            "finite",
            "stats_finite",
            ("mean", "std"),
            {"positive": ("std",)},
            "mean/std is not finite or std <= 0",
            column="std",
        ),
    ),
    "user_features": (_ID_RANGES, _in_vocabulary("user_idx", "user_id")),
    "serving_user_features": (_ID_RANGES, _in_vocabulary("user_idx", "user_id")),
    "item_catalogue": (_ID_RANGES, _in_vocabulary("item_idx", "item_id")),
    "item_day_features": (_ID_RANGES, _in_days("event_ds_in_training_days", "train_days", "the training days")),
    "train_examples": (
        _ID_RANGES,
        _in_days("event_ds_in_training_days", "train_days", "the training days"),
        _WEIGHT,
        _LABEL,
    ),
    "final_examples": (
        _ID_RANGES,
        _in_days("event_ds_in_evaluation_days", "eval_days", "the evaluation days"),
        _WEIGHT,
        _LABEL,
    ),
    "eval_examples": (
        _ID_RANGES,
        OutputCheck("non_empty_array", "has_targets", ("target_idx",), problem="an evaluation user has no target item"),
    ),
}
