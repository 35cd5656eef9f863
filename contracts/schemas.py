"""Data contracts as code: every table the pipeline reads or writes, as named constants.

One neutral definition per table (:class:`Table` of :class:`Column`) renders to a pyarrow
schema (simulator, importers, training) and a Spark ``StructType`` (ETL, quality), and
``docs/data-contracts.md`` is generated from these constants (``python -m twotower.contract_docs``;
a test fails when the document is stale).

Raw tables are Parquet partitioned by day: ``<data_root>/raw/<table>/ds=YYYY-MM-DD/``. The
partition column ``ds`` lives in the path, not in the files. User and item feature columns
are not fixed here: ``[features]`` in the config declares which columns of the ``users`` and
``items`` snapshots are categorical or numeric, and :func:`users_table` / :func:`items_table`
build the contract for a given config.

ETL outputs use prefixed feature columns so training discovers them without knowing the
dataset: ``u_cat_<name>`` / ``i_cat_<name>`` (int64 vocabulary ids, 0 = out of vocabulary),
``u_num_<name>`` / ``i_num_<name>`` (float32, normalised), ``u_hist`` (array<int64> of the
user's most recent clicked item ids, newest first).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

# Logical types and their renderings.
_ARROW = {
    "string": "string",
    "int32": "int32",
    "int64": "int64",
    "float32": "float32",
    "float64": "float64",
    "bool": "bool",
    "timestamp": "timestamp[us, tz=UTC]",
    "date": "date32",
    "array<int64>": "list<int64>",
}
TYPES = tuple(_ARROW)

RANKING_STAGES = ("retrieval", "pre_rank", "rank")
OOV_ID = 0  # every vocabulary reserves id 0 for out-of-vocabulary / padding


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool = False
    required: bool = True  # False: the column may be absent from a dataset
    doc: str = ""

    def __post_init__(self) -> None:
        if self.type not in _ARROW:
            raise ValueError(f"column {self.name}: unknown logical type {self.type!r} (known: {', '.join(TYPES)})")


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    doc: str = ""
    partitioned_by_day: bool = True
    # Columns whose combination is unique within one partition.
    unique: tuple[str, ...] = field(default=())

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def required_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"table {self.name} has no column {name!r} (columns: {', '.join(self.names)})")

    def arrow_schema(self, present: Iterable[str] | None = None):
        """pyarrow schema; ``present`` limits optional columns to those a dataset has."""
        import pyarrow as pa

        keep = set(present) if present is not None else None
        fields = []
        for c in self.columns:
            if keep is not None and not c.required and c.name not in keep:
                continue
            fields.append(pa.field(c.name, _arrow_type(c.type), nullable=c.nullable))
        return pa.schema(fields)

    def spark_schema(self, present: Iterable[str] | None = None):
        """Spark StructType; ``present`` limits optional columns to those a dataset has."""
        from pyspark.sql import types as T

        spark_types = {
            "string": T.StringType(),
            "int32": T.IntegerType(),
            "int64": T.LongType(),
            "float32": T.FloatType(),
            "float64": T.DoubleType(),
            "bool": T.BooleanType(),
            "timestamp": T.TimestampType(),
            "date": T.DateType(),
            "array<int64>": T.ArrayType(T.LongType(), containsNull=False),
        }
        keep = set(present) if present is not None else None
        return T.StructType(
            [
                T.StructField(c.name, spark_types[c.type], nullable=c.nullable)
                for c in self.columns
                if keep is None or c.required or c.name in keep
            ]
        )


def _arrow_type(logical: str):
    import pyarrow as pa

    return {
        "string": pa.string(),
        "int32": pa.int32(),
        "int64": pa.int64(),
        "float32": pa.float32(),
        "float64": pa.float64(),
        "bool": pa.bool_(),
        "timestamp": pa.timestamp("us", tz="UTC"),
        "date": pa.date32(),
        "array<int64>": pa.list_(pa.int64()),
    }[logical]


# --------------------------------------------------------------------------------------
# Raw inputs
# --------------------------------------------------------------------------------------

IMPRESSIONS = Table(
    name="impressions",
    doc="One row per item shown in a request. Clicks are only possible on shown rows.",
    unique=("request_id", "item_id"),
    columns=(
        Column("request_id", "string", doc="Feed request (one page of results)."),
        Column("user_id", "string"),
        Column("item_id", "string"),
        Column("ts", "timestamp", doc="UTC time of the impression; inside the partition's day."),
        Column("position", "int32", nullable=True, doc="0-based display position; null if unknown."),
        Column("clicked", "bool", doc="The user clicked the shown item."),
        Column("liked", "bool", nullable=True, required=False, doc="Second engagement signal (optional)."),
        Column("dwell_ms", "int64", nullable=True, required=False, doc="Dwell time after a click (optional)."),
    ),
)

RANKING_LOG = Table(
    name="ranking_log",
    doc=(
        "One row per (request, item, stage) for items that entered the funnel. An item that "
        "reached `pre_rank` also has a `retrieval` row with passed=true. A day may have no "
        "ranking log at all (e.g. MIND): the pipeline then runs without hard negatives."
    ),
    unique=("request_id", "item_id", "stage"),
    columns=(
        Column("request_id", "string"),
        Column("user_id", "string"),
        Column("item_id", "string"),
        Column("ts", "timestamp"),
        Column("stage", "string", doc=f"One of {', '.join(RANKING_STAGES)}."),
        Column("score", "float64", nullable=True, doc="The stage's model score, if logged."),
        Column("passed", "bool", doc="The item survived this stage."),
    ),
)

_USERS_BASE = (Column("user_id", "string", doc="Daily snapshot: one row per known user."),)
_ITEMS_BASE = (
    Column("item_id", "string", doc="Daily snapshot: one row per item in the catalogue."),
    Column(
        "created_at",
        "timestamp",
        nullable=True,
        required=False,
        doc="When the item was published; if absent, the ETL uses the first day it was seen.",
    ),
)


def users_table(categorical: Iterable[str] = (), numeric: Iterable[str] = ()) -> Table:
    """The ``users`` contract for the features the config declares."""
    cols = _USERS_BASE + tuple(Column(n, "string", nullable=True, doc="categorical feature") for n in categorical)
    cols += tuple(Column(n, "float64", nullable=True, doc="numeric feature") for n in numeric)
    return Table("users", cols, doc="Daily snapshot of users with declared feature columns.", unique=("user_id",))


def items_table(categorical: Iterable[str] = (), numeric: Iterable[str] = ()) -> Table:
    """The ``items`` contract for the features the config declares."""
    cols = _ITEMS_BASE + tuple(Column(n, "string", nullable=True, doc="categorical feature") for n in categorical)
    cols += tuple(Column(n, "float64", nullable=True, doc="numeric feature") for n in numeric)
    return Table("items", cols, doc="Daily snapshot of the catalogue with declared feature columns.", unique=("item_id",))


def raw_tables(features) -> dict[str, Table]:
    """All raw tables for a :class:`core.config.FeaturesConfig`."""
    return {
        "impressions": IMPRESSIONS,
        "ranking_log": RANKING_LOG,
        "users": users_table(features.user_categorical, features.user_numeric),
        "items": items_table(features.item_categorical, features.item_numeric),
    }


RAW_TABLE_NAMES = ("impressions", "ranking_log", "users", "items")
OPTIONAL_RAW_TABLES = ("ranking_log",)

# --------------------------------------------------------------------------------------
# ETL outputs (partition ds=D means "as of run day D" unless the doc says otherwise)
# --------------------------------------------------------------------------------------

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
