"""Typed, frozen configuration for every entry point (CLI, DAG tasks, tests, benchmarks): one
frozen dataclass per ``[section]`` of the TOML file, each key with its type, default and a
comment (``docs/config.md`` is generated from them). Built once per process by
:func:`core.config_load.load_config` (file + environment overrides) and passed explicitly.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal


class ConfigError(ValueError):
    """A configuration file or override is invalid; the message names the key."""


# --------------------------------------------------------------------------------------
# Sections. Each stage owns its section; defaults are the embedded single-machine setup.
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PathsConfig:
    """Where data, published artifacts and reports live: local files, or an S3-compatible
    object store with the three roots as this machine's working copy (``remote``)."""

    # Raw logs, quarantine, ETL outputs, candidate models, simulator truth.
    data_root: Path = Path("var/data")
    # Published versions (<artifact_root>/two_tower/<ds>/) and the LATEST pointer.
    artifact_root: Path = Path("var/artifacts")
    # Run reports, stage statistics, data-quality summaries and Data Docs.
    reports_root: Path = Path("var/reports")
    # "" keeps everything in the three roots above. "s3://bucket/prefix" puts it in an
    # S3-compatible object store (data/, reports/, artifacts/ under the prefix): Spark reads and
    # writes it directly (s3a://, needs hadoop-aws on Spark's classpath), the other steps pull
    # what they read into the roots above and push what they wrote (storage.sync).
    # Credentials come from the AWS default chain (AWS_ACCESS_KEY_ID, a profile, a role).
    remote: str = ""
    # S3 endpoint URL for MinIO, Ceph or a test server ("http://host:9000"); "" means AWS.
    s3_endpoint: str = ""
    # Region of the bucket.
    s3_region: str = "us-east-1"


@dataclass(frozen=True)
class SparkConfig:
    """SparkSession settings. ``master`` switches local mode to a cluster with no code change."""

    # local[*] on one machine; spark://host:7077 (or yarn, k8s://...) on a cluster.
    master: str = "local[*]"
    # Application name shown in the Spark UI / history server.
    app_name: str = "twotower"
    # JVM heap of the driver (in local mode the driver does all the work).
    driver_memory: str = "4g"
    # spark.sql.shuffle.partitions: small on one machine, ~2-3x total cores on a cluster.
    shuffle_partitions: int = 8
    # Extra spark.* settings passed through verbatim (e.g. S3A credentials provider on a cluster).
    conf: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FeaturesConfig:
    """Which columns of the ``users``/``items`` snapshots are features, and of what kind.

    Any dataset's features can be used by naming them here; the ETL encodes categorical
    columns through persisted vocabularies and normalises numeric ones.
    """

    # Categorical columns of the users snapshot (encoded through persisted vocabularies).
    user_categorical: tuple[str, ...] = ("region", "age_band")
    # Numeric columns of the users snapshot (z-normalised with stored statistics).
    user_numeric: tuple[str, ...] = ("activity",)
    # Categorical columns of the items snapshot.
    item_categorical: tuple[str, ...] = ("category", "subcategory")
    # Numeric columns of the items snapshot (freshness features are added by the ETL).
    item_numeric: tuple[str, ...] = ("quality",)
    # Declared valid ranges of numeric features [low, high], checked by data quality.
    numeric_ranges: dict[str, tuple[float, float]] = field(
        default_factory=lambda: {"activity": (0.0, 1.0e6), "quality": (-10.0, 10.0)}
    )
    # Length of the recent-clicks history used by the user tower (0 disables it).
    history_length: int = 20


@dataclass(frozen=True)
class SimulatorConfig:
    """Defaults for ``twotower simulate`` (presets are defined in ``logsim.presets``)."""

    # tiny, small, medium or large (logsim/presets.py).
    preset: str = "small"
    # Seed of the simulated world; a data root holds one world (preset + seed).
    seed: int = 7
    # Days simulated by ``make run`` before the run day (the training window needs history).
    days: int = 7
    # First simulated day (YYYY-MM-DD).
    start: str = "2026-11-01"


