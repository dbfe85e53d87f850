"""Pure, vectorized preparation of validated batches: joins, derived columns, label, split.

raw (validated) -> prepared: everything per row, no full pass. What needs a full pass
(scaling, quantiles, vocabularies) is tf.Transform's job in preprocessing.py.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from beam_jobs.common.records import LINE_COL, SOURCE_COL
from mlbatch.labels import forward_label
from mlbatch.schema import DatasetSchema, JoinSpec, TableSpec

EXAMPLE_ID = "example_id"
IS_EVAL = "__eval"  # passthrough split flag of prepared rows
SPLIT_BUCKETS = 10_000


def dedupe_lookup(table: TableSpec, batches: list[pa.RecordBatch]) -> tuple[pa.Table, int]:
    """Concatenates a lookup table's batches and keeps the first row of each declared key.

    Returns the table (sorted by source and line, so "first" is deterministic) and the
    number of duplicate rows dropped (reported in the summary, never silent).
    """
    from beam_jobs.common.records import typed_schema

    if not batches:
        return typed_schema(table).empty_table(), 0
    t = pa.Table.from_batches(batches).sort_by([(SOURCE_COL, "ascending"),
                                                (LINE_COL, "ascending")])
    keys = [t.column(k).to_pylist() for k in table.key]
    seen, keep = set(), np.zeros(t.num_rows, dtype=bool)
    for i, k in enumerate(zip(*keys)):
        if k not in seen:
            seen.add(k)
            keep[i] = True
    return t.filter(pa.array(keep)), int((~keep).sum())


def join_lookup(left: pa.Table, right: pa.Table, join: JoinSpec) -> pa.Table:
    """Left join of the main rows with a deduplicated lookup table (row count unchanged)."""
    right = right.drop_columns([c for c in (SOURCE_COL, LINE_COL) if c in right.column_names])
    right = right.rename_columns([c if c in join.on else join.prefix + c
                                  for c in right.column_names])
    n = left.num_rows
    left = left.append_column("__row", pa.array(np.arange(n, dtype=np.int64)))
    out = left.join(right, keys=list(join.on), join_type="left outer", use_threads=False)
    if out.num_rows != n:
        raise AssertionError(f"join with {join.table} changed the row count ({n} -> {out.num_rows})")
    return out.sort_by("__row").drop_columns(["__row"])


def _derive(t: pa.Table, fn: str, args: tuple) -> pa.Array:
    vals = [t.column(a) if isinstance(a, str) else a for a in args]
    if fn == "floordiv":
        a, b = vals
        mask = np.asarray(a.is_null().to_numpy(zero_copy_only=False))
        num = np.floor_divide(np.where(mask, 0, a.to_numpy(zero_copy_only=False)), b)
        return pa.array(num.astype(np.int64) if pa.types.is_integer(a.type) else num, mask=mask)
    if fn == "subtract":
        return pc.subtract(*vals)
    if fn == "day_of_week":  # ISO: Monday = 0 .. Sunday = 6
        y, m, d = (np.asarray(v.to_numpy(zero_copy_only=False)) for v in vals)
        dates = (y.astype("int64") - 1970).astype("datetime64[Y]") + \
            (m.astype("int64") - 1).astype("timedelta64[M]")
        days = dates.astype("datetime64[D]") + (d.astype("int64") - 1).astype("timedelta64[D]")
        return pa.array(((days.astype("int64") + 3) % 7).astype(np.int64))
    raise ValueError(f"unknown derived fn {fn!r}")


def add_derived(t: pa.Table, schema: DatasetSchema) -> pa.Table:
    for d in schema.derived:
        t = t.append_column(d.name, _derive(t, d.fn, d.args))
    return t


def label_array(t: pa.Table, schema: DatasetSchema) -> tuple[pa.Array, np.ndarray]:
    """(label as float32, mask of rows whose label cannot be computed)."""
    lab = schema.label
    src = t.column(lab.column)
    missing = np.asarray(src.is_null().to_numpy(zero_copy_only=False))
    values = src.to_numpy(zero_copy_only=False).astype(np.float64)
    if lab.task == "binary_classification":
        ops = {">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal,
               "==": np.equal}
        values = ops[lab.op](np.where(missing, 0, values), lab.value).astype(np.float32)
    return pa.array(np.where(missing, 0, values).astype(np.float32)), missing


def transform_label(values: pa.Array, schema: DatasetSchema) -> tuple[pa.Array, list[str | None]]:
    """Applies the schema's regression label transform (``label.transform``).

    Returns the float32 labels and, per row, None or the reason it cannot be transformed
    (log1p of a value <= -1): such rows are excluded, never silently dropped.
    """
    kind = schema.label.transform
    raw = values.to_numpy(zero_copy_only=False)
    out, bad = forward_label(raw, kind)
    reasons = [f"label {schema.label.name!r} = {v!r} is outside the domain of {kind} (> -1)"
               if b else None for v, b in zip(raw.tolist(), bad.tolist())]
    return pa.array(out.astype(np.float32)), reasons


def split_is_eval(t: pa.Table, schema: DatasetSchema) -> np.ndarray:
    """Deterministic split: blake2b of salt + key columns, the same on every run and runner."""
    sp = schema.split
    keys = pc.cast(pc.binary_join_element_wise(
        *[pc.fill_null(pc.cast(t.column(k), pa.string()), "") for k in sp.key],
        "\x1f"), pa.binary()).to_pylist()
    salted = hashlib.blake2b(sp.salt.encode(), digest_size=8)  # blake2b(salt + key)
    digests = np.empty(len(keys), np.uint64)
    for i, k in enumerate(keys):
        h = salted.copy()
        h.update(k)
        digests[i] = int.from_bytes(h.digest(), "little")
    return digests % SPLIT_BUCKETS < int(sp.eval_fraction * SPLIT_BUCKETS)


def example_ids(t: pa.Table) -> pa.Array:
    """Lineage: every example is named by its source file and line."""
    return pc.binary_join_element_wise(t.column(SOURCE_COL),
                                       pc.cast(t.column(LINE_COL), pa.string()), ":")


def prepare(main: pa.Table, lookups: dict[str, pa.Table], schema: DatasetSchema
            ) -> tuple[pa.Table, pa.Table]:
    """Joins, derives and labels a batch of valid main-table rows.

    Returns (prepared, excluded): prepared has the prepared columns plus example_id,
    the label and the boolean IS_EVAL; excluded lists valid-but-unusable rows with reasons.
    """
    t = main
    for j in schema.joins:
        t = join_lookup(t, lookups[j.table], j)
    t = add_derived(t, schema)
    ids = example_ids(t)
    label, missing = label_array(t, schema)
    label, reasons = transform_label(label, schema)
    reasons = [f"label source {schema.label.column!r} is missing" if m else r
               for m, r in zip(missing.tolist(), reasons)]
    missing = np.array([r is not None for r in reasons], dtype=bool)
    t = t.append_column(EXAMPLE_ID, ids).append_column(schema.label.name, label)
    excluded = pa.table({
        EXAMPLE_ID: ids.filter(pa.array(missing)),
        "reason": pa.array([r for r in reasons if r is not None], pa.string())})
    t = t.filter(pa.array(~missing))
    t = t.append_column(IS_EVAL, pa.array(split_is_eval(t, schema)))
    return t, excluded


def to_tfxio_batch(t: pa.Table, schema: DatasetSchema) -> pa.RecordBatch:
    """The prepared rows in TFXIO's Arrow layout: one large_list column per transform
    input (empty list = missing), and the passthrough columns (example id, label, and
    the split flag, so that train and eval can go through one transform)."""
    cols, fields = [], []
    types = schema.prepared_columns()
    for name in schema.transform_inputs():
        col = t.column(name).combine_chunks()
        valid = ~np.asarray(col.is_null().to_numpy(zero_copy_only=False))
        offsets = np.concatenate([[0], np.cumsum(valid)]).astype(np.int64)
        values = col.filter(pa.array(valid))
        if types[name] == "string":
            values = pc.cast(values, pa.large_binary())
        elif types[name] == "float64":
            values = pc.cast(values, pa.float32())
        cols.append(pa.LargeListArray.from_arrays(pa.array(offsets), values))
        fields.append(pa.field(name, cols[-1].type))
    for name, arr in ((EXAMPLE_ID, pc.cast(t.column(EXAMPLE_ID).combine_chunks(), pa.large_binary())),
                      (schema.label.name, t.column(schema.label.name).combine_chunks()),
                      (IS_EVAL, t.column(IS_EVAL).combine_chunks())):
        offsets = pa.array(np.arange(len(arr) + 1, dtype=np.int32))
        cols.append(pa.ListArray.from_arrays(offsets, arr))
        fields.append(pa.field(name, cols[-1].type))
    return pa.RecordBatch.from_arrays(cols, schema=pa.schema(fields))
