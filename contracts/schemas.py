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
