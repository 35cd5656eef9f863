"""ETL outputs: one :class:`contracts.schemas.Table` per dataset the ETL writes under
``<data_root>/etl/<dataset>/ds=YYYY-MM-DD/`` (partition ds=D means "as of run day D" unless the
table's doc says otherwise), and the ETL stages in dependency order."""

from __future__ import annotations

from contracts.schemas import Column, Table

CLICK_POSITIVES = Table(
    name="click_positives",
    doc=(
        "Shown AND clicked impressions of day D (partition = event day), one row per "
        "(request_id, item_id). Never contains a shown-but-not-clicked row."
    ),
    unique=("request_id", "item_id"),
    columns=(
        Column("request_id", "string"),
        Column("user_id", "string"),
        Column("item_id", "string"),
        Column("ts", "timestamp"),
        Column("weight", "float64", doc="1.0, or from engagement (config etl.positive_weight)."),
        Column("liked", "bool", nullable=True),
    ),
)

RESAMPLED_POSITIVES = Table(
    name="resampled_positives",
    doc=(
        "The training days' click positives after hot down-sampling / cold up-sampling "
        "(deterministic under etl.seed). `replica` numbers the copies of an up-sampled row."
    ),
    unique=("request_id", "item_id", "replica"),
    columns=(
        Column("request_id", "string"),
        Column("user_id", "string"),
        Column("item_id", "string"),
        Column("ts", "timestamp"),
        Column("event_ds", "date", doc="Day of the click."),
        Column("weight", "float64"),
        Column("liked", "bool", nullable=True),
        Column("replica", "int32"),
    ),
)

# The columns of a hard negative (and of a candidate before the exclusions and the cap).
_HARD_NEGATIVE_COLUMNS = (
    Column("request_id", "string"),
    Column("user_id", "string"),
    Column("item_id", "string"),
    Column("event_ds", "date"),
    Column("stage_cut", "string", doc="pre_rank or rank: the stage that cut the item."),
    Column("difficulty", "int32", doc="1 = cut at pre_rank, 2 = cut at rank."),
)

HARD_NEGATIVES = Table(
    name="hard_negatives",
    doc=(
        "Items that reached a request's retrieval stage but were cut at pre_rank (difficulty 1, "
        "hard) or rank (difficulty 2, harder), for requests of the training days. Excludes any "
        "item shown to the user in the window and any item the user clicked in the window. "
        "Empty when there is no ranking log."
    ),
    unique=("request_id", "item_id"),
    columns=_HARD_NEGATIVE_COLUMNS,
)

HARD_NEGATIVE_CANDIDATES = Table(
    name="hard_negative_candidates",
    doc=(
        "Per event day: the ranking log's cut rows (pre_rank or rank, passed = false) of that "
        "day's requests with a click, before any exclusion or cap. Computed when the day is "
        "processed, and again when its raw partitions change (the partition's _SOURCE.json "
        "fingerprint, docs/etl.md); a window's hard_negatives are assembled from these and "
        "shown_pairs, never from the raw ranking log of earlier days. Empty without a ranking log."
    ),
    columns=_HARD_NEGATIVE_COLUMNS,
)

SHOWN_PAIRS = Table(
    name="shown_pairs",
    doc=(
        "Per event day: every (user, item) shown or clicked that day, as 64-bit hashes "
        "(xxhash64 of user_id; of user_id and item_id), distinct. The exclusion of a window's "
        "hard negatives is the union of its days (a hash collision can only remove a valid "
        "negative, never keep a shown item). Recomputed like hard_negative_candidates."
    ),
    columns=(Column("user_key", "int64"), Column("pair_key", "int64")),
)

ITEM_SAMPLING = Table(
    name="item_sampling",
    doc=(
        "One row per catalogue item (item_idx order): click counts over the training days, the "
        "negative-sampling probability (clicks + smoothing)^alpha normalised, its Walker/Vose alias "
        "table, and the in-batch probability p_j of the item in the resampled positive stream "
        "(for the logQ correction)."
    ),
    partitioned_by_day=True,
    unique=("item_idx",),
    columns=(
        Column("item_idx", "int64"),
        Column("item_id", "string"),
        Column("clicks", "int64"),
        Column("clicks_resampled", "int64", doc="Occurrences in resampled_positives."),
        Column("neg_prob", "float64", doc="Sums to 1 over the table."),
        Column("alias_prob", "float64", doc="Vose alias: probability of keeping slot i."),
        Column("alias_idx", "int64", doc="Vose alias: item_idx taken otherwise."),
        Column("inbatch_prob", "float64", doc="p_j = clicks_resampled / sum; 0 for items never positive."),
    ),
)

VOCABULARY = Table(
    name="vocabulary",
    doc=(
        "Stable integer ids: (vocab, value) -> id. Ids never change meaning from day to day; new "
        "values are appended after the current maximum; id 0 is out-of-vocabulary. Vocab names: "
        "`user_id`, `item_id`, `user.<feature>`, `item.<feature>`."
    ),
    unique=("vocab", "value"),
    columns=(
        Column("vocab", "string"),
        Column("value", "string"),
        Column("id", "int64"),
        Column("first_ds", "date", doc="Run day the value was first added."),
    ),
)

FEATURE_STATS = Table(
    name="feature_stats",
    doc="Normalisation statistics of numeric features (z = (x - mean) / std), per run day.",
    unique=("feature",),
    columns=(
        Column("feature", "string", doc="Output column name, e.g. u_num_activity."),
        Column("mean", "float64"),
        Column("std", "float64"),
    ),
)

