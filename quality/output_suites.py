"""Suite builders of the ETL outputs: the generic rows suite (non-empty, unique key, flag
checks), id ranges against the vocabulary, days of the window, the Vose alias table of
item_sampling and the vocabulary's id stability.

:mod:`quality.output_engine` calls them for the checks declared in
:mod:`quality.output_checks`. Pure construction from DataFrames: nothing here reads storage.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from contracts.outputs import ITEM_CAT_PREFIX, ITEM_NUM_PREFIX, USER_CAT_PREFIX, USER_NUM_PREFIX
from contracts.schemas import Table
from quality.checks import (
    FLAG_PREFIX,
    RERUN_ETL,
    Check,
    Suite,
    flag_check,
    non_empty_check,
    not_finite,
    sum_to_one_check,
    unique_check,
)
from quality.rules import null_safe

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

    from core.config import Config


def output_rows_suite(
    table: Table,
    frame: DataFrame,
    ds: str,
    flags: dict[str, Column],
    checks: list[Check],
    allow_empty: bool = False,
) -> Suite:
    """Generic output suite: non-empty (unless allowed), unique key, plus the given flag checks."""
    all_checks = [] if allow_empty else [non_empty_check()]
    if table.unique:
        all_checks.append(unique_check(table.unique, "critical", None, RERUN_ETL))
    all_checks.extend(checks)
    return Suite(
        f"validate_outputs.{table.name}.rows",
        table.name,
        ds,
        frame.withColumns(flags) if flags else frame,
        all_checks,
        example_columns=tuple(frame.columns),
        source_columns=tuple(frame.columns),
    )


def idx_range_flags(
    frame_columns: Sequence[str], sizes: dict[str, int], cfg: Config
) -> tuple[dict[str, Column], list[Check]]:
    """Range checks of id columns against vocabulary sizes (max id per vocab).

    ``user_idx`` / ``item_idx`` / ``target_idx``... must lie in [0, max id] of vocab
    ``user_id`` / ``item_id``; ``u_cat_<f>`` / ``i_cat_<f>`` in [0, max id] of ``user.<f>`` /
    ``item.<f>``; numeric features ``u_num_*`` / ``i_num_*`` must be finite.
    """
    from pyspark.sql import functions as F

    flags: dict[str, Column] = {}
    checks: list[Check] = []
    fix = "ids beyond the vocabulary would index past the embedding tables: " + RERUN_ETL

    def add_range(col: str, vocab: str, is_array: bool) -> None:
        if vocab not in sizes:
            return
        high = sizes[vocab]
        c = F.col(col)
        if is_array:
            cond = F.exists(c, lambda x: x.isNull() | (x < 0) | (x > high))
        else:
            cond = c.isNull() | (c < 0) | (c > high)
        name = f"range:{col}"
        flags[FLAG_PREFIX + name] = null_safe(cond)
        checks.append(flag_check(name, "critical", f"{col} holds an id outside [0, {high}] (vocab {vocab})", fix, column=col))

    for col in frame_columns:
        if col == "user_idx":
            add_range(col, "user_id", False)
        elif col == "item_idx":
            add_range(col, "item_id", False)
        elif col in ("u_hist", "hard_neg_idx", "target_idx", "exclude_idx"):
            add_range(col, "item_id", True)
        elif col.startswith(USER_CAT_PREFIX):
            add_range(col, "user." + col[len(USER_CAT_PREFIX) :], False)
        elif col.startswith(ITEM_CAT_PREFIX):
            add_range(col, "item." + col[len(ITEM_CAT_PREFIX) :], False)
        elif col.startswith((USER_NUM_PREFIX, ITEM_NUM_PREFIX)):
            name = f"finite:{col}"
            flags[FLAG_PREFIX + name] = null_safe(not_finite(F.col(col)))
            checks.append(
                flag_check(name, "critical", f"{col} is null, NaN or infinite", "check feature_stats (std 0?): " + RERUN_ETL, column=col)
            )
    return flags, checks


def days_flag(name: str, column: str, days: Sequence[str], what: str) -> tuple[dict[str, Column], list[Check]]:
    """``column`` (a date) must be one of ``days`` (e.g. the training days: no eval leakage)."""
    from pyspark.sql import functions as F

    cond = null_safe(F.col(column).isNull() | ~F.col(column).cast("string").isin(*days))
    return (
        {FLAG_PREFIX + name: cond},
        [flag_check(name, "critical", f"{column} is not one of {what} ({', '.join(days)})", RERUN_ETL, column=column)],
    )


def alias_frame(
    sampling: DataFrame, tol: float, smoothing: float, catalogue: DataFrame | None = None
) -> tuple[DataFrame, list[Check]]:
    """Flags for the item_sampling table's probabilities and Vose alias table.

    ``neg_prob`` must be positive exactly for the active catalogue items (``catalogue``'s
    ``active``; all items when no catalogue is given), and for clicked ones only when
    ``smoothing`` is 0; inactive items have 0. The alias table reconstructs ``neg_prob``: with
    n slots, P(i) = (alias_prob_i + sum over slots j with alias_idx_j = i of (1 - alias_prob_j)) / n.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    if catalogue is not None:
        sampling = sampling.join(
            catalogue.select("item_idx", F.col("active").alias("_dq_active")), "item_idx", "left"
        ).withColumn("_dq_active", F.coalesce(F.col("_dq_active"), F.lit(False)))
    else:
        sampling = sampling.withColumn("_dq_active", F.lit(True))

    n = F.count(F.lit(1)).over(Window.partitionBy())
    donated = (
        sampling.filter(F.col("alias_prob") < 1.0)
        .groupBy(F.col("alias_idx").alias("item_idx"))
        .agg(F.sum(1.0 - F.col("alias_prob")).alias("_dq_donated"))
    )
    valid_idx = sampling.select("item_idx").withColumn("_dq_alias_ok", F.lit(True))
    frame = (
        sampling.join(donated, "item_idx", "left")
        .join(valid_idx.withColumnRenamed("item_idx", "alias_idx"), "alias_idx", "left")
        .withColumn("_dq_n", n)
        .withColumn(
            "_dq_recon_prob", (F.col("alias_prob") + F.coalesce(F.col("_dq_donated"), F.lit(0.0))) / F.col("_dq_n")
        )
    )
    should_be_positive = F.col("_dq_active") if smoothing > 0 else (F.col("_dq_active") & (F.col("clicks") > 0))
    positive = (F.col("neg_prob") > 0) == should_be_positive
    alias_prob = F.col("alias_prob")
    flags = {
        FLAG_PREFIX + "neg_prob_positive": null_safe(~positive | not_finite(F.col("neg_prob"))),
        FLAG_PREFIX + "alias_prob_range": null_safe(not_finite(alias_prob) | (alias_prob < 0) | (alias_prob > 1)),
        FLAG_PREFIX + "alias_idx_valid": null_safe((alias_prob < 1) & F.col("_dq_alias_ok").isNull()),
        FLAG_PREFIX + "alias_reconstructs": null_safe(F.abs(F.col("_dq_recon_prob") - F.col("neg_prob")) > tol),
        FLAG_PREFIX + "inbatch_prob_valid": null_safe(
            not_finite(F.col("inbatch_prob"))
            | (F.col("inbatch_prob") < 0)
            | ((F.col("clicks_resampled") == 0) & (F.col("inbatch_prob") != 0))
        ),
    }
    fix = "negative sampling would draw from a wrong distribution: " + RERUN_ETL
    rule = (
        "positive exactly for the active catalogue items"
        if smoothing > 0
        else "positive exactly for the clicked active items (smoothing = 0)"
    )
    checks = [
        flag_check("neg_prob_positive", "critical", f"neg_prob is not {rule}", fix, column="neg_prob"),
        flag_check("alias_prob_range", "critical", "alias_prob is outside [0, 1]", fix, column="alias_prob"),
        flag_check("alias_idx_valid", "critical", "alias_idx is not an item_idx of the table", fix, column="alias_idx"),
        flag_check(
            "alias_reconstructs",
            "critical",
            f"the alias table does not reconstruct neg_prob (|error| > {tol:g})",
            fix,
            column="alias_prob",
        ),
        flag_check(
            "inbatch_prob_valid",
            "critical",
            "inbatch_prob is negative/non-finite or non-zero for an item never positive",
            fix,
            column="inbatch_prob",
        ),
        sum_to_one_check("neg_prob", tol),
    ]
    return frame.withColumns(flags), checks


def vocabulary_stability_suite(current: DataFrame, previous: DataFrame, ds: str, previous_ds: str) -> Suite:
    """Every (vocab, value) of the previous day's vocabulary keeps its id (ids never change meaning)."""
    from pyspark.sql import functions as F

    prev = previous.select("vocab", "value", F.col("id").alias("previous_id"))
    cur = current.select("vocab", "value", F.col("id").alias("current_id"))
    frame = prev.join(cur, ["vocab", "value"], "left").withColumn(
        FLAG_PREFIX + "id_stable",
        null_safe(F.col("current_id").isNull() | (F.col("current_id") != F.col("previous_id"))),
    )
    check = flag_check(
        "id_stable",
        "critical",
        f"a value's id changed or disappeared since the vocabulary of ds={previous_ds}",
        "ids must never change meaning (a model trained earlier would read them wrongly): fix the vocabulary "
        "stage so it only appends new values, then rerun the ETL",
        column="id",
    )
    return Suite(
        "validate_outputs.vocabulary.stability",
        "vocabulary",
        ds,
        frame,
        [check],
        example_columns=("vocab", "value", "previous_id", "current_id"),
    )