@dataclass(frozen=True)
class EtlConfig:
    """Spark ETL settings (see docs/etl.md for the rules these parametrise)."""

    # Training window: the W days ending at the run day D.
    window_days: int = 7
    # Weight of a click positive: "constant" (1.0) or "engagement" (1 + liked).
    positive_weight: Literal["constant", "engagement"] = "constant"
    # Resampling: items with more than ``hot_threshold`` clicks in the window are kept with
    # probability sqrt(hot_threshold / clicks); items with fewer than ``cold_threshold`` are
    # replicated up to ceil(cold_threshold / clicks) times, at most ``max_upsample``.
    hot_threshold: int = 200
    # Items with fewer window clicks than this are up-sampled (see hot_threshold).
    cold_threshold: int = 3
    # At most this many copies of a cold item's click.
    max_upsample: int = 3
    # Seed of the resampling draws (deterministic reruns).
    seed: int = 17
    # Negative-sampling distribution: p_i ∝ (clicks_i + smoothing) ** alpha over the catalogue.
    alpha: float = 0.75
    # Added to every active item's clicks so never-clicked catalogue items can be drawn.
    smoothing: float = 1.0
    # Hard negatives kept per request (cut at pre-rank or rank), at most.
    hard_negatives_per_request: int = 4
    # Held-out evaluation: the clicks of the last ``eval_days`` of the window are never trained on.
    eval_days: int = 1
    # Catalogue retirement: an item stays in the catalogue of day D (indexed, sampled as a
    # negative, a candidate in evaluation) while it appeared in an items snapshot or was clicked
    # in the last ``retire_after_days`` days, with its last known features. An items partition
    # marked complete by its producer (``storage.layout.COMPLETE_SNAPSHOT_MARKER``) retires
    # every item it does not list at once.
    retire_after_days: int = 90
    # Parquet training shards: target rows per file.
    shard_rows: int = 262_144
    # Also re-check the written hard negatives inside the ETL stage against the window's raw
    # impressions (exact string join) and fail the stage if any was shown to its user. Off by
    # default: the exclusion holds by construction (anti-join with the per-day shown pairs) and
    # the outputs gate proves the same property independently every day (check
    # disjoint_from_shown_or_clicked, before anything is trained or published); on, the stage
    # joins the window's impressions a second time. The stage proves it regardless when
    # quality.enabled is false (no gate runs then).
    verify_hard_negatives: bool = False


@dataclass(frozen=True)
class QualityConfig:
    """Data-quality gates (Great Expectations) and quarantine thresholds."""

    # false skips both gates (reported as "skipped"; for experiments, never in production).
    enabled: bool = True
    # Rows failing row-level checks are quarantined when at most this fraction of the
    # partition fails; above it the check is critical and the run stops.
    quarantine_max_fraction: float = 0.001
    # ... but never fewer than this many rows: the budget is max(fraction x rows, min_rows),
    # so one bad row of a snapshot of a few hundred rows can still be quarantined.
    quarantine_min_rows: int = 5
    # Clicks on items missing from the day's items snapshot: above this share of the day's
    # clicks the run stops (the model could not learn or index them); at or below, a warning.
    unknown_item_click_max_fraction: float = 0.01
    # Day volume must lie within [low, high] x the median of the trailing days.
    volume_low: float = 0.5
    # Upper bound of the day-volume check, as a multiple of the trailing median.
    volume_high: float = 2.0
    # How many earlier days form the trailing median of the volume check.
    volume_trailing_days: int = 7
    # Duplicated (request_id, item_id) impressions above this fraction of the day are critical;
    # at or below it they are a warning (the ETL keeps one row per key).
    duplicate_max_fraction: float = 0.001
    # Absolute tolerance for "probabilities sum to 1" and the alias-table reconstruction.
    probability_tolerance: float = 1.0e-6
    # Rows of a failing check shown as examples in error messages and the JSON summary.
    example_rows: int = 5


