"""The training shards (``train_examples``, ``final_examples``) streamed as shuffled minibatches.

Shards are read with pyarrow in large record batches (no per-row Python), converted to tensors
column-wise, shuffled within a buffer of several batches and split across torchrun workers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch import Tensor

from training.columns import FeatureColumns, column_values, float_matrix, int_matrix, pad_lists

Batch = dict[str, Tensor]


def examples_to_tensors(
    rb: pa.Table | pa.RecordBatch, cols: FeatureColumns, history_length: int, hard_width: int, last_train_day: dt.date
) -> Batch:
    """One Arrow batch of ``train_examples`` -> a dict of tensors (shapes in the keys' comments)."""
    event = column_values(rb, "event_ds", None) if "event_ds" in rb.schema.names else None
    if event is not None:
        age = (np.datetime64(last_train_day) - event.astype("datetime64[D]")).astype(np.int64)
    else:
        age = np.zeros(rb.num_rows, dtype=np.int64)
    return {
        "user_idx": torch.from_numpy(column_values(rb, "user_idx").astype(np.int64)),  # [B]
        "item_idx": torch.from_numpy(column_values(rb, "item_idx").astype(np.int64)),  # [B]
        "user_cat": torch.from_numpy(int_matrix(rb, cols.user_cat)),  # [B, Cu]
        "user_num": torch.from_numpy(float_matrix(rb, cols.user_num)),  # [B, Nu]
        "hist": torch.from_numpy(pad_lists(rb.column("u_hist"), history_length)),  # [B, H]
        "item_cat": torch.from_numpy(int_matrix(rb, cols.item_cat)),  # [B, Ci]
        "item_num": torch.from_numpy(float_matrix(rb, cols.item_num)),  # [B, Ni]
        "weight": torch.from_numpy(column_values(rb, "weight", 1.0).astype(np.float32)),  # [B]
        "label_liked": torch.from_numpy(column_values(rb, "label_liked", 0.0).astype(np.float32)),  # [B]
        "hard_neg": torch.from_numpy(pad_lists(rb.column("hard_neg_idx"), hard_width))  # [B, h]
        if "hard_neg_idx" in rb.schema.names
        else torch.zeros(rb.num_rows, hard_width, dtype=torch.long),
        "age_days": torch.from_numpy(age),  # [B] days before the last training day
    }


def concat_batches(parts: list[Batch]) -> Batch:
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def take(batch: Batch, idx: Tensor) -> Batch:
    return {k: v[idx] for k, v in batch.items()}


@dataclass(frozen=True)
class _Unit:
    """One row group of one shard: the unit of work assignment between workers."""

    file: Path
    row_group: int
    rows: int


class TrainStream:
    """Streams ``train_examples`` shards in large Arrow batches into shuffled minibatches.

    Each epoch the row groups are permuted (seeded) and dealt out to workers (``rank::world``);
    a worker reads only its own, shuffles rows within a buffer of several record batches and
    yields minibatches of exactly ``batch_size`` rows. Every worker yields the same number of
    batches (so collective ops never hang): the smallest worker's row count decides it.
    """

    def __init__(
        self,
        files: list[Path],
        cols: FeatureColumns,
        history_length: int,
        hard_width: int,
        last_train_day: dt.date,
        batch_size: int,
        read_batch_rows: int = 65_536,
        seed: int = 0,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        self.files, self.cols = files, cols
        self.history_length, self.hard_width = history_length, hard_width
        self.last_train_day = last_train_day
        self.batch_size, self.read_batch_rows = batch_size, read_batch_rows
        self.seed, self.rank, self.world = seed, rank, world
        names = pq.read_schema(files[0]).names
        self.columns = [
            c
            for c in ("user_idx", "item_idx", "weight", "event_ds", "label_liked", "hard_neg_idx", "u_hist")
            if c in names
        ] + list(cols.user_cat + cols.user_num + cols.item_cat + cols.item_num)
        self.units = [
            _Unit(f, g, md.row_group(g).num_rows)
            for f in files
            for md in [pq.ParquetFile(f).metadata]
            for g in range(md.num_row_groups)
        ]
        self.total_rows = sum(u.rows for u in self.units)
        # Few row groups (tiny data): every worker reads all of them and keeps rows rank::world.
        self.stride_rows = len(self.units) < 2 * world and world > 1

    def _assignment(self, epoch: int) -> list[list[_Unit]]:
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.units))
        units = [self.units[i] for i in order]
        if self.stride_rows:
            return [units] * self.world
        return [units[r :: self.world] for r in range(self.world)]

    def steps_per_epoch(self, epoch: int) -> int:
        if self.stride_rows:
            per_worker = [self.total_rows // self.world] * self.world
        else:
            per_worker = [sum(u.rows for u in us) for us in self._assignment(epoch)]
        return min(per_worker) // self.batch_size

    def _chunks(self, units: list[_Unit]) -> Iterator[Batch]:
        handles: dict[Path, pq.ParquetFile] = {}
        for unit in units:
            pf = handles.setdefault(unit.file, pq.ParquetFile(unit.file))
            for rb in pf.iter_batches(batch_size=self.read_batch_rows, row_groups=[unit.row_group], columns=self.columns):
                t = examples_to_tensors(rb, self.cols, self.history_length, self.hard_width, self.last_train_day)
                if self.stride_rows:
                    # Global row positions are not known per batch; stride within the batch instead.
                    t = take(t, torch.arange(self.rank, rb.num_rows, self.world))
                yield t

    def epoch(self, epoch: int) -> Iterator[Batch]:
        """Minibatches of exactly ``batch_size`` rows for this worker; ``steps_per_epoch`` of them."""
        steps = self.steps_per_epoch(epoch)
        units = self._assignment(epoch)[self.rank]
        gen = torch.Generator().manual_seed(int(np.random.default_rng([self.seed, epoch, self.rank, 1]).integers(2**62)))
        buffer_rows = max(4 * self.read_batch_rows, self.batch_size)
        pending: list[Batch] = []
        pending_rows = 0
        emitted = 0

        def drain(parts: list[Batch], final: bool) -> tuple[list[Batch], Iterator[Batch]]:
            merged = concat_batches(parts)
            perm = torch.randperm(merged["user_idx"].shape[0], generator=gen)
            merged = take(merged, perm)
            n = merged["user_idx"].shape[0]
            full = n // self.batch_size * self.batch_size
            out = (take(merged, torch.arange(i, i + self.batch_size)) for i in range(0, full, self.batch_size))
            rest = [take(merged, torch.arange(full, n))] if (n > full and not final) else []
            return rest, out

        for chunk in self._chunks(units):
            pending.append(chunk)
            pending_rows += chunk["user_idx"].shape[0]
            if pending_rows >= buffer_rows:
                pending, out = drain(pending, final=False)
                pending_rows = sum(p["user_idx"].shape[0] for p in pending)
                for b in out:
                    if emitted == steps:
                        return
                    emitted += 1
                    yield b
        if pending and emitted < steps:
            _, out = drain(pending, final=True)
            for b in out:
                if emitted == steps:
                    return
                emitted += 1
                yield b


def effective_batch_size(rows: int, configured: int, world: int = 1, min_batches: int = 8) -> int:
    """Batch size for ``rows`` training rows (the rule in docs/training.md).

    The configured batch when the data holds at least ``min_batches`` of it; otherwise the
    largest power of two <= ``rows / min_batches`` (at least ``world``, a multiple of it), so a
    window smaller than a batch still trains with several steps per pass instead of stopping.
    """
    if rows >= configured * min_batches:
        return configured
    target = max(rows // max(min_batches, 1), 1)
    b = min(1 << (target.bit_length() - 1), configured)
    return max(world, b // world * world)


def window_epochs(t, steps_per_epoch: int) -> int:
    """Passes over the window: ``epochs``, raised to reach ``min_steps`` optimizer steps on a
    small window, never above ``max_epochs`` (more passes over few rows overfit)."""
    epochs = max(t.epochs, -(-t.min_steps // max(steps_per_epoch, 1)))
    return max(1, min(epochs, max(t.max_epochs, t.epochs)))