USER_FEATURES = Table(
    name="user_features",
    doc=(
        "One row per user as of run day D: encoded categorical features (u_cat_*), normalised "
        "numeric features (u_num_*) and the recent clicked-item history (u_hist), built only from "
        "data before the evaluation days."
    ),
    unique=("user_idx",),
    columns=(
        Column("user_idx", "int64"),
        Column("user_id", "string"),
        Column("u_hist", "array<int64>", doc="Newest first, at most features.history_length."),
    ),
)

SERVING_USER_FEATURES = Table(
    name="serving_user_features",
    doc=(
        "user_features as serving needs them after day D: D's users snapshot (the last training "
        "day's if D has none) and a history that includes the evaluation days' clicks, normalised "
        "with the same feature_stats. Copied into the published version; never used to train or "
        "evaluate."
    ),
    unique=USER_FEATURES.unique,
    columns=USER_FEATURES.columns,
)

ITEM_CATALOGUE = Table(
    name="item_catalogue",
    doc=(
        "The catalogue to embed and index as of run day D: encoded categorical features (i_cat_*), "
        "normalised numeric features (i_num_*) including freshness: i_num_age_days, "
        "i_num_clicks_1d, i_num_clicks_7d."
    ),
    unique=("item_idx",),
    columns=(
        Column("item_idx", "int64"),
        Column("item_id", "string"),
        Column("active", "bool", doc="In the day's items snapshot (only active items are indexed)."),
    ),
)

ITEM_DAY_FEATURES = Table(
    name="item_day_features",
    doc=(
        "Freshness features (i_num_age_days, i_num_clicks_1d, i_num_clicks_7d, normalised as in "
        "item_catalogue) of every catalogue item as of each training day (start of day). Training "
        "gives a sampled negative the features as of its example's day, as train_examples gives "
        "the positive: with the catalogue's as-of-D values instead, negatives differ from "
        "positives by date alone and the model learns that shortcut."
    ),
    unique=("item_idx", "event_ds"),
    columns=(
        Column("item_idx", "int64"),
        Column("event_ds", "date", doc="The training day the features are as of."),
    ),
)

TRAIN_EXAMPLES = Table(
    name="train_examples",
    doc=(
        "Encoded resampled positives of the training days joined with user features (u_*), the "
        "positive item's features (i_*, as of the click's day) and up to "
        "etl.hard_negatives_per_request hard-negative item ids of the same request. Written as "
        "several Parquet files, row order shuffled, for streaming in large Arrow batches."
    ),
    columns=(
        Column("user_idx", "int64"),
        Column("item_idx", "int64"),
        Column("weight", "float32"),
        Column("event_ds", "date"),
        Column("label_liked", "float32", doc="1.0 if liked, else 0.0 (multi-objective towers)."),
        Column("hard_neg_idx", "array<int64>", doc="Hard-negative item ids of the request (may be empty)."),
        Column("u_hist", "array<int64>"),
    ),
)

FINAL_EXAMPLES = Table(
    name="final_examples",
    doc=(
        "The evaluation days' clicks in the train_examples format (not resampled; hard negatives "
        "of the same request; item features as of the click's day; the user's history of clicks "
        "before the click). Never read by the evaluation: training continues on these rows after "
        "the gate's held-out evaluation, so the published weights have seen day D."
    ),
    columns=TRAIN_EXAMPLES.columns,
)

EVAL_EXAMPLES = Table(
    name="eval_examples",
    doc=(
        "Held-out evaluation, one row per user with clicks on the evaluation days (never trained "
        "on): the clicked items (targets), the items the user clicked on the training days "
        "(excluded from ranking) and the user features as of the end of the training days."
    ),
    unique=("user_idx",),
    columns=(
        Column("user_idx", "int64"),
        Column("user_id", "string"),
        Column("target_idx", "array<int64>"),
        Column("exclude_idx", "array<int64>"),
        Column("u_hist", "array<int64>"),
    ),
)

ETL_OUTPUTS = {
    t.name: t
    for t in (
        CLICK_POSITIVES,
        RESAMPLED_POSITIVES,
        HARD_NEGATIVE_CANDIDATES,
        SHOWN_PAIRS,
        HARD_NEGATIVES,
        ITEM_SAMPLING,
        VOCABULARY,
        FEATURE_STATS,
        USER_FEATURES,
        SERVING_USER_FEATURES,
        ITEM_CATALOGUE,
        ITEM_DAY_FEATURES,
        TRAIN_EXAMPLES,
        FINAL_EXAMPLES,
        EVAL_EXAMPLES,
    )
}

# The ETL stages in dependency order (each stage reads only outputs of stages before it): the
# order the pipeline runs them and the report lists their steps (``etl_<stage>``).
ETL_STAGE_ORDER: tuple[str, ...] = (
    "click_positives",
    "resampled_positives",
    "hard_negatives",
    "vocabulary",
    "features",
    "item_sampling",
    "datasets",
)

# Prefixes of dataset-dependent feature columns in ETL outputs.
USER_CAT_PREFIX = "u_cat_"
USER_NUM_PREFIX = "u_num_"
ITEM_CAT_PREFIX = "i_cat_"
ITEM_NUM_PREFIX = "i_num_"
FRESHNESS_FEATURES = ("i_num_age_days", "i_num_clicks_1d", "i_num_clicks_7d")
