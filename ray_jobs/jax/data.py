"""Parquet -> per-process host arrays -> global sharded device arrays.

Data order. The rows of a split (its Parquet files in sorted order, concatenated) are
cut into ``data_shards`` contiguous shards. Every epoch each shard is permuted with a
generator seeded by ``(seed, epoch, shard)``, and global batch ``b`` is the
concatenation, shard by shard, of each shard's ``b``-th slice of ``batch_size /
data_shards`` rows. The order therefore depends on ``(seed, data_shards)`` only, never
on the number of processes or devices: process ``p`` of ``P`` owns the contiguous run of
``data_shards / P`` shards, reads only those rows from Parquet, and its part of each
global batch is exactly the contiguous block of the batch that
``jax.make_array_from_process_local_data`` expects from it (devices are ordered
process by process in the mesh). Trailing rows that do not fill a batch are dropped for
training (a different subset every epoch); evaluation pads with zero-weight rows.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from mlbatch.artifacts.features import FeatureContractError, FeatureSet

HostBatch = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Columns:
    """Host arrays for a run of rows, packed: one float and one int matrix.

    Three arrays per batch instead of one per feature keep the per-step host->device
    work small; ``steps.unpack`` restores the model's per-feature layout inside jit.
    """
    numeric: np.ndarray  # f32[n, n_numeric], manifest order
    ids: np.ndarray  # i32[n, n_categorical], manifest order (FeatureSet.categorical)
    label: np.ndarray  # f32[n]

    def __len__(self) -> int:
        return len(self.label)

    def take(self, idx: np.ndarray) -> HostBatch:
        return {"numeric": self.numeric[idx], "ids": self.ids[idx], "label": self.label[idx]}


def shard_bounds(num_rows: int, shards: int) -> list[tuple[int, int]]:
    b = [num_rows * i // shards for i in range(shards + 1)]
    return list(zip(b[:-1], b[1:]))


def smallest_shard(fs: FeatureSet, shards: int) -> int:
    """Rows of the smallest of the train split's ``shards`` data shards."""
    return min(hi - lo for lo, hi in shard_bounds(fs.num_rows("train"), shards))


def owned_shards(process_id: int, num_processes: int, shards: int) -> range:
    per = shards // num_processes
    return range(process_id * per, (process_id + 1) * per)


def read_rows(fs: FeatureSet, split: str, start: int, stop: int) -> Columns:
    """Rows [start, stop) of a split, reading only the Parquet files that hold them."""
    names = [f.name for f in fs.features] + [fs.label]
    tables, offset = [], 0
    for path in fs.files(split):
        pf = fs.parquet_file(path)
        groups, first = [], None  # only the row groups that hold rows of [start, stop)
        for g in range(pf.metadata.num_row_groups):
            n = pf.metadata.row_group(g).num_rows
            if offset < stop and offset + n > start:
                groups.append(g)
                first = offset if first is None else first
            offset += n
        if groups:
            t = pf.read_row_groups(groups, columns=names)
            lo = max(start, first)
            tables.append(t.slice(lo - first, min(stop, first + t.num_rows) - lo))
    cols = {name: [t.column(name) for t in tables] for name in names}

    def column(name: str, dtype) -> np.ndarray:
        parts = cols[name]
        if any(p.null_count for p in parts):
            raise FeatureContractError(f"split {split!r}: column {name!r} has nulls")
        if not parts:
            return np.zeros((0,), dtype)
        return np.concatenate([p.to_numpy() for p in parts]).astype(dtype, copy=False)

    numeric = [column(f.name, np.float32) for f in fs.numeric]
    categorical = []
    for f in fs.categorical:
        ids = column(f.name, np.int64)
        if len(ids) and (ids.min() < 0 or ids.max() >= f.cardinality):
            raise FeatureContractError(
                f"split {split!r}: column {f.name!r} has ids in [{ids.min()}, {ids.max()}], "
                f"outside [0, {f.cardinality}) from the manifest")
        categorical.append(ids.astype(np.int32))
    n = stop - start
    return Columns(
        numeric=np.stack(numeric, axis=1) if numeric else np.zeros((n, 0), np.float32),
        ids=np.stack(categorical, axis=1) if categorical else np.zeros((n, 0), np.int32),
        label=column(fs.label, np.float32))


def label_stats(fs: FeatureSet) -> tuple[float, float, float, float]:
    """(mean, standard deviation, min, max) of the whole train split's label, in float64.

    Every process reads the same column, so all of them scale the target identically. A
    constant label gets std 1 (nothing to scale)."""
    values = fs.read_table("train", columns=[fs.label]).column(fs.label).to_numpy()
    values = values.astype(np.float64)
    std = float(values.std())
    return (float(values.mean()), std if std > 0 and np.isfinite(std) else 1.0,
            float(values.min()), float(values.max()))


