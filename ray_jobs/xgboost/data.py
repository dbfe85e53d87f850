"""Feature Parquet -> validated FeatureSet -> each training worker's ``DMatrix`` shard.

The validation runs on the driver before any worker starts, so bad input fails in
seconds with a message naming the file and column instead of inside a training actor.
Column names, kinds, the label and its task come from the features artifact
(``mlbatch.artifacts.features``); every file is read through its file system, so the
feature directory may be a local path or a ``gs://`` URI.
"""
from __future__ import annotations

import logging
import os

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlbatch.artifacts.features import FeatureSet, load_feature_set
from mlbatch.errors import UsageError

logger = logging.getLogger(__name__)

SCAN_BATCH_ROWS = 1 << 20
MAX_PROBLEMS_SHOWN = 10


class FeatureDataError(ValueError, UsageError):
    """The feature Parquet holds values training cannot use (file, column, count named)."""


def load_and_validate(root: str | os.PathLike, *, scan: bool = True) -> FeatureSet:
    """Contract check (manifest, both splits present and non-empty, label numeric) and,
    with ``scan``, a full pass over the values: NaN/inf/null in features or label,
    non-numeric feature columns, categorical ids outside [0, cardinality), binary labels
    other than 0/1, a training label with a single value."""
    fs = load_feature_set(root)
    _check_types(fs)
    if scan:
        problems: list[str] = []
        for split in ("train", "eval"):
            for path in fs.files(split):
                problems += _scan_file(fs, path)
        if problems:
            shown = problems[:MAX_PROBLEMS_SHOWN]
            more = len(problems) - len(shown)
            raise FeatureDataError(
                f"{len(problems)} problem(s) in {fs.root}:\n  " + "\n  ".join(shown)
                + (f"\n  ... and {more} more" if more else ""))
        _check_label_variety(fs)
    return fs


def _check_types(fs: FeatureSet) -> None:
    """Every file of both splits has every column, numeric (metadata only, cheap)."""
    for split in ("train", "eval"):
        for path in fs.files(split):
            schema = fs.parquet_file(path).schema_arrow
            for name in [fs.label] + fs.names:
                what = "label" if name == fs.label else "feature"
                if name not in schema.names:
                    raise FeatureDataError(f"{path}: {what} column {name!r} is missing")
                t = schema.field(name).type
                if not (pa.types.is_floating(t) or pa.types.is_integer(t)
                        or pa.types.is_boolean(t)):
                    raise FeatureDataError(
                        f"{path}: {what} column {name!r} is {t}, not numeric"
                        + ("; the feature job must encode it (vocabulary/hash)"
                           if what == "feature" else ""))


def _scan_file(fs: FeatureSet, path: str) -> list[str]:
    problems: dict[tuple[str, str], int] = {}
    cards = {f.name: f.cardinality for f in fs.categorical}
    pf = fs.parquet_file(path)
    for batch in pf.iter_batches(batch_size=SCAN_BATCH_ROWS, columns=fs.names + [fs.label]):
        for name, col in zip(batch.schema.names, batch.columns):
            what = "label" if name == fs.label else "feature"
            _count(problems, (name, f"{what} has null values"), col.null_count)
            if pa.types.is_floating(col.type):
                _count(problems, (name, f"{what} has NaN"), pc.sum(pc.is_nan(col)).as_py())
                _count(problems, (name, f"{what} has +-inf"), pc.sum(pc.is_inf(col)).as_py())
            if name in cards and len(col) > col.null_count:
                mm = pc.min_max(col)
                lo, hi = mm["min"].as_py(), mm["max"].as_py()
                bad = pc.sum(pc.or_(pc.less(col, 0), pc.greater_equal(col, cards[name])))
                _count(problems, (name, f"categorical ids outside [0, {cards[name]}) "
                                        f"(min {lo}, max {hi})"), bad.as_py())
        if fs.task == "binary_classification":
            label = batch.column(fs.label)
            bad = pc.sum(pc.and_(pc.not_equal(label, 0), pc.not_equal(label, 1))).as_py()
            _count(problems, (fs.label, "binary label has values other than 0/1"), bad)
        if fs.task == "multiclass_classification":
            label = batch.column(fs.label)
            k = len(fs.classes)
            bad = pc.sum(pc.or_(pc.not_equal(label, pc.round(label)),
                                pc.or_(pc.less(label, 0), pc.greater_equal(label, k)))).as_py()
            _count(problems, (fs.label, f"multiclass label is not a class index in [0, {k})"),
                   bad)
    return [f"{path}: column {col!r}: {msg} ({n} rows)" for (col, msg), n in problems.items()]


