"""Pure, vectorized preparation of validated batches: joins, derived columns, filters,
label, split. Every expression is evaluated by mlbatch.expr (the one evaluator).

raw (validated) -> prepared: everything per row, no full pass. What needs a full pass
(scaling, quantiles, vocabularies) is tf.Transform's job in preprocessing.py.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from beam_jobs.tabular.records import LINE_COL, SOURCE_COL
from mlbatch import expr
from mlbatch.errors import UsageError
from mlbatch.labels import forward_label
from mlbatch.schema import DatasetSchema, JoinSpec, SplitSpec, TableSpec

EXAMPLE_ID = "example_id"
IS_EVAL = "__eval"  # passthrough split flag of prepared rows
SPLIT_BUCKETS = 10_000
TFXIO_TYPES = {"string": pa.large_binary(), "float64": pa.float32(), "int64": pa.int64()}


class JoinError(ValueError, UsageError):
    """A declared join property does not hold on the data (named in the message)."""


def dedupe_lookup(table: TableSpec, batches: list[pa.RecordBatch], many_to_one: bool = False
                  ) -> tuple[pa.Table, int]:
    """Concatenates a lookup table's batches and keeps the first row of each declared key.

    Returns the table (sorted by source and line, so "first" is deterministic) and the
    number of duplicate rows dropped (reported in the summary, never silent). With
    `many_to_one` (the join declares it) a duplicate key raises JoinError naming both rows.
    """
    from beam_jobs.tabular.records import typed_schema

    if not batches:
        return typed_schema(table).empty_table(), 0
    t = pa.Table.from_batches(batches).sort_by([(SOURCE_COL, "ascending"),
                                                (LINE_COL, "ascending")])
    keys = [t.column(k).to_pylist() for k in table.key]
    seen, keep = {}, np.zeros(t.num_rows, dtype=bool)
    for i, k in enumerate(zip(*keys)):
        if k in seen and many_to_one:
            raise JoinError(_duplicate_message(t, table, k, seen[k], i))
        if k not in seen:
            seen[k] = i
            keep[i] = True
    return t.filter(pa.array(keep)), int((~keep).sum())


def _duplicate_message(t: pa.Table, table: TableSpec, key: tuple, first: int, second: int) -> str:
    where = [f"{t.column(SOURCE_COL)[i].as_py()}:{t.column(LINE_COL)[i].as_py()}"
             for i in (first, second)]
    return (f"table {table.name!r}: key {dict(zip(table.key, key))} appears twice ({where[0]} "
            f"and {where[1]}); the join declares many_to_one: true, so each key must be unique")


LOOKUP_ROW = "__lookup_row"


def join_lookup(left: pa.Table, right: pa.Table, join: JoinSpec) -> pa.Table:
    """Left join of the main rows with a deduplicated lookup table (row count unchanged)."""
    return join_counted(left, right, join)[0]


def _key_name(i: int) -> str:
    return f"__key{i}"


def _join_keys(left: pa.Table, right: pa.Table, join: JoinSpec) -> tuple[pa.Table, pa.Table]:
    """Both sides with the key values as __key<i> columns: the main row's key expressions
    (join.left, default its columns of the keys' names) and the lookup's key columns."""
    exprs = join.left or [expr.compile_expr(expr.quote_column(k), {k: _expr_type(left, k)})
                          for k in join.on]
    for i, e in enumerate(exprs):
        left = left.append_column(_key_name(i), expr.evaluate(e, left))
        right = right.append_column(_key_name(i), right.column(join.on[i]))
    return left, right


def _expr_type(t: pa.Table, name: str) -> str:
    typ = t.schema.field(name).type
    return "string" if pa.types.is_string(typ) or pa.types.is_large_string(typ) else \
        "float64" if pa.types.is_floating(typ) else "int64"


def join_counted(left: pa.Table, right: pa.Table, join: JoinSpec
                 ) -> tuple[pa.Table, int, np.ndarray]:
    """join_lookup, and how it went: (joined, rows that found a lookup row, the indices of
    the lookup rows some main row found); see join_outcome."""
    out, counts, used = join_outcome(left, right, join)
    return out, counts["matched"], used


def join_outcome(left: pa.Table, right: pa.Table, join: JoinSpec
                 ) -> tuple[pa.Table, dict[str, int], np.ndarray]:
    """join_lookup, and how it went: (joined, counts, the indices of the lookup rows some
    main row found). counts has `matched` and `unmatched`; an as-of join (join.as_of:
    per key the latest lookup row at or before the main row's time within the tolerance)
    also splits the unmatched rows into `late`, `too_early` and `missed` (asof_match)."""
    n, keys = left.num_rows, [_key_name(i) for i in range(len(join.on))]
    left, right = _join_keys(left, right, join)
    lookup_time = expr.evaluate(join.as_of.lookup_time, right) if join.as_of else None
    right = right.drop_columns([c for c in (SOURCE_COL, LINE_COL, *join.on)
                                if c in right.column_names])
    right = right.rename_columns([c if c in keys else join.prefix + c for c in right.column_names])
    if join.as_of:
        rows, counts = asof_match(left.select(keys), right.select(keys),
                                  expr.evaluate(join.as_of.time, left), lookup_time,
                                  join.as_of.tolerance_us)
    else:
        rows = _equal_rows(left.select(keys), right.select(keys))
        counts = {"matched": n - rows.null_count, "unmatched": rows.null_count}
    out = left.drop_columns(keys)
    picked = right.drop_columns(keys).take(rows)
    for name, col in zip(picked.column_names, picked.columns):
        out = out.append_column(name, col)
    used = np.unique(rows.drop_null().to_numpy()) if rows.null_count < n else np.zeros(0, np.int64)
    return out, counts, used


def _equal_rows(left: pa.Table, right: pa.Table) -> pa.Array:
    """Per main row the index of the lookup row with equal keys (null: none; a null key
    matches nothing). The lookup is deduplicated: at most one row per key."""
    n = left.num_rows
    left = left.append_column("__row", pa.array(np.arange(n, dtype=np.int64)))
    right = right.append_column(LOOKUP_ROW, pa.array(np.arange(right.num_rows, dtype=np.int64)))
    out = left.join(right, keys=right.column_names[:-1], join_type="left outer", use_threads=False)
    if out.num_rows != n:
        raise AssertionError(f"a lookup join changed the row count ({n} -> {out.num_rows})")
    return out.sort_by("__row").column(LOOKUP_ROW).combine_chunks()


def _group_ids(left: pa.Table, right: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """The key tuples of both sides as integers (equal keys, equal ids; -1: a null key)."""
    def joined(t: pa.Table) -> pa.Array:
        parts = [pc.cast(c, pa.string()) for c in t.columns]
        return pc.binary_join_element_wise(*parts, "\x1f").combine_chunks() \
            if len(parts) > 1 else parts[0].combine_chunks()
    both = pa.concat_arrays([joined(left), joined(right)]).dictionary_encode()
    ids = pc.fill_null(both.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    return ids[:left.num_rows], ids[left.num_rows:]


def _micros(ts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps as int64 microseconds (0 where null) and the mask of non-null ones."""
    ts = pc.cast(ts, pa.int64())
    valid = np.asarray(ts.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    return pc.fill_null(ts, 0).to_numpy(zero_copy_only=False).astype(np.int64), valid


def sort_lookup_for_asof(table: pa.Table, join: JoinSpec) -> pa.Table:
    """An as-of join's lookup table sorted once, when its side input is built
    (reading.build_lookups): by its key columns, then its lookup time (stable: equal
    times keep their order), so that asof_match only binary-searches each batch."""
    if not table.num_rows:
        return table
    time = pc.cast(expr.evaluate(join.as_of.lookup_time, table), pa.int64())
    order = pc.sort_indices(table.select(list(join.on)).append_column("__time", time),
                            sort_keys=[(c, "ascending", "at_end") for c in (*join.on, "__time")])
    return table.take(order)


def asof_rows(left_keys: pa.Table, right_keys: pa.Table, time: pa.Array, lookup_time: pa.Array,
              tolerance_us: int) -> pa.Array:
    """Per main row the index of the lookup row with equal keys and the latest time <= the
    row's time, at most tolerance_us before it (null: none). Equal times: the later row."""
    return asof_match(left_keys, right_keys, time, lookup_time, tolerance_us)[0]


def asof_match(left_keys: pa.Table, right_keys: pa.Table, time: pa.Array,
               lookup_time: pa.Array, tolerance_us: int) -> tuple[pa.Array, dict[str, int]]:
    """asof_rows, and per outcome its number of main rows: `matched`; `late` (the key has
    lookup rows at or before the row's time, but the latest is more than the tolerance
    before it); `too_early` (the key's lookup rows are all after the row's time);
    `missed` (no lookup row has the key, or the row's key or time is null); `unmatched`
    = late + too_early + missed. matched + unmatched = rows.

    The lookup rows of one key are one run sorted by time (sort_lookup_for_asof did that
    when the side input was built; an unsorted lookup is sorted here); per main row one
    binary search within its key's run, all rows at once."""
    lg, rg = _group_ids(left_keys, right_keys)
    lt, lok = _micros(time)
    rt, rok = _micros(lookup_time)
    idx = _by_key_time(np.flatnonzero(rok & (rg >= 0)), rg, rt)
    lo, hi = _runs(lg, rg[idx])
    pos = _last_at_or_before(rt[idx], lo, hi, lt) if len(idx) else lo - 1
    keyed = lok & (hi > lo)
    earlier = keyed & (pos >= lo)
    cand = idx[np.clip(pos, 0, None)] if len(idx) else np.zeros(len(lt), np.int64)
    ok = earlier & (lt - rt[cand] <= tolerance_us) if len(idx) else earlier
    matched, late, too_early = int(ok.sum()), int((earlier & ~ok).sum()), \
        int((keyed & ~earlier).sum())
    counts = {"matched": matched, "unmatched": len(lt) - matched, "late": late,
              "too_early": too_early, "missed": len(lt) - matched - late - too_early}
    return pa.array(cand, mask=~ok), counts


def _by_key_time(idx: np.ndarray, rg: np.ndarray, rt: np.ndarray) -> np.ndarray:
    """The lookup rows idx ordered by (key, time, row): as they are when each key's rows
    are one run in time order (checked, O(rows)), else sorted here."""
    g, t = rg[idx], rt[idx]
    same = g[1:] == g[:-1]
    starts = g[np.concatenate([[True], ~same])] if len(g) else g
    if not len(g) or (np.bincount(starts).max() <= 1 and (np.diff(t)[same] >= 0).all()):
        return idx
    return idx[np.lexsort((idx, t, g))]


def _runs(lg: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per main row the [lo, hi) positions of its key's run in g (the sorted lookup's key
    ids); lo == hi where the key has no lookup row or is null."""
    size = max(int(lg.max(initial=-1)), int(g.max(initial=-1))) + 1
    first, last = np.zeros(size + 1, np.int64), np.zeros(size + 1, np.int64)
    if len(g):
        bounds = np.flatnonzero(g[1:] != g[:-1]) + 1
        starts, ends = np.concatenate([[0], bounds]), np.concatenate([bounds, [len(g)]])
        first[g[starts]], last[g[starts]] = starts, ends
    key = np.where(lg >= 0, lg, size)
    return first[key], last[key]


def _last_at_or_before(times: np.ndarray, lo: np.ndarray, hi: np.ndarray, at: np.ndarray
                       ) -> np.ndarray:
    """Per main row the last position p in [lo, hi) with times[p] <= at (lo - 1: none);
    times is sorted within each [lo, hi). A binary search of all rows at once."""
    a, b = lo.copy(), hi.copy()
    while (a < b).any():
        mid = (a + b) // 2
        le = times[np.minimum(mid, len(times) - 1)] <= at
        go = a < b
        a, b = np.where(go & le, mid + 1, a), np.where(go & ~le, mid, b)
    return a - 1


def add_derived(t: pa.Table, schema: DatasetSchema) -> pa.Table:
    """The derived columns, in order (rows whose value cannot be computed hold null:
    prepare() and serving use derive_checked, which says why)."""
    return derive_checked(t, schema)[0]


def derive_checked(t: pa.Table, schema: DatasetSchema) -> tuple[pa.Table, pa.Array]:
    """The derived columns, in order (each may read the ones before it), and per row null
    or why a derived value could not be computed (a time that does not parse): such a
    row must not be used, its value would be a silent null."""
    reasons = pa.nulls(t.num_rows, pa.string())
    for d in schema.derived:
        values, bad = expr.evaluate_checked(d.expr, t)
        t = t.append_column(d.name, values)
        why = pc.binary_join_element_wise(f"derived {d.name!r}: ", bad, "")
        reasons = pc.coalesce(reasons, why)
    return t, reasons


def label_values(t: pa.Table, schema: DatasetSchema) -> pa.Array:
    """The label in its own units (float64; a binary label 1.0 where its expression is
    true), null where it cannot be computed (a source is missing, or the value is not
    finite): the one label function, which the feature job (``label_array``) and serving
    (``serving.prepare_for_serving``) share. A multiclass label is its class index
    (``class_index``), null where it has no class."""
    if schema.label.task == "multiclass_classification":
        idx, missing = class_index(expr.evaluate(schema.label.expr, t), schema)
        return pc.if_else(pa.array(missing), pa.scalar(None, pa.float64()),
                          pc.cast(idx, pa.float64()))
    values = pc.cast(expr.evaluate(schema.label.expr, t), pa.float64())
    ok = pc.fill_null(pc.is_finite(values), False)
    return pc.if_else(ok, values, pa.scalar(None, pa.float64()))


def label_array(t: pa.Table, schema: DatasetSchema) -> tuple[pa.Array, np.ndarray]:
    """(label_values as float32 with 0.0 where it cannot be computed, mask of those rows;
    a multiclass label is its class's index in ``label.classes``): tf.Transform takes no
    nulls, so the feature job excludes the masked rows."""
    if schema.label.task == "multiclass_classification":
        return class_index(expr.evaluate(schema.label.expr, t), schema)
    values = label_values(t, schema)
    missing = pc.is_null(values)
    label = pc.cast(pc.fill_null(values, 0.0), pa.float32())
    return label, np.asarray(missing.to_numpy(zero_copy_only=False))


def class_index(values: pa.Array, schema: DatasetSchema) -> tuple[pa.Array, np.ndarray]:
    """A multiclass label's class index (float32) per row, and the mask of rows it is not
    defined for: null, or (without an ``other`` class) a value not among the classes."""
    lab = schema.label
    declared = lab.classes[:-1] if lab.other is not None else lab.classes
    idx = pc.index_in(values, value_set=pa.array(declared, pa.string()))
    if lab.other is not None:
        idx = pc.if_else(pc.is_valid(values), pc.fill_null(idx, len(declared)), idx)
    missing = np.asarray(pc.is_null(idx).to_numpy(zero_copy_only=False))
    return pc.cast(pc.fill_null(idx, 0), pa.float32()), missing


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


def _label_reasons(t: pa.Table, schema: DatasetSchema, missing: np.ndarray) -> pa.Array:
    """Why each unusable label is unusable (null where the label is fine): its first
    missing source column, else the expression is undefined there."""
    lab = schema.label.expr
    reasons = pa.nulls(t.num_rows, pa.string())
    for col in lab.columns:
        reasons = pc.if_else(pc.and_(pc.is_null(reasons), pc.is_null(t.column(col))),
                             f"label source {col!r} is missing", reasons)
    undefined = f"label {lab.text!r} is undefined here (division by zero, log/sqrt out " \
                f"of domain, or not finite)"
    if schema.label.task == "multiclass_classification":
        undefined = f"label {lab.text!r} is not one of the declared classes " \
                    f"{list(schema.label.classes)} (declare it, or an other: class)"
    return pc.if_else(pc.and_(pc.is_null(reasons), pa.array(missing)), undefined,
                      pc.if_else(pa.array(missing), reasons, pa.scalar(None, pa.string())))


def filter_reasons(t: pa.Table, schema: DatasetSchema) -> pa.Array:
    """Per row, the first filter it fails (false or null, as SQL's WHERE), else null."""
    reasons = pa.nulls(t.num_rows, pa.string())
    for f in schema.filters:
        ok = expr.evaluate(f, t)
        failed = pc.and_(pc.is_null(reasons), pc.invert(pc.fill_null(ok, False)))
        why = pc.if_else(pc.is_null(ok), f"filter {f.text!r} is null (an input is missing)",
                         f"filter {f.text!r} is false")
        reasons = pc.if_else(failed, why, reasons)
    return reasons


def _hash_split(keys: list[bytes], sp: SplitSpec) -> np.ndarray:
    salted = hashlib.blake2b(sp.salt.encode(), digest_size=8)  # blake2b(salt + key)
    digests = np.empty(len(keys), np.uint64)
    for i, k in enumerate(keys):
        h = salted.copy()
        h.update(k)
        digests[i] = int.from_bytes(h.digest(), "little")
    return digests % SPLIT_BUCKETS < int(sp.eval_fraction * SPLIT_BUCKETS)


def split_is_eval(t: pa.Table, schema: DatasetSchema) -> np.ndarray:
    """Deterministic split: blake2b of salt + the record's identity, the same on every
    run and runner. Identity: the key columns (by key, by content), or the source file's
    name (not its directory) and line (by row)."""
    sp = schema.split
    if sp.by == "row":
        parts = [pc.replace_substring_regex(t.column(SOURCE_COL), r"^.*[/\\]", ""),
                 pc.cast(t.column(LINE_COL), pa.string())]
    else:
        parts = [pc.fill_null(pc.cast(t.column(k), pa.string()), "") for k in sp.key]
    keys = pc.cast(pc.binary_join_element_wise(*parts, "\x1f"), pa.binary()).to_pylist()
    return _hash_split(keys, sp)


def example_ids(t: pa.Table) -> pa.Array:
    """Lineage: every example is named by its source file and line."""
    return pc.binary_join_element_wise(t.column(SOURCE_COL),
                                       pc.cast(t.column(LINE_COL), pa.string()), ":")


def join_and_derive(main: pa.Table, lookups: dict[str, pa.Table], schema: DatasetSchema
                    ) -> tuple[pa.Table, pa.Array, dict[str, tuple[dict[str, int], np.ndarray]]]:
    """The per-row steps the feature job (``prepare_counted``) and serving
    (``serving.prepare_for_serving``) share: every join in order, the derived columns and
    ``example_id``. Returns (rows, per row null or why a derived value cannot be computed,
    per join (lookup table name): (counts, lookup rows used), see join_outcome)."""
    t, joins = main, {}
    for j in schema.joins:
        t, counts, used = join_outcome(t, lookups[j.table], j)
        joins[j.table] = (counts, used)
    t, derive_reasons = derive_checked(t, schema)
    return t.append_column(EXAMPLE_ID, example_ids(t)), derive_reasons, joins


def prepare(main: pa.Table, lookups: dict[str, pa.Table], schema: DatasetSchema
            ) -> tuple[pa.Table, pa.Table]:
    """Joins, derives, filters and labels a batch of valid main-table rows.

    Returns (prepared, excluded): prepared has the prepared columns plus example_id,
    the label and the boolean IS_EVAL; excluded lists valid-but-unusable rows (a filter
    failed, or the label cannot be computed) with the reason.
    """
    return prepare_counted(main, lookups, schema)[:2]


def prepare_counted(main: pa.Table, lookups: dict[str, pa.Table], schema: DatasetSchema
                    ) -> tuple[pa.Table, pa.Table, dict[str, tuple[dict[str, int], np.ndarray]]]:
    """prepare, and per join (lookup table name): (counts, indices of the lookup rows
    used), see join_outcome."""
    t, derive_reasons, joins = join_and_derive(main, lookups, schema)
    ids = t.column(EXAMPLE_ID)
    label, missing = label_array(t, schema)
    label, transform_reasons = transform_label(label, schema)
    reasons = pc.coalesce(derive_reasons, filter_reasons(t, schema),
                          _label_reasons(t, schema, missing),
                          pa.array(transform_reasons, pa.string()))
    out = pc.is_valid(reasons)
    excluded = pa.table({EXAMPLE_ID: ids.filter(out), "reason": reasons.filter(out)})
    t = t.append_column(schema.label.name, label)
    t = t.filter(pc.invert(out))
    t = t.append_column(IS_EVAL, pa.array(split_is_eval(t, schema)))
    return t, excluded, joins


def profile(t: pa.Table, columns: list[str]) -> dict[str, list]:
    """Per column: [rows, nulls, min, max] of a batch (min/max None when all null), the
    pieces of the all-null / constant checks (ProfileFn merges them)."""
    out = {}
    for c in columns:
        col = t.column(c)
        mm = pc.min_max(col).as_py() if col.null_count < len(col) else {"min": None, "max": None}
        out[c] = [len(col), col.null_count, mm["min"], mm["max"]]
    return out


def tfxio_inputs(t: pa.Table, schema: DatasetSchema) -> pa.RecordBatch:
    """The transform inputs of prepared rows in TFXIO's Arrow layout: one large_list
    column per input (empty list = missing). The feature job feeds these to tf.Transform
    and serving to the saved transform, both through ``tensors.tensor_adapter_config``."""
    cols, fields = [], []
    types = schema.prepared_columns()
    for name in schema.transform_inputs():
        col = t.column(name).combine_chunks()
        valid = ~np.asarray(col.is_null().to_numpy(zero_copy_only=False))
        offsets = np.concatenate([[0], np.cumsum(valid)]).astype(np.int64)
        values = pc.cast(col.filter(pa.array(valid)), TFXIO_TYPES[types[name]])
        cols.append(pa.LargeListArray.from_arrays(pa.array(offsets), values))
        fields.append(pa.field(name, cols[-1].type))
    return pa.RecordBatch.from_arrays(cols, schema=pa.schema(fields))


def to_tfxio_batch(t: pa.Table, schema: DatasetSchema) -> pa.RecordBatch:
    """The prepared rows in TFXIO's Arrow layout: ``tfxio_inputs``, and the passthrough
    columns (example id, label, and the split flag, so that train and eval can go through
    one transform)."""
    inputs = tfxio_inputs(t, schema)
    cols, fields = list(inputs.columns), list(inputs.schema)
    for name, arr in ((EXAMPLE_ID, pc.cast(t.column(EXAMPLE_ID).combine_chunks(), pa.large_binary())),
                      (schema.label.name, t.column(schema.label.name).combine_chunks()),
                      (IS_EVAL, t.column(IS_EVAL).combine_chunks())):
        offsets = pa.array(np.arange(len(arr) + 1, dtype=np.int32))
        cols.append(pa.ListArray.from_arrays(offsets, arr))
        fields.append(pa.field(name, cols[-1].type))
    return pa.RecordBatch.from_arrays(cols, schema=pa.schema(fields))
