"""Feature columns and the Arrow -> numpy conversion every reader of the ETL outputs uses.

Feature columns are discovered by prefix (u_cat_/u_num_/i_cat_/i_num_), so any dataset works.
Columns are converted whole with numpy (list columns padded with vectorised index arithmetic):
no per-row Python.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from contracts.outputs import ITEM_CAT_PREFIX, ITEM_NUM_PREFIX, USER_CAT_PREFIX, USER_NUM_PREFIX


@dataclass(frozen=True)
class FeatureColumns:
    user_cat: tuple[str, ...]
    user_num: tuple[str, ...]
    item_cat: tuple[str, ...]
    item_num: tuple[str, ...]

    @classmethod
    def discover(cls, names: list[str] | tuple[str, ...]) -> FeatureColumns:
        """Sorted feature columns by prefix (sorted so the order is stable across days)."""

        def pick(prefix: str) -> tuple[str, ...]:
            return tuple(sorted(n for n in names if n.startswith(prefix)))

        return cls(pick(USER_CAT_PREFIX), pick(USER_NUM_PREFIX), pick(ITEM_CAT_PREFIX), pick(ITEM_NUM_PREFIX))

    @property
    def names(self) -> tuple[str, ...]:
        return self.user_cat + self.user_num + self.item_cat + self.item_num


def pad_lists(arr: pa.Array | pa.ChunkedArray, width: int) -> np.ndarray:
    """A list<int64> column -> int64 [n, width], first ``width`` values of each list, 0-padded."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    n = len(arr)
    out = np.zeros((n, width), dtype=np.int64)
    if n == 0 or width == 0:
        return out
    lens = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    offsets = arr.offsets.to_numpy()[:-1].astype(np.int64)
    values = arr.values.to_numpy(zero_copy_only=False)
    take = np.minimum(lens, width)
    rows = np.repeat(np.arange(n), take)
    cols = np.arange(take.sum()) - np.repeat(np.cumsum(take) - take, take)
    out[rows, cols] = np.nan_to_num(values[np.repeat(offsets, take) + cols]).astype(np.int64)
    return out


def list_csr(arr: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """A list<int64> column -> (offsets int64 [n+1], values int64) in compressed-row form."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    lens = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    starts = arr.offsets.to_numpy()[:-1].astype(np.int64)
    values = arr.values.to_numpy(zero_copy_only=False).astype(np.int64)
    # Re-pack so that null or sliced lists do not leave holes.
    idx = np.repeat(starts, lens) + (np.arange(lens.sum()) - np.repeat(np.cumsum(lens) - lens, lens))
    return np.concatenate([[0], np.cumsum(lens)]), values[idx]


def int_matrix(table: pa.Table | pa.RecordBatch, cols: tuple[str, ...]) -> np.ndarray:
    """int64 [rows, len(cols)] of the columns (nulls -> 0)."""
    if not cols:
        return np.zeros((table.num_rows, 0), dtype=np.int64)
    return np.stack([pc.fill_null(table.column(c), 0).to_numpy(zero_copy_only=False) for c in cols], axis=1).astype(np.int64)


def float_matrix(table: pa.Table | pa.RecordBatch, cols: tuple[str, ...]) -> np.ndarray:
    """float32 [rows, len(cols)] of the columns (nulls and NaN -> 0)."""
    if not cols:
        return np.zeros((table.num_rows, 0), dtype=np.float32)
    arrays = [pc.fill_null(table.column(c), 0.0).to_numpy(zero_copy_only=False) for c in cols]
    return np.nan_to_num(np.stack(arrays, axis=1).astype(np.float32))


def column_values(table: pa.Table | pa.RecordBatch, name: str, default: float | None = None) -> np.ndarray:
    """One column as numpy, nulls -> ``default`` (0 without one); a missing column is all
    ``default``, or a KeyError without one."""
    if name not in table.schema.names:
        if default is None:
            raise KeyError(name)
        return np.full(table.num_rows, default)
    return pc.fill_null(table.column(name), default if default is not None else 0).to_numpy(zero_copy_only=False)