@dataclass(frozen=True)
class TrainingConfig:
    """Two-tower model and training loop."""

    # Output dimension of both towers (the FAISS vector size).
    embedding_dim: int = 64
    # Dimension of the user-id and item-id embeddings.
    id_dim: int = 64
    # Dimension of each categorical feature embedding.
    feature_dim: int = 16
    # Hidden layer sizes of each tower's MLP.
    hidden: tuple[int, ...] = (128,)
    # Scores are cosine / temperature.
    temperature: float = 0.05
    # SENet re-weighting of each tower's field embeddings (squeeze, excitation, re-weight).
    senet: bool = False
    # One tower head per objective: "click" and optionally "like" (label_liked).
    objectives: tuple[str, ...] = ("click",)
    # Loss weight of each objective (same order as objectives).
    objective_weights: tuple[float, ...] = (1.0,)
    # inbatch_softmax (with logQ), listwise softmax over sampled negatives, pointwise cosine,
    # triplet_hinge or triplet_logistic.
    loss: Literal["inbatch_softmax", "listwise", "pointwise", "triplet_hinge", "triplet_logistic"] = (
        "inbatch_softmax"
    )
    # p_i of the logQ correction: from the ETL's counts, a streaming frequency estimator, or off.
    logq: Literal["counts", "streaming", "off"] = "counts"
    # Extra sampled negatives per example (catalogue clicks^alpha draws and hard negatives).
    num_negatives: int = 4
    # Share of num_negatives taken from the ranking log's hard negatives (rest: easy draws).
    hard_negative_fraction: float = 0.5
    # Negatives per positive for the pointwise loss (1:2 or 1:3 typical).
    pointwise_negative_ratio: int = 2
    # Margin m of the triplet hinge loss max(0, cos(a,b-) + m - cos(a,b+)).
    triplet_margin: float = 0.2
    # Scale sigma of the triplet logistic loss log(1 + exp(sigma (cos(a,b-) - cos(a,b+)))).
    triplet_sigma: float = 10.0
    # Examples per optimizer step (per worker under torchrun).
    batch_size: int = 1024
    # Passes over the window. More passes overfit: recall@50 after 1 / 2 epochs is 0.322 / 0.306
    # on `medium` (before the negatives fix, 0.468 / 0.405 / 0.225 after 1 / 2 / 4 on `small`),
    # see docs/training.md.
    epochs: int = 1
    # At least this many optimizer steps: small days get more passes (epochs = max(epochs,
    # ceil(min_steps / steps per epoch))), large days keep ``epochs``.
    min_steps: int = 80
    # Progressive validation: after the gate's evaluation on day D (the candidate trained through
    # D-1), training continues on D's own clicks (ETL final_examples) before export, so the
    # published weights have seen D. false publishes the evaluated candidate as it is.
    train_on_eval_days: bool = True
    # Passes over D's clicks in that continued training; 0 = as many as the window got.
    final_epochs: int = 0
    # At most this many passes (caps the min_steps rule on very small windows; ``epochs`` wins
    # when larger).
    max_epochs: int = 20
    # Batch-size rule: a window with fewer than this many batches of ``batch_size`` trains with
    # the largest power of two giving at least this many batches per pass (never a failure).
    min_batches_per_epoch: int = 8
    # Adam learning rate of the dense parameters (MLPs, feature embeddings).
    lr: float = 0.003
    # SparseAdam learning rate of the id embedding tables.
    sparse_lr: float = 0.05
    # Example weight halves every this many days of age before the last trained day (0 = no
    # time decay): recent clicks count more, so what is rising now ranks higher tomorrow.
    time_decay_half_life_days: float = 0.0
    # Example-age feature (Covington et al. 2016): the user tower embeds each example's age in
    # days (clamped to this many buckets); serving and evaluation use age 0. 0 = off.
    example_age_buckets: int = 0
    # Weight of examples whose positive is already in the user's click history (re-consumption;
    # evaluation only targets items new to the user). On tiny, 0.0 lowered recall@50 (0.63 vs
    # 0.68): re-clicks still carry the user's taste, so they count fully by default.
    repeat_click_weight: float = 1.0
    # Initial std of the id tables. 0 = an id never trained (a new item) embeds as zero, so it
    # is scored by its features alone rather than by random noise.
    id_init_std: float = 0.05
    # Start from the published LATEST model (known ids kept, new ids initialised).
    warm_start: bool = True
    # Seed of initialisation, shuffling and negative draws (deterministic runs).
    seed: int = 1234
    # auto = CUDA when available, else CPU.
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # K values of recall@K in the evaluation.
    eval_k: tuple[int, ...] = (10, 50, 100)
    # Catalogue negatives drawn from the clicks^alpha alias table and shared by the whole batch
    # (in-batch softmax only; per-example losses draw their own). 0 disables them.
    shared_negatives: int = 512
    # Pool the user's recent clicked items (u_hist) into the user tower.
    use_history: bool = True
    # Multi-worker (torchrun): gather in-batch candidates from every worker into one softmax.
    gather_negatives: bool = True
    # Arrow record-batch size when streaming the training shards (rows).
    read_batch_rows: int = 65_536
    # torch intra-op threads; 0 = one per available core.
    threads: int = 0
    # Tail items for recall@50_tail: items outside the most-clicked head holding this share of
    # the training clicks. Cold items (recall@50_cold): no training clicks at all.
    head_click_share: float = 0.5
    # Popularity prior of the served score: score = cos / temperature + beta * log(1 + c_i), c_i
    # = distinct users who clicked item i in the last prior_days days up to the last day the
    # weights saw (the logQ-corrected softmax removes popularity from cos by design). "off":
    # beta = 0, today's model and index. "validated": every day's evaluation records recall@50
    # for each beta of prior_grid, and day D uses the beta with the best recall@50 pooled over
    # the records of the prior_history_days days before D (never D itself; 0 without a record);
    # the gate's figure and the published index use that beta (docs/training.md, "Popularity
    # prior").
    prior: Literal["off", "validated"] = "off"
    # L of the prior's counts, in days (7 was better than 28 on the MovieLens validation fold).
    prior_days: int = 7
    # Betas the daily evaluation scores (units of cos / temperature); include 0 (no prior).
    prior_grid: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
    # Earlier days whose grid records day D pools to choose its beta.
    prior_history_days: int = 7
    # Settings search: "validated" also trains, beside the day's candidate, one alternate per
    # value of search_lr, search_temperature and search_embedding_dim (one setting changed from
    # the configured ones at a time), each trained and evaluated on the day's held-out set exactly
    # as the candidate is, and records recall@50 per setting; day D trains with the setting of best
    # recall@50 pooled over the records of the search_history_days days before D (never D
    # itself; the configured settings without a record). "off": the configured settings, nothing
    # extra trained (docs/training.md, "Settings search").
    search: Literal["off", "validated"] = "off"
    # Adam learning rates (dense parameters) the search tries besides ``lr``.
    search_lr: tuple[float, ...] = (0.001, 0.01)
    # Temperatures the search tries besides ``temperature``.
    search_temperature: tuple[float, ...] = (0.05, 0.2)
    # Output dimensions the search tries besides ``embedding_dim``.
    search_embedding_dim: tuple[int, ...] = (32, 128)
    # No alternate starts once the day's search has taken this many seconds (wall clock); the
    # ones not trained are recorded and cannot be chosen while a record in the pool lacks them.
    search_budget_seconds: float = 900.0
    # Earlier days whose search records day D pools to choose its settings.
    search_history_days: int = 7
    # A searched setting replaces the configured ones only when its pooled recall@50 beats
    # theirs by more than this many pooled standard errors of their figure (0 = the plain best):
    # on a held-out set of a few dozen users the ranking of settings is mostly noise.
    search_min_gain_se: float = 1.0
    # Streaming frequency estimator (logq = "streaming"): buckets H (0 = 2 x item table size),
    # hash functions m and learning rate alpha (Yi et al. 2019, Algorithm 3).
    freq_buckets: int = 0
    # Hash functions m of the streaming frequency estimator.
    freq_hashes: int = 2
    # Learning rate alpha of the streaming frequency estimator.
    freq_alpha: float = 0.01