def _count(problems: dict, key: tuple[str, str], n: int | None) -> None:
    if n:
        problems[key] = problems.get(key, 0) + int(n)


def _check_label_variety(fs: FeatureSet) -> None:
    lo, hi = np.inf, -np.inf
    for path in fs.files("train"):
        mm = pc.min_max(fs.read_table(path, columns=[fs.label]).column(fs.label))
        if mm["min"].as_py() is not None:
            lo, hi = min(lo, mm["min"].as_py()), max(hi, mm["max"].as_py())
    if lo == hi:
        raise FeatureDataError(f"label {fs.label!r} has the single value {lo} in the train "
                               "split: nothing to learn")


def worker_shard(fs: FeatureSet, split: str, rank: int, world: int
                 ) -> tuple[list[str], slice | None]:
    """(files, row slice) of worker ``rank`` of ``world``: with at least as many files as
    workers, every ``world``-th file from ``rank`` on (distributed loading: each worker
    reads only its own files); otherwise every file, of which the worker keeps its
    contiguous share of the rows (each worker reads the split, none gets another's rows)."""
    files = fs.files(split)
    if len(files) >= world:
        return files[rank::world], None
    n = fs.num_rows(split)
    return files, slice(rank * n // world, (rank + 1) * n // world)


def worker_dmatrix(fs: FeatureSet, split: str, rank: int, world: int, nthread: int = -1, *,
                   max_bin: int | None = None, ref=None):
    """The matrix of this worker's shard (:func:`worker_shard`), read through
    ``mlbatch.storage``'s file system (local, ``gs://``, or the emulator that
    STORAGE_EMULATOR_HOST names, which the workers get in their runtime_env).

    Without ``max_bin``: an ``xgboost.DMatrix`` (any tree method). With it: an
    ``xgboost.QuantileDMatrix`` of that many bins (``tree_method=hist``), which sketches
    the shard once as it is built (allreduced across the workers, as a DMatrix's first
    round would) and keeps only the binned values, not a copy of the floats; an eval
    split passes the train split's matrix as ``ref`` so both use the same bins."""
    import xgboost as xgb

    files, rows = worker_shard(fs, split, rank, world)
    x, y = read_rows(fs, files)
    if rows is not None:
        x, y = x[rows], y[rows]
    logger.info("worker %d/%d: split %s, %d file(s), %d rows", rank, world, split,
                len(files), len(y))
    if max_bin is None:
        return xgb.DMatrix(x, label=y, feature_names=fs.names, nthread=nthread)
    return xgb.QuantileDMatrix(x, label=y, feature_names=fs.names, nthread=nthread,
                               max_bin=max_bin, ref=ref)


def read_rows(fs: FeatureSet, files: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(features float32 [n, d] in manifest order, label float32 [n]) of ``files`` in
    order, written column by column straight into one array sized from the Parquet
    footers: one copy of the values, where stacking each file and concatenating the
    files made two. A file whose row count differs from its footer's (rewritten while
    the job read it) is refused, naming it."""
    counts = [fs.parquet_file(path).metadata.num_rows for path in files]
    x = np.empty((sum(counts), len(fs.names)), dtype=np.float32)
    y = np.empty(sum(counts), dtype=np.float32)
    at = 0
    for path, n in zip(files, counts):
        table = fs.read_table(path, columns=fs.names + [fs.label])
        if table.num_rows != n:
            raise FeatureDataError(f"{path}: {table.num_rows} rows where its footer said {n} "
                                   "a moment ago; the file changed during the job")
        for j, name in enumerate(fs.names):
            x[at:at + n, j] = table.column(name).to_numpy()
        y[at:at + n] = table.column(fs.label).to_numpy()
        at += n
    return x, y


def read_split(fs: FeatureSet, path: str) -> tuple[np.ndarray, np.ndarray]:
    """(features float32 [n, d] in manifest order, label float32 [n]) of one Parquet file."""
    return read_rows(fs, [path])
