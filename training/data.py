"""Readers of the ETL output tables training and evaluation use (contracts.schemas): the
partition files, the item catalogue, the time-dependent item features, the held-out evaluation
set, the sampling table, click counts and the embedding-table sizes.

Everything is read with pyarrow and converted column-wise with numpy (training.columns): no
per-row Python. The training shards themselves are streamed by :mod:`training.stream`.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
from torch import Tensor

from contracts.days import ds_str
from contracts.outputs import ITEM_CAT_PREFIX, USER_CAT_PREFIX
from core.errors import DataError, data_error_message
from storage.layout import Layout
from training.columns import FeatureColumns, column_values, float_matrix, int_matrix, list_csr, pad_lists

log = logging.getLogger(__name__)


def partition_files(layout: Layout, table: str, ds: str) -> list[Path]:
    """Parquet files of one ETL output partition, sorted; a clear DataError when missing."""
    root = layout.path_for(table, ds)
    files = sorted(p for p in root.rglob("*.parquet") if not any(part.startswith((".", "_")) for part in p.relative_to(root).parts))
    if not files:
        raise DataError(
            data_error_message(
                table,
                f"ds={ds_str(ds)}",
                f"no Parquet files under {root}",
                fix=f"run the ETL for this day first (twotower etl --ds {ds_str(ds)})",
            )
        )
    return files


def read_table(layout: Layout, table: str, ds: str, columns: list[str] | None = None) -> pa.Table:
    files = partition_files(layout, table, ds)
    schema = pq.read_schema(files[0])
    if columns is not None:
        missing = [c for c in columns if c not in schema.names]
        if missing:
            raise DataError(
                data_error_message(
                    table, f"ds={ds_str(ds)}", f"missing columns {missing} (has {schema.names})", column=missing[0],
                    fix="rerun the ETL with the current contracts (contracts/outputs.py)",
                )
            )
    return pa.concat_tables([pq.read_table(f, columns=columns) for f in files], promote_options="default")


def schema_names(layout: Layout, table: str, ds: str) -> list[str]:
    return file_schema_names(partition_files(layout, table, ds))


def final_example_files(layout: Layout, ds: str) -> list[Path]:
    """The ``final_examples`` files of day ds (the day's clicks in the train_examples format),
    or none when the partition is absent (ETL output of an older release, or a first run)."""
    try:
        return partition_files(layout, "final_examples", ds)
    except DataError:
        return []


def file_schema_names(files: list[Path]) -> list[str]:
    """Column names of a partition (its first file's schema)."""
    return pq.read_schema(files[0]).names


def count_rows(files: list[Path]) -> int:
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


def int_column(path: Path, column: str) -> np.ndarray:
    """One int64 column of one Parquet file."""
    return pq.read_table(path, columns=[column]).column(column).to_numpy().astype(np.int64)


@dataclass
class Catalogue:
    """Item features as dense arrays indexed by item_idx (row 0 = OOV, all zeros)."""

    item_idx: np.ndarray  # [N] catalogue item ids
    item_id: np.ndarray  # [N] object: the string ids
    active: np.ndarray  # [N] bool
    cat_by_idx: Tensor  # [max_idx + 1, Ci]
    num_by_idx: Tensor  # [max_idx + 1, Ni]
    cat_columns: tuple[str, ...]
    num_columns: tuple[str, ...]

    def features(self, idx: Tensor) -> tuple[Tensor, Tensor]:
        """Categorical [.., Ci] and numeric [.., Ni] features of item ids (unknown ids -> zeros)."""
        safe = torch.where((idx >= 0) & (idx < self.cat_by_idx.shape[0]), idx, torch.zeros_like(idx))
        return self.cat_by_idx[safe], self.num_by_idx[safe]


@dataclass(frozen=True)
class ItemDayFeatures:
    """Time-dependent item features (``item_day_features``) as of each training day.

    ``values[a, idx]`` holds item ``idx``'s features as of ``a`` days before the last training
    day, for the numeric catalogue columns at ``positions``; unknown items read as zeros (the
    normalised mean), as in :class:`Catalogue`.
    """

    values: Tensor  # float32 [days, max_idx + 1, k]
    positions: tuple[int, ...]  # where the k columns sit in the catalogue's numeric columns

    def as_of(self, idx: Tensor, age_days: Tensor, num: Tensor) -> Tensor:
        """``num`` [n, Ni] (catalogue features of ``idx``) with the time-dependent columns
        replaced by their values as of ``age_days`` [n] days before the last training day."""
        a = age_days.long().clamp(0, self.values.shape[0] - 1)
        safe = torch.where((idx >= 0) & (idx < self.values.shape[1]), idx, torch.zeros_like(idx))
        out = num.clone()
        out[:, list(self.positions)] = self.values[a, safe]
        return out


def load_item_day_features(
    layout: Layout, ds: str, num_columns: tuple[str, ...], last_train_day: dt.date
) -> ItemDayFeatures | None:
    """Day ds's ``item_day_features`` for the model's numeric item columns, or None when the
    partition is absent (ETL output of an older release) or shares no column with the model."""
    if not layout.path_for("item_day_features", ds).is_dir():
        return None
    names = schema_names(layout, "item_day_features", ds)
    cols = tuple(c for c in num_columns if c in names)
    if not cols:
        return None
    t = read_table(layout, "item_day_features", ds, columns=["item_idx", "event_ds", *cols])
    idx = t.column("item_idx").to_numpy().astype(np.int64)
    days = t.column("event_ds").to_numpy().astype("datetime64[D]")
    age = (np.datetime64(last_train_day, "D") - days).astype(np.int64)
    keep = (age >= 0) & (idx >= 0)
    if not keep.any():
        return None
    values = np.zeros((int(age[keep].max()) + 1, int(idx.max()) + 1, len(cols)), dtype=np.float32)
    values[age[keep], idx[keep]] = float_matrix(t, cols)[keep]
    return ItemDayFeatures(torch.from_numpy(values), tuple(num_columns.index(c) for c in cols))


def load_catalogue(layout: Layout, ds: str, cat_columns: tuple[str, ...] | None = None, num_columns: tuple[str, ...] | None = None) -> Catalogue:
    """``item_catalogue`` of day ds. Column lists default to what the table has (by prefix); a
    model built on other columns passes its own lists (missing columns read as zeros)."""
    t = read_table(layout, "item_catalogue", ds)
    found = FeatureColumns.discover(t.schema.names)
    cat_columns = found.item_cat if cat_columns is None else cat_columns
    num_columns = found.item_num if num_columns is None else num_columns
    idx = t.column("item_idx").to_numpy().astype(np.int64)
    if len(idx) == 0:
        raise DataError(data_error_message("item_catalogue", f"ds={ds_str(ds)}", "the catalogue is empty", count=0))
    size = int(idx.max()) + 1
    cat = np.zeros((size, len(cat_columns)), dtype=np.int64)
    num = np.zeros((size, len(num_columns)), dtype=np.float32)
    present_cat = tuple(c for c in cat_columns if c in t.schema.names)
    present_num = tuple(c for c in num_columns if c in t.schema.names)
    if present_cat:
        cat[np.ix_(idx, [cat_columns.index(c) for c in present_cat])] = int_matrix(t, present_cat)
    if present_num:
        num[np.ix_(idx, [num_columns.index(c) for c in present_num])] = float_matrix(t, present_num)
    return Catalogue(
        item_idx=idx,
        item_id=t.column("item_id").to_numpy(zero_copy_only=False),
        active=column_values(t, "active", True).astype(bool),
        cat_by_idx=torch.from_numpy(cat),
        num_by_idx=torch.from_numpy(num),
        cat_columns=tuple(cat_columns),
        num_columns=tuple(num_columns),
    )


@dataclass
class EvalSet:
    """Held-out users: features, targets and training-day clicks to exclude (CSR lists)."""

    user_idx: Tensor  # [U]
    user_id: np.ndarray  # [U] object
    user_cat: Tensor  # [U, Cu]
    user_num: Tensor  # [U, Nu]
    hist: Tensor  # [U, H]
    target_offsets: np.ndarray  # [U + 1]
    targets: np.ndarray  # item ids
    exclude_offsets: np.ndarray  # [U + 1]
    excludes: np.ndarray


def load_eval_set(
    layout: Layout, ds: str, cat_columns: tuple[str, ...] | None, num_columns: tuple[str, ...] | None, history_length: int
) -> EvalSet:
    """``eval_examples`` of day ds; user features missing from it are joined from ``user_features``."""
    t = read_table(layout, "eval_examples", ds)
    found = FeatureColumns.discover(t.schema.names)
    cat_columns = found.user_cat if cat_columns is None else cat_columns
    num_columns = found.user_num if num_columns is None else num_columns
    need = [c for c in cat_columns + num_columns if c not in t.schema.names]
    if need:
        uf_names = schema_names(layout, "user_features", ds)
        joinable = [c for c in need if c in uf_names]
        if joinable:
            uf = read_table(layout, "user_features", ds, columns=["user_idx", *joinable])
            t = t.join(uf, "user_idx", join_type="left outer")
    t = t.sort_by("user_idx")

    def ints(cols: tuple[str, ...]) -> np.ndarray:
        out = np.zeros((t.num_rows, len(cols)), dtype=np.int64)
        for j, c in enumerate(cols):
            if c in t.schema.names:
                out[:, j] = pc.fill_null(t.column(c), 0).to_numpy(zero_copy_only=False)
        return out

    def floats(cols: tuple[str, ...]) -> np.ndarray:
        out = np.zeros((t.num_rows, len(cols)), dtype=np.float32)
        for j, c in enumerate(cols):
            if c in t.schema.names:
                out[:, j] = np.nan_to_num(pc.fill_null(t.column(c), 0.0).to_numpy(zero_copy_only=False))
        return out

    t_off, t_val = list_csr(t.column("target_idx"))
    e_off, e_val = list_csr(t.column("exclude_idx"))
    return EvalSet(
        user_idx=torch.from_numpy(t.column("user_idx").to_numpy().astype(np.int64)),
        user_id=t.column("user_id").to_numpy(zero_copy_only=False),
        user_cat=torch.from_numpy(ints(tuple(cat_columns))),
        user_num=torch.from_numpy(floats(tuple(num_columns))),
        hist=torch.from_numpy(pad_lists(t.column("u_hist"), history_length)),
        target_offsets=t_off,
        targets=t_val,
        exclude_offsets=e_off,
        excludes=e_val,
    )


def load_item_sampling(layout: Layout, ds: str) -> pa.Table:
    return read_table(
        layout,
        "item_sampling",
        ds,
        columns=["item_idx", "clicks", "clicks_resampled", "neg_prob", "alias_prob", "alias_idx", "inbatch_prob"],
    )


def recent_day_clicks(layout: Layout, day: str, catalogue: Catalogue) -> np.ndarray:
    """Click counts of one event day per catalogue row (``click_positives`` of that day)."""
    try:
        files = partition_files(layout, "click_positives", day)
    except DataError:
        log.warning("no click_positives for %s: the recent-day popularity baseline is empty", day)
        return np.zeros(len(catalogue.item_idx))
    ids = pa.concat_arrays([pq.read_table(f, columns=["item_id"]).column("item_id").combine_chunks() for f in files])
    counts = pc.value_counts(ids)
    pos = pc.index_in(pa.array(catalogue.item_id, pa.string()), value_set=counts.field("values"))
    found = pc.fill_null(pos, -1).to_numpy(zero_copy_only=False)
    per_value = counts.field("counts").to_numpy().astype(np.float64)
    return np.where(found >= 0, per_value[np.maximum(found, 0)], 0.0)


def days_clicks(layout: Layout, days: list[str], catalogue: Catalogue) -> tuple[np.ndarray, list[str]]:
    """Click counts summed over the ``click_positives`` partitions of ``days`` that exist, per
    catalogue row, and the days found (a day without a partition adds nothing)."""
    total = np.zeros(len(catalogue.item_idx))
    found: list[str] = []
    for day in days:
        if not layout.path_for("click_positives", day).is_dir():
            continue
        total += recent_day_clicks(layout, day, catalogue)
        found.append(day)
    return total, found


def day_metrics(layout: Layout, days: list[str]) -> list[tuple[str, dict]]:
    """``(day, metrics.json)`` of the days in ``days`` (in that order) whose model directory
    holds one: the earlier evaluations the popularity prior and the settings search choose on."""
    out = []
    for day in days:
        path = layout.model_dir(day) / "metrics.json"
        if path.is_file():
            out.append((day, json.loads(path.read_text())))
    return out


def distinct_click_users(layout: Layout, days: list[str], item_ids: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Distinct users who clicked each item on ``days`` (``click_positives``), per entry of
    ``item_ids`` [N] (strings), and the days found. A user clicking an item on two days counts
    once: the popularity prior counts people, not repeat clicks."""
    found = [d for d in days if layout.path_for("click_positives", d).is_dir()]
    parts = []
    for day in found:
        for f in partition_files(layout, "click_positives", day):
            parts.append(pq.read_table(f, columns=["user_id", "item_id"]))
    if not parts:
        return np.zeros(len(item_ids)), found
    pairs = pa.concat_tables(parts).group_by(["item_id", "user_id"]).aggregate([])
    counts = pc.value_counts(pairs.column("item_id").combine_chunks())
    pos = pc.index_in(pa.array(np.asarray(item_ids, dtype=object), pa.string()), value_set=counts.field("values"))
    hit = pc.fill_null(pos, -1).to_numpy(zero_copy_only=False)
    per_value = counts.field("counts").to_numpy().astype(np.float64)
    return np.where(hit >= 0, per_value[np.maximum(hit, 0)], 0.0), found


def table_sizes(layout: Layout, ds: str, cols: FeatureColumns) -> dict[str, int]:
    """Embedding-table sizes from ``vocabulary`` (max id + 1 per vocab)."""
    t = read_table(layout, "vocabulary", ds, columns=["vocab", "id"])
    grouped = t.group_by("vocab").aggregate([("id", "max")])
    max_id = dict(zip(grouped.column("vocab").to_pylist(), grouped.column("id_max").to_pylist(), strict=True))
    sizes = {"user_id": int(max_id.get("user_id", 0)) + 1, "item_id": int(max_id.get("item_id", 0)) + 1}
    for c in cols.user_cat:
        sizes[c] = int(max_id.get(f"user.{c[len(USER_CAT_PREFIX):]}", 0)) + 1
    for c in cols.item_cat:
        sizes[c] = int(max_id.get(f"item.{c[len(ITEM_CAT_PREFIX):]}", 0)) + 1
    return sizes