@dataclass(frozen=True)
class IndexConfig:
    """FAISS index choice by catalogue size (see docs/artifacts.md and bench/bench_index.py).

    Cosine similarity = inner product on L2-normalised vectors. Catalogues of at most
    ``flat_max_items`` get an exact Flat index; larger ones ``kind_above_flat``.
    """

    # Exact search up to this many items: below it exact search is fast enough and no ANN setting
    # matched its recall at a worthwhile speed-up (bench/bench_index.py; figures in docs/benchmarks.md).
    flat_max_items: int = 100_000
    # Index kind for catalogues above flat_max_items.
    kind_above_flat: Literal["hnsw", "ivf_flat", "ivf_pq"] = "ivf_flat"
    # HNSW graph degree M.
    hnsw_m: int = 32
    # HNSW efConstruction (build-time beam width).
    hnsw_ef_construction: int = 80
    # Starting efSearch (raised by tuning, see tune_target_recall).
    hnsw_ef_search: int = 128
    # Inverted lists; 0 = 4 * sqrt(n_items) (then capped by ivf_min_points_per_list).
    ivf_nlist: int = 0
    # Starting nprobe (raised by tuning, see tune_target_recall).
    ivf_nprobe: int = 16
    # Search-time parameter tuning at build: nprobe / efSearch are doubled from their starting
    # value until ANN recall@recall_k on half of the held-out users reaches this target (the other
    # half measures the recall stored in the manifest). 0 disables tuning.
    tune_target_recall: float = 0.97
    # k-means wants at least this many training points per inverted list; nlist is capped
    # to n_items // ivf_min_points_per_list (and IVF falls back to Flat below 16 lists).
    ivf_min_points_per_list: int = 39
    # IVF-PQ: sub-quantizers per vector (must divide the dimension).
    pq_m: int = 16
    # IVF-PQ: bits per sub-quantizer code.
    pq_nbits: int = 8
    # K of the ANN recall@K (against exact search) measured on the held-out users.
    recall_k: int = 100