class TrainData:
    """One process's shards of the train split and its deterministic epoch order."""

    def __init__(self, fs: FeatureSet, *, seed: int, batch_size: int, data_shards: int,
                 process_id: int = 0, num_processes: int = 1):
        bounds = shard_bounds(fs.num_rows("train"), data_shards)
        self.seed, self.global_batch = seed, batch_size
        self.shard_batch = batch_size // data_shards
        self.shards = list(owned_shards(process_id, num_processes, data_shards))
        self.steps_per_epoch = min(hi - lo for lo, hi in bounds) // self.shard_batch
        if self.steps_per_epoch == 0:
            raise FeatureContractError(
                f"train split: {min(hi - lo for lo, hi in bounds)} rows per data shard, fewer "
                f"than one batch ({self.shard_batch} rows = batch_size {batch_size} / "
                f"data_shards {data_shards})")
        parts = [read_rows(fs, "train", *bounds[s]) for s in self.shards]
        self.sizes = [len(p) for p in parts]
        self.rows = _concat(parts)

    @property
    def local_batch(self) -> int:
        return self.shard_batch * len(self.shards)

    def epoch_indices(self, epoch: int) -> np.ndarray:
        """i64[steps_per_epoch, local_batch]: local row of each batch slot this epoch."""
        blocks, offset = [], 0
        for shard, size in zip(self.shards, self.sizes):
            perm = np.random.default_rng((self.seed, epoch, shard)).permutation(size)
            used = perm[: self.steps_per_epoch * self.shard_batch]
            blocks.append(used.reshape(self.steps_per_epoch, self.shard_batch) + offset)
            offset += size
        return np.concatenate(blocks, axis=1)

    def epoch(self, epoch: int) -> HostBatch:
        """The whole epoch gathered once: arrays shaped [steps, local_batch, ...]."""
        return self.rows.take(self.epoch_indices(epoch))


class EvalData:
    """One process's shards of the eval split, padded to whole batches (weight 0)."""

    def __init__(self, fs: FeatureSet, *, batch_size: int, data_shards: int,
                 process_id: int = 0, num_processes: int = 1):
        bounds = shard_bounds(fs.num_rows("eval"), data_shards)
        self.global_batch = batch_size
        shard_batch = batch_size // data_shards
        self.steps = max(-(-(hi - lo) // shard_batch) for lo, hi in bounds)
        blocks, weights, offset = [], [], 0
        shards = owned_shards(process_id, num_processes, data_shards)
        parts = [read_rows(fs, "eval", *bounds[s]) for s in shards]
        for part in parts:
            n, padded = len(part), self.steps * shard_batch
            idx = np.concatenate([np.arange(n), np.zeros(padded - n, np.int64)]) + offset
            w = (np.arange(padded) < n).astype(np.float32)
            blocks.append(idx.reshape(self.steps, shard_batch))
            weights.append(w.reshape(self.steps, shard_batch))
            offset += n
        rows = _concat(parts)
        self.batches = rows.take(np.concatenate(blocks, axis=1))
        self.batches["weight"] = np.concatenate(weights, axis=1)

    def batch(self, step: int) -> HostBatch:
        return jax.tree.map(lambda a: a[step], self.batches)


def _concat(parts: list[Columns]) -> Columns:
    return Columns(numeric=np.concatenate([p.numeric for p in parts]),
                   ids=np.concatenate([p.ids for p in parts]),
                   label=np.concatenate([p.label for p in parts]))


def batch_shardings(mesh: Mesh, batch: HostBatch) -> Any:
    """Batch dimension sharded over the mesh's 'data' axis, the rest replicated."""
    return jax.tree.map(lambda a: NamedSharding(mesh, P("data", *([None] * (a.ndim - 1)))),
                        batch)


def to_global(batch: HostBatch, shardings: Any, global_batch: int,
              stacked: bool = False) -> Any:
    """This process's block of a batch -> global arrays sharded over all processes;
    ``stacked``: of a stack of batches ``[steps, local batch, ...]``."""
    if jax.process_count() == 1:  # the same result, one batched transfer
        return jax.device_put(batch, shardings)
    lead = 1 if stacked else 0
    return jax.tree.map(
        lambda a, s: jax.make_array_from_process_local_data(
            s, a, (*a.shape[:lead], global_batch, *a.shape[lead + 1:])), batch, shardings)
