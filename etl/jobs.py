"""ETL entry points: one job per stage, each ``read -> pure transforms -> write``.

``run_stage(cfg, spark, ds, stage)`` runs one stage for run day ``ds`` and returns its
statistics for the run report; ``run_etl`` runs them all in dependency order. The DAG may run
stages whose upstreams are done in parallel (``STAGE_DEPENDENCIES``).

Days (see docs/etl.md): the window is the ``etl.window_days`` days ending at ``ds``; its last
``etl.eval_days`` are the held-out evaluation days, the earlier ones the training days.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from contracts.days import day_range, ds_str, parse_ds
from core.errors import DataError, UserError, data_error_message
from etl import io

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from core.config import Config

log = logging.getLogger(__name__)

ETL_STAGES: tuple[str, ...] = (
    "click_positives",
    "resampled_positives",
    "hard_negatives",
    "vocabulary",
    "features",
    "item_sampling",
    "datasets",
)

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


@dataclasses.dataclass(frozen=True)
class RunWindow:
    """The days one run works on (``YYYY-MM-DD`` strings, oldest first)."""

    ds: str
    days: tuple[str, ...]
    train_days: tuple[str, ...]
    eval_days: tuple[str, ...]

    @classmethod
    def for_run(cls, cfg: Config, ds: str) -> RunWindow:
        w, e = cfg.etl.window_days, cfg.etl.eval_days
        if e < 1 or w <= e:
            raise UserError(
                f"etl.window_days ({w}) must exceed etl.eval_days ({e}) >= 1: the window needs at least one training day"
            )
        days = tuple(day_range(ds, w))
        return cls(ds=ds_str(ds), days=days, train_days=days[:-e], eval_days=days[-e:])

    @property
    def first_eval_day(self) -> str:
        return self.eval_days[0]


def _shift(day: str, days: int) -> str:
    return (parse_ds(day) + dt.timedelta(days=days)).isoformat()


def _days_between(first: str, last: str) -> list[str]:
    """Days from ``first`` to ``last`` inclusive (empty if last < first)."""
    n = (parse_ds(last) - parse_ds(first)).days + 1
    return day_range(last, n) if n > 0 else []


def _with_ds(df: DataFrame, ds: str) -> DataFrame:
    from pyspark.sql import functions as F

    return df.withColumn(io.PARTITION_COLUMN, F.lit(ds))


def _positives(spark: SparkSession, cfg: Config, days, what: str) -> tuple[DataFrame, list[str]]:
    df, missing = io.read_output_days(spark, cfg, "click_positives", list(days))
    if df is None:
        raise DataError(
            data_error_message(
                "click_positives",
                f"ds={days[0]}..{days[-1]}",
                f"no partition of the {what} days exists",
                fix="run the click_positives stage (it needs raw impressions of those days)",
            )
        )
    return df, missing


# -- stages -----------------------------------------------------------------------------


def stage_click_positives(cfg: Config, spark: SparkSession, win: RunWindow) -> dict[str, Any]:
    """Click positives of day D, and of any earlier day of the window (+ the 7-day freshness
    lookback) whose partition is missing or stale (derived from raw impressions that have
    changed since: :func:`_per_day_todo`) and whose raw impressions exist."""
    from pyspark.sql import functions as F

    from etl.features import FRESHNESS_LOOKBACK_DAYS
    from etl.positives import build_click_positives

    wanted = _days_between(_shift(win.days[0], -FRESHNESS_LOOKBACK_DAYS), win.ds)
    sources = io.source_fingerprints(cfg, "click_positives", wanted, {"positive_weight": cfg.etl.positive_weight})
    todo, stale = _per_day_todo(cfg, win, {"click_positives": sources})
    impressions, no_raw = io.read_raw_days(spark, cfg, "impressions", todo, required_days=[win.ds])
    todo = [d for d in todo if d not in no_raw]
    positives = build_click_positives(impressions, cfg.etl.positive_weight)
    out = positives.withColumn(io.PARTITION_COLUMN, F.date_format("event_ds", "yyyy-MM-dd")).drop("event_ds")
    io.write_partitions(out, cfg, "click_positives", todo, sources=sources)
    # One job for every written day (a first run of a long window writes hundreds).
    written, _ = io.read_output_days(spark, cfg, "click_positives", todo)
    per_day = {str(r["event_ds"]): r["n"] for r in written.groupBy("event_ds").agg(F.count(F.lit(1)).alias("n")).collect()}
    rows = {d: per_day.get(d, 0) for d in todo}
    missing_window = [d for d in win.days if d in no_raw]
    return {
        "rows": rows[win.ds],
        "rows_by_day": rows,
        "days_written": todo,
        "stale_days_recomputed": [d for d in todo if d in stale],
        "window_days_without_impressions": missing_window,
        "lookback_days_without_impressions": [d for d in no_raw if d not in win.days],
    }


def _per_day_todo(cfg: Config, win: RunWindow, sources: dict[str, dict[str, str]]) -> tuple[list[str], list[str]]:
    """(days whose per-day outputs this run computes, those of them other than D that had a
    missing or stale partition), oldest first.

    Args:
        sources: per-day output -> (day -> :func:`etl.io.source_fingerprints` text), for the
            days the stage wants.

    The rule (docs/etl.md, "Per-day outputs and reruns"): day D always (a run or rerun of D
    recomputes D's per-day outputs); another day when a partition of one of the outputs is
    missing, or its stored source fingerprint differs from ``sources`` (the raw partitions were
    re-exported, added or removed since it was written, or its settings changed). A day whose
    raw partitions are gone entirely keeps its outputs (the caller drops it from the list when
    the raw read finds nothing: an output outlives its raw input's retention).
    """
    stale: set[str] = set()
    for table, fingerprints in sources.items():
        stale.update(io.stale_days(cfg, table, fingerprints))
    days = sorted({d for fingerprints in sources.values() for d in fingerprints})
    todo = [d for d in days if d == win.ds or d in stale]
    return todo, sorted(stale - {win.ds})


def stage_resampled_positives(cfg: Config, spark: SparkSession, win: RunWindow) -> dict[str, Any]:
    """Hot/cold resampling of the training days' click positives."""
    from pyspark.sql import functions as F

    from etl.positives import distribution_stats, item_click_counts, resample_positives

    positives, missing = _positives(spark, cfg, win.train_days, "training")
    resampled = resample_positives(positives, cfg.etl)
    io.write_partitions(_with_ds(resampled, win.ds), cfg, "resampled_positives", [win.ds])
    written = io.read_output(spark, cfg, "resampled_positives", win.ds)
    after = written.groupBy("item_id").agg(
        F.count(F.lit(1)).alias("after"), F.sum((F.col("replica") > 0).cast("long")).alias("upsampled")
    )
    # One frame of the clicked items (catalogue-sized at most) for every statistic: one Spark job.
    per_item = (
        item_click_counts(positives, "before")
        .join(after, "item_id", "left")
        .fillna({"after": 0, "upsampled": 0})
        .select("before", "after", "upsampled")
        .toPandas()
    )
    return {
        "rows_before": int(per_item["before"].sum()),
        "rows": int(per_item["after"].sum()),
        "upsampled_rows": int(per_item["upsampled"].sum()),
        "train_days_missing": missing,
        "distribution_before": distribution_stats(per_item["before"].to_numpy()),
        "distribution_after": distribution_stats(per_item["after"].to_numpy()),
        "rule": {
            "hot_threshold": cfg.etl.hot_threshold,
            "cold_threshold": cfg.etl.cold_threshold,
            "max_upsample": cfg.etl.max_upsample,
            "seed": cfg.etl.seed,
        },
    }


def stage_hard_negatives(cfg: Config, spark: SparkSession, win: RunWindow) -> dict[str, Any]:
    """Hard negatives of the window's requests (empty without a ranking log): the training
    days' feed ``train_examples``, the evaluation days' feed ``final_examples`` (the training
    on day D after the gate's evaluation); evaluation never reads them.

    Incremental (docs/etl.md, "Per-day outputs and reruns"): the per-day outputs
    ``hard_negative_candidates`` and ``shown_pairs`` are computed from raw logs for day D, and
    for any window day whose partitions are missing or stale (:func:`_per_day_todo`); the
    window's hard negatives are assembled from the per-day outputs (one scan each), so the raw
    ranking log of an unchanged earlier day is never re-read. The result equals
    :func:`etl.hard_negatives.hard_negatives_from_ranking_log` over the raw window."""
    from pyspark.sql import functions as F

    from contracts.schemas import HARD_NEGATIVE_CANDIDATES, HARD_NEGATIVES
    from etl.hard_negatives import cap_hard_negatives, cut_candidates, excluded_pairs, shown_overlap

    cand_sources = io.source_fingerprints(cfg, "hard_negative_candidates", win.days)
    pair_sources = io.source_fingerprints(cfg, "shown_pairs", win.days)
    todo, stale = _per_day_todo(cfg, win, {"hard_negative_candidates": cand_sources, "shown_pairs": pair_sources})
    ranking_days = [d for d in win.days if io.has_partition(cfg, "ranking_log", d)]
    if not ranking_days:
        # Nothing to exclude from while no window day has a ranking log (e.g. an imported
        # ratings log): only D's per-day outputs (the outputs gate checks them); the other days'
        # are computed when a ranking log first appears in a window (their partitions are missing).
        todo = [win.ds]
    impressions, no_imp = io.read_raw_days(spark, cfg, "impressions", todo, required_days=[win.ds])
    # A window day without raw impressions keeps what it has (or stays without per-day outputs).
    todo = [d for d in todo if d not in no_imp]
    stats: dict[str, Any] = {
        "per_request_cap": cfg.etl.hard_negatives_per_request,
        "per_day_outputs_computed": todo,
        "stale_days_recomputed": [d for d in todo if d in stale],
    }
    ranking_todo, _ = io.read_raw_days(spark, cfg, "ranking_log", todo)
    todo_pos, _ = io.read_output_days(spark, cfg, "click_positives", todo)
    day = F.date_format("event_ds", "yyyy-MM-dd").alias(io.PARTITION_COLUMN)
    if ranking_todo is not None and todo_pos is not None:
        cands = cut_candidates(ranking_todo, todo_pos.select("request_id"))
    else:  # no ranking log (or no click) on those days: empty candidate partitions
        cands = spark.createDataFrame([], HARD_NEGATIVE_CANDIDATES.spark_schema())
    io.write_partitions(cands.select("*", day), cfg, "hard_negative_candidates", todo, sources=cand_sources)
    shown = impressions.select("user_id", "item_id", "event_ds")
    clicked = todo_pos.select("user_id", "item_id", "event_ds") if todo_pos is not None else shown.limit(0)
    pairs = excluded_pairs(shown, clicked, keep=("event_ds",))
    io.write_partitions(pairs.select("user_key", "pair_key", day), cfg, "shown_pairs", todo, sources=pair_sources)

    stats.update(ranking_log_present=bool(ranking_days), ranking_log_days_missing=[d for d in win.days if d not in ranking_days])
    if not ranking_days:
        schema = HARD_NEGATIVES.spark_schema()
        empty = spark.createDataFrame([], schema)
        io.write_partitions(empty, cfg, "hard_negatives", [win.ds])
        log.warning("no ranking log for the window of ds=%s: hard_negatives is empty", win.ds)
        return {**stats, "rows": 0, "by_difficulty": {}, "shown_overlap_rows": 0}
    candidates, _ = io.read_output_days(spark, cfg, "hard_negative_candidates", win.days)
    excluded, _ = io.read_output_days(spark, cfg, "shown_pairs", win.days)
    hard = cap_hard_negatives(candidates, excluded.select("user_key", "pair_key"), cfg.etl.hard_negatives_per_request, cfg.etl.seed)
    io.write_partitions(_with_ds(hard, win.ds), cfg, "hard_negatives", [win.ds])
    written = io.read_output(spark, cfg, "hard_negatives", win.ds)
    agg = written.agg(
        F.count(F.lit(1)).alias("rows"),
        F.sum((F.col("difficulty") == 1).cast("long")).alias("d1"),
        F.sum((F.col("difficulty") == 2).cast("long")).alias("d2"),
        F.count_distinct("request_id").alias("requests"),
    ).first()
    stats.update(
        rows=agg["rows"], by_difficulty={"1": agg["d1"] or 0, "2": agg["d2"] or 0}, requests=agg["requests"]
    )
    if cfg.etl.verify_hard_negatives:
        # The proof the issue asks for, on the written output, by exact string comparison
        # against the raw impressions of the whole window (independent of the hashes above).
        shown, _ = io.read_raw_days(spark, cfg, "impressions", win.days, required_days=[win.ds])
        stats["shown_overlap_rows"] = shown_overlap(written, shown).count()
        if stats["shown_overlap_rows"]:
            # Never leave a partition that breaks the guarantee where training would read it.
            io.drop_partition(cfg, "hard_negatives", win.ds)
            raise DataError(
                data_error_message(
                    "hard_negatives",
                    f"ds={win.ds}",
                    "hard negatives were shown to the same user in the window",
                    count=stats["shown_overlap_rows"],
                    fix="the partition was removed; this is an ETL bug, report it with this run's inputs",
                )
            )
    return stats


def stage_vocabulary(cfg: Config, spark: SparkSession, win: RunWindow) -> dict[str, Any]:
    """Extend the latest earlier vocabulary with the values seen for day D."""
    from pyspark.sql import functions as F

    from etl.features import latest_per_key
    from etl.vocab import (
        ITEM_VOCAB,
        USER_VOCAB,
        extend_vocabulary,
        item_feature_vocab,
        observed_values,
        user_feature_vocab,
    )

    f = cfg.features
    earlier = [d for d in io.output_days(cfg, "vocabulary") if d < win.ds]
    previous = io.read_output(spark, cfg, "vocabulary", earlier[-1]) if earlier else None
    users = io.read_raw(spark, cfg, "users", win.ds)
    feature_users = _users_snapshot(spark, cfg, win)[0]
    items = latest_per_key(_catalogue_items(spark, cfg, win), "item_id")
    positives, _ = _positives(spark, cfg, win.days, "window")
    user_map = [("user_id", USER_VOCAB)] + [(c, user_feature_vocab(c)) for c in f.user_categorical]
    item_map = [("item_id", ITEM_VOCAB)] + [(c, item_feature_vocab(c)) for c in f.item_categorical]
    observed = (
        observed_values(users, user_map)
        .unionByName(observed_values(feature_users, user_map))
        .unionByName(observed_values(items, item_map))
        .unionByName(observed_values(positives, [("user_id", USER_VOCAB), ("item_id", ITEM_VOCAB)]))
    )
    vocab = extend_vocabulary(previous, observed, win.ds)
    io.write_partitions(_with_ds(vocab, win.ds), cfg, "vocabulary", [win.ds])
    written = io.read_output(spark, cfg, "vocabulary", win.ds)
    sizes = written.groupBy("vocab").agg(
        F.count("*").alias("size"),
        F.sum((F.col("first_ds") == F.lit(win.ds).cast("date")).cast("long")).alias("new"),
        F.max("id").alias("max_id"),
    )
    per_vocab = {
        r["vocab"]: {"size": r["size"], "new": r["new"], "max_id": r["max_id"]} for r in sizes.collect()
    }
    return {
        "previous_partition": earlier[-1] if earlier else None,
        "rows": sum(v["size"] for v in per_vocab.values()),
        "vocabs": per_vocab,
    }


def _users_snapshot(spark: SparkSession, cfg: Config, win: RunWindow) -> tuple[DataFrame, str]:
    """The users snapshot of the last training day (the latest earlier one if it is missing)."""
    for day in reversed(win.train_days):
        df = io.read_raw(spark, cfg, "users", day, required=False)
        if df is not None:
            return df, day
    raise DataError(
        data_error_message(
            "users",
            f"ds={win.train_days[0]}..{win.train_days[-1]}",
            "no users snapshot on any training day (user features are built from the last one)",
            fix="export the users snapshot for the training days",
        )
    )


def catalogue_days(cfg: Config, win: RunWindow) -> list[str]:
    """Days whose items snapshots give day D's catalogue: the window, and at least the
    ``etl.retire_after_days`` days ending at D (items seen then are carried forward)."""
    return day_range(win.ds, max(cfg.etl.retire_after_days, len(win.days)))


def _catalogue_items(spark: SparkSession, cfg: Config, win: RunWindow) -> DataFrame:
    snapshots, _ = io.read_raw_days(spark, cfg, "items", catalogue_days(cfg, win), required_days=[win.ds])
    return snapshots


def _item_context(spark: SparkSession, cfg: Config, win: RunWindow, vocabulary: DataFrame):
    """(latest snapshot row per item, day D's live item ids, created dates).

    Live on day D (docs/etl.md, "Catalogue"): with a complete items snapshot of D, exactly its
    items; otherwise every item in an items snapshot or clicked in the last
    ``etl.retire_after_days`` days, so an item missing from a partial snapshot is carried
    forward with its last known features until it is retired.
    """
    from pyspark.sql import functions as F

    from etl.features import item_created, latest_per_key, live_items

    snapshots = _catalogue_items(spark, cfg, win)
    latest = latest_per_key(snapshots, "item_id")
    if io.is_complete_snapshot(cfg, "items", win.ds):
        active = snapshots.filter(F.col("event_ds") == F.lit(win.ds).cast("date")).select("item_id")
    else:
        live_days = day_range(win.ds, cfg.etl.retire_after_days)
        clicked, _ = io.read_output_days(spark, cfg, "click_positives", live_days)
        active = live_items(snapshots, clicked, live_days[0])
    return latest, active, item_created(latest, vocabulary)


def stage_features(cfg: Config, spark: SparkSession, win: RunWindow) -> dict[str, Any]:
    """feature_stats, user_features (end of training days) and item_catalogue (as of the first
    evaluation day)."""
    from pyspark.sql import functions as F

    from etl.features import (
        FRESHNESS_LOOKBACK_DAYS,
        build_item_catalogue,
        build_user_features,
        fit_stats,
        freshness_counts,
        item_day_counts,
        item_num_columns,
        raw_freshness,
        raw_item_table,
        stats_dict,
        user_history,
        user_num_columns,
    )
    from etl.vocab import ITEM_VOCAB, vocab_table

    f = cfg.features
    vocabulary = io.read_output(spark, cfg, "vocabulary", win.ds)
    users, users_day = _users_snapshot(spark, cfg, win)
    items_latest, active, created = _item_context(spark, cfg, win, vocabulary)
    item_ids = vocab_table(vocabulary, ITEM_VOCAB, "item_id", "item_idx")

    fresh_days = _days_between(
        _shift(win.first_eval_day, -FRESHNESS_LOOKBACK_DAYS), _shift(win.first_eval_day, -1)
    )
    fresh_pos, _ = io.read_output_days(spark, cfg, "click_positives", fresh_days)
    train_pos, _ = _positives(spark, cfg, win.train_days, "training")

    # Users: stats over the snapshot's rows.
    u_num = user_num_columns(f)
    u_raw = users.select(*[F.col(c[len("u_num_") :]).alias(c) for c in u_num])
    u_stats = stats_dict(fit_stats(u_raw, u_num)) if u_num else {}
    history = user_history(train_pos, item_ids, f.history_length)
    user_features = build_user_features(vocabulary, users, history, f, u_stats)
    # What serving needs after day D: D's users snapshot (the last training day's when D has
    # none) and every click of the window in the history, normalised with the same statistics.
    window_pos, _ = _positives(spark, cfg, win.days, "window")
    serving_users = io.read_raw(spark, cfg, "users", win.ds, required=False) or users
    serving = build_user_features(
        vocabulary, serving_users, user_history(window_pos, item_ids, f.history_length), f, u_stats
    )

    # Items: raw table + freshness as of the first evaluation day; stats over active items.
    raw_items = raw_item_table(vocabulary, items_latest, active, f).withColumn(
        "_as_of", F.lit(win.first_eval_day).cast("date")
    )
    counts = (
        freshness_counts(item_day_counts(fresh_pos), [win.first_eval_day])
        if fresh_pos is not None
        else spark.createDataFrame([], "item_id string, as_of date, clicks_1d long, clicks_7d long")
    )
    raw_items = raw_freshness(raw_items, counts, created, "_as_of").drop("_as_of").cache()
    stats = {**u_stats, **stats_dict(fit_stats(raw_items.filter(F.col("active")), item_num_columns(f)))}
    stats_df = spark.createDataFrame(
        [(k, m, sd) for k, (m, sd) in stats.items()], "feature string, mean double, std double"
    )
    catalogue = build_item_catalogue(raw_items, f, stats)

    io.write_partitions(_with_ds(stats_df, win.ds), cfg, "feature_stats", [win.ds])
    io.write_partitions(_with_ds(user_features.orderBy("user_idx"), win.ds), cfg, "user_features", [win.ds])
    io.write_partitions(_with_ds(serving.orderBy("user_idx"), win.ds), cfg, "serving_user_features", [win.ds])
    io.write_partitions(_with_ds(catalogue.orderBy("item_idx"), win.ds), cfg, "item_catalogue", [win.ds])
    raw_items.unpersist()
    cat = io.read_output(spark, cfg, "item_catalogue", win.ds)
    uf = io.read_output(spark, cfg, "user_features", win.ds)
    u = uf.agg(F.count(F.lit(1)).alias("n"), F.sum((F.size("u_hist") > 0).cast("long")).alias("h")).first()
    i = cat.agg(F.count(F.lit(1)).alias("n"), F.sum(F.col("active").cast("long")).alias("a")).first()
    return {
        "users": u["n"],
        "users_with_history": u["h"],
        "users_snapshot_day": users_day,
        "items": i["n"],
        "active_items": i["a"],
        "catalogue": _catalogue_change(spark, cfg, win, cat),
        "freshness_as_of": win.first_eval_day,
        "feature_stats": {k: {"mean": m, "std": s} for k, (m, s) in stats.items()},
    }


def _catalogue_change(spark: SparkSession, cfg: Config, win: RunWindow, catalogue: DataFrame) -> dict[str, Any]:
    """Size of day D's live catalogue and the items added / retired since the day before."""
    from pyspark.sql import functions as F

    prev_day = _shift(win.ds, -1)
    out: dict[str, Any] = {
        "rule": "complete snapshot" if io.is_complete_snapshot(cfg, "items", win.ds) else "carried forward",
        "retire_after_days": cfg.etl.retire_after_days,
        "compared_with": None,
        "added": None,
        "retired": None,
    }
    live = catalogue.filter(F.col("active")).select("item_id")
    out["size"] = live.count()
    previous = io.read_output(spark, cfg, "item_catalogue", prev_day, required=False)
    if previous is not None:
        before = previous.filter(F.col("active")).select("item_id")
        out.update(
            compared_with=prev_day,
            added=live.join(before, "item_id", "left_anti").count(),
            retired=before.join(live, "item_id", "left_anti").count(),
        )
    return out


def stage_item_sampling(cfg: Config, spark: SparkSession, win: RunWindow) -> dict[str, Any]:
    """clicks^alpha negative-sampling table with its Vose alias table, and in-batch p_j."""
    from pyspark.sql import functions as F

    from etl.positives import item_click_counts
    from etl.sampling import popularity_sampling_table, with_alias_table

    catalogue = io.read_output(spark, cfg, "item_catalogue", win.ds)
    train_pos, _ = _positives(spark, cfg, win.train_days, "training")
    resampled = io.read_output(spark, cfg, "resampled_positives", win.ds)
    table = popularity_sampling_table(
        catalogue,
        item_click_counts(train_pos, "clicks"),
        item_click_counts(resampled, "clicks_resampled"),
        cfg.etl.alpha,
        cfg.etl.smoothing,
    )
    table = with_alias_table(spark, table)
    io.write_partitions(_with_ds(table.orderBy("item_idx"), win.ds), cfg, "item_sampling", [win.ds])
    written = io.read_output(spark, cfg, "item_sampling", win.ds)
    agg = written.agg(
        F.count("*").alias("items"),
        F.sum("neg_prob").alias("neg_prob_sum"),
        F.sum("inbatch_prob").alias("inbatch_prob_sum"),
        F.sum((F.col("neg_prob") > 0).cast("long")).alias("samplable"),
        F.max("neg_prob").alias("max_neg_prob"),
        F.max("inbatch_prob").alias("max_inbatch_prob"),
    ).first()
    return {**agg.asDict(), "alpha": cfg.etl.alpha, "smoothing": cfg.etl.smoothing}


def stage_datasets(cfg: Config, spark: SparkSession, win: RunWindow) -> dict[str, Any]:
    """train_examples (shuffled Parquet shards), final_examples (the evaluation days' clicks,
    for the training after the gate) and eval_examples (held-out days)."""
    from pyspark.sql import functions as F

    from etl.datasets import (
        build_eval_examples,
        build_train_examples,
        example_history,
        request_hard_negatives,
    )
    from etl.features import (
        FRESHNESS_FEATURES,
        FRESHNESS_LOOKBACK_DAYS,
        freshness_counts,
        item_cat_columns,
        item_day_counts,
        normalise,
        raw_freshness,
        stats_dict,
        user_cat_columns,
        user_num_columns,
    )
    from etl.vocab import ITEM_VOCAB, vocab_table

    f = cfg.features
    vocabulary = io.read_output(spark, cfg, "vocabulary", win.ds)
    item_ids = vocab_table(vocabulary, ITEM_VOCAB, "item_id", "item_idx")
    users = io.read_output(spark, cfg, "user_features", win.ds)
    catalogue = io.read_output(spark, cfg, "item_catalogue", win.ds)
    stats = stats_dict(io.read_output(spark, cfg, "feature_stats", win.ds))
    resampled = io.read_output(spark, cfg, "resampled_positives", win.ds)
    hard = io.read_output(spark, cfg, "hard_negatives", win.ds)
    train_pos, _ = _positives(spark, cfg, win.train_days, "training")
    eval_pos, eval_missing = io.read_output_days(spark, cfg, "click_positives", list(win.eval_days))
    if eval_pos is None or win.ds in eval_missing:
        raise DataError(
            data_error_message(
                "click_positives",
                f"ds={win.ds}",
                "the evaluation day's click positives are missing",
                fix="run the click_positives stage first",
            )
        )

    window_pos = train_pos.unionByName(eval_pos.select(*train_pos.columns))

    # Freshness as of each day of the window (start of day: the day's own clicks never count).
    _, _, created = _item_context(spark, cfg, win, vocabulary)
    fresh_days = _days_between(_shift(win.days[0], -FRESHNESS_LOOKBACK_DAYS), _shift(win.days[-1], -1))
    fresh_pos, _ = io.read_output_days(spark, cfg, "click_positives", fresh_days)
    day_items = window_pos.select("item_id", "event_ds").distinct()
    counts = (
        freshness_counts(item_day_counts(fresh_pos), list(win.days))
        if fresh_pos is not None
        else spark.createDataFrame([], "item_id string, as_of date, clicks_1d long, clicks_7d long")
    )
    freshness = normalise(raw_freshness(day_items, counts, created, "event_ds"), stats)
    freshness = freshness.join(F.broadcast(item_ids), "item_id").drop("item_id")
    # The same features for every catalogue item on every training day: what a sampled negative
    # of an example of day t looks like on day t (training reads it; see ITEM_DAY_FEATURES).
    train_dates = spark.createDataFrame([(dt.date.fromisoformat(d),) for d in win.train_days], "event_ds date")
    every_day = catalogue.select("item_id", "item_idx").crossJoin(F.broadcast(train_dates))
    item_days = normalise(raw_freshness(every_day, counts, created, "event_ds"), stats).drop("item_id")

    u_cols = user_cat_columns(f) + user_num_columns(f)
    i_static = item_cat_columns(f) + [
        c for c in catalogue.columns if c.startswith("i_num_") and c not in FRESHNESS_FEATURES
    ]
    # Histories look back only, so the evaluation days' clicks never reach a training day's row.
    history = example_history(window_pos, item_ids, f.history_length)
    hard_by_request = request_hard_negatives(hard, item_ids)

    def examples(positives: DataFrame) -> DataFrame:
        return build_train_examples(
            positives,
            history,
            users,
            catalogue,
            freshness,
            hard_by_request,
            u_cols,
            i_static,
            list(FRESHNESS_FEATURES),
            cfg.etl.seed,
        )

    def shuffled(df: DataFrame, rows: int) -> tuple[DataFrame, int]:
        files = max(1, math.ceil(rows / max(1, cfg.etl.shard_rows)))
        # Hash-partition on the seeded order key, then sort each shard by it: a deterministic shuffle.
        return df.repartition(files, "_order").sortWithinPartitions("_order").drop("_order"), files

    rows = resampled.count()
    train, files = shuffled(examples(resampled), rows)
    io.write_partitions(train, cfg, "train_examples", [win.ds])
    # The evaluation days' clicks as they are (no resampling: one copy, the positive weight).
    final_pos = eval_pos.select(*train_pos.columns).withColumn("replica", F.lit(0).cast("int"))
    final, _ = shuffled(examples(final_pos), final_pos.count())
    io.write_partitions(final, cfg, "final_examples", [win.ds])
    io.write_partitions(_with_ds(item_days.orderBy("event_ds", "item_idx"), win.ds), cfg, "item_day_features", [win.ds])

    evals = build_eval_examples(eval_pos, train_pos, item_ids, users, u_cols)
    io.write_partitions(evals.orderBy("user_idx"), cfg, "eval_examples", [win.ds])

    written = io.read_output(spark, cfg, "train_examples", win.ds)
    ev = io.read_output(spark, cfg, "eval_examples", win.ds)
    t = written.agg(
        F.count("*").alias("rows"),
        F.sum((F.size("hard_neg_idx") > 0).cast("long")).alias("with_hard_negatives"),
        F.sum((F.size("u_hist") > 0).cast("long")).alias("with_history"),
        F.min("event_ds").alias("first_day"),
        F.max("event_ds").alias("last_day"),
    ).first()
    fin = io.read_output(spark, cfg, "final_examples", win.ds).agg(
        F.count("*").alias("rows"), F.sum((F.size("u_hist") > 0).cast("long")).alias("with_history")
    ).first()
    e = ev.agg(
        F.count("*").alias("users"),
        F.sum(F.size("target_idx")).alias("targets"),
        F.sum(F.size("exclude_idx")).alias("excluded"),
    ).first()
    return {
        "train_rows": t["rows"],
        "train_files": files,
        "train_with_hard_negatives": t["with_hard_negatives"],
        "train_with_history": t["with_history"],
        "train_event_days": [str(t["first_day"]), str(t["last_day"])],
        "final_rows": fin["rows"],
        "final_with_history": fin["with_history"],
        "eval_users": e["users"],
        "eval_targets": e["targets"] or 0,
        "eval_excluded": e["excluded"] or 0,
        "train_days": list(win.train_days),
        "eval_days": list(win.eval_days),
    }


_STAGES: dict[str, Callable[[Config, SparkSession, RunWindow], dict[str, Any]]] = {
    "click_positives": stage_click_positives,
    "resampled_positives": stage_resampled_positives,
    "hard_negatives": stage_hard_negatives,
    "vocabulary": stage_vocabulary,
    "features": stage_features,
    "item_sampling": stage_item_sampling,
    "datasets": stage_datasets,
}


def run_stage(cfg: Config, spark: SparkSession, ds: str, stage: str) -> dict[str, Any]:
    """Run one ETL stage for run day ``ds`` and return its statistics (JSON-serialisable).

    Raises:
        UserError: unknown stage or an invalid window configuration.
        DataError: a required input partition is missing or bad.
    """
    if stage not in _STAGES:
        raise UserError(f"unknown ETL stage {stage!r} (stages: {', '.join(ETL_STAGES)})")
    win = RunWindow.for_run(cfg, ds)
    place = f"{ETL_STAGES.index(stage) + 1}/{len(ETL_STAGES)}"
    log.info("ETL stage %s %s for ds=%s started (%d-day window)", place, stage, win.ds, len(win.days))
    start = time.perf_counter()
    spark.sparkContext.setJobGroup(f"etl-{stage}", f"twotower ETL {stage} ds={win.ds}")
    stats = _STAGES[stage](cfg, spark, win)
    seconds = round(time.perf_counter() - start, 3)
    log.info("ETL stage %s %s for ds=%s done in %.1f s: %s", place, stage, win.ds, seconds, row_counts(stats))
    return {"stage": stage, "ds": win.ds, "seconds": seconds, "window": list(win.days), **stats}


_COUNT_KEYS = frozenset({"rows", "users", "items", "requests"})


def row_counts(stats: dict[str, Any]) -> str:
    """The row counts of a stage's statistics for its progress line, e.g. ``rows=1,204
    upsampled_rows=310`` or ``users=900 items=4,000``; "no row counts" when it reports none."""
    counts = [
        f"{key}={value:,}"
        for key, value in stats.items()
        if (key in _COUNT_KEYS or key.endswith("_rows")) and isinstance(value, int) and not isinstance(value, bool)
    ]
    return " ".join(counts) or "no row counts"


def run_etl(cfg: Config, spark: SparkSession, ds: str) -> dict[str, Any]:
    """Every stage for run day ``ds`` in dependency order; returns stage -> statistics."""
    return {stage: run_stage(cfg, spark, ds, stage) for stage in ETL_STAGES}