@dataclass(frozen=True)
class PublishConfig:
    """Versioned publishing and its quality gate."""

    # Published versions kept; older ones are deleted (never the one LATEST points to).
    retention: int = 7
    # Reject a candidate whose recall@50 is more than this fraction below the published model's
    # recall@50 on the same held-out set.
    max_recall_drop: float = 0.1
    # Reject a candidate whose ANN recall@K against exact search is below this.
    min_ann_recall: float = 0.95
    # Reject a candidate (a first version too) whose held-out recall@50 is below this multiple
    # of the best popularity baseline's on the same day: 1.0 = it must at least match
    # recommending popular items. 0 = off (the default: a first model on a few days of a tiny
    # simulated catalogue often loses to popularity); the manifest and the gate reason still
    # flag a model below the baseline. configs/mind.toml sets 1.0.
    min_recall_vs_best_baseline: float = 0.0
    # The gate decides with the held-out set's standard error of recall@50: a threshold crossed
    # by less than gate_z x SE (of the difference, sqrt(se_a^2 + se_b^2)) is "undecided", not a
    # regression or a loss to popularity, and the gate reason says the held-out set is too small.
    gate_z: float = 1.0
    # Fewer scored held-out users than this: the recall rules do not decide (the gate says the
    # held-out set is too small to judge; the ANN rule still applies).
    min_eval_users: int = 100
    # Whether a later day may publish when an earlier day in the window failed.
    allow_gaps: bool = False
    # Held-out users queried by the smoke test before a version is renamed into place.
    smoke_queries: int = 8


@dataclass(frozen=True)
class Config:
    """The whole configuration. Build with :func:`load_config`."""

    paths: PathsConfig = field(default_factory=PathsConfig)
    spark: SparkConfig = field(default_factory=SparkConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    simulator: SimulatorConfig = field(default_factory=SimulatorConfig)
    etl: EtlConfig = field(default_factory=EtlConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    index: IndexConfig = field(default_factory=IndexConfig)
    publish: PublishConfig = field(default_factory=PublishConfig)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (paths as strings, tuples as lists)."""
        return _jsonable(dataclasses.asdict(self))

    def hash(self) -> str:
        """sha256 of the canonical JSON form: identifies the settings a model was built with."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()

    def replace(self, **sections: Any) -> Config:
        """A copy with whole sections replaced, e.g. ``cfg.replace(etl=dataclasses.replace(cfg.etl, window_days=3))``."""
        return dataclasses.replace(self, **sections)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj
