"""DoFns and composite PTransforms of the feature job. No IO, no argparse."""
from __future__ import annotations

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.metrics import Metrics

from beam_jobs.tabular import prepare
from mlbatch.schema import DatasetSchema

DEAD = "dead"
EXCLUDED = "excluded"
EVAL = "eval"
COUNTS = "counts"
LOOKUP_USED = "lookup_used"
PROFILE = "profile"


def profiled_columns(schema: DatasetSchema) -> list[str]:
    """The prepared columns checked for all-null / constant values: every derived
    column, its sources, and every feature's source column."""
    cols: list[str] = []
    for d in schema.derived:
        cols += [*d.expr.columns, d.name]
    cols += schema.transform_inputs()
    return list(dict.fromkeys(cols))


class PrepareExamplesFn(beam.DoFn):
    """Valid main rows -> joined, derived, labelled and split TFXIO batches.

    Main output: train batches; EVAL: eval batches; EXCLUDED: valid rows that cannot be
    used for training (Arrow tables: example_id, reason); COUNTS: (stage, n) pairs.
    `together`: train and eval rows stay in one main-output batch (their split flag routes
    them after the transform, SplitTransformedFn), so that no Flatten has to join the two
    again: Beam's local runner materializes a Flatten's input before its consumer runs.
    """

    def __init__(self, schema: DatasetSchema, together: bool = False):
        self._schema = schema
        self._together = together
        self._profiled = profiled_columns(schema)
        self._excluded = Metrics.counter("features", "excluded")

    def process(self, batch: pa.RecordBatch, **lookups):
        prepared, excluded, joins = prepare.prepare_counted(pa.Table.from_batches([batch]),
                                                            lookups, self._schema)
        if not self._together:  # pass 2 (together) counts nothing: pass 1 did
            yield from self._accounting(prepared, joins)
        self._excluded.inc(excluded.num_rows)
        if excluded.num_rows:
            yield beam.pvalue.TaggedOutput(EXCLUDED, excluded)
        is_eval = prepared.column(prepare.IS_EVAL).to_numpy(zero_copy_only=False)
        if self._together and prepared.num_rows:
            yield prepare.to_tfxio_batch(prepared, self._schema)
        for split, mask in (("train", ~is_eval), (EVAL, is_eval)):
            part = prepared.filter(pa.array(mask))
            yield beam.pvalue.TaggedOutput(COUNTS, (split, part.num_rows))
            if part.num_rows and not self._together:
                tfxio = prepare.to_tfxio_batch(part, self._schema)
                yield tfxio if split == "train" else beam.pvalue.TaggedOutput(EVAL, tfxio)
        yield beam.pvalue.TaggedOutput(COUNTS, ("excluded", excluded.num_rows))

    def _accounting(self, prepared: pa.Table, joins: dict):
        """Per join: matched / unmatched rows and an as-of join's late / too_early /
        missed rows (COUNTS), the lookup rows used (LOOKUP_USED); the PROFILE of the
        prepared (train and eval) rows."""
        for table, (counts, used) in joins.items():
            for outcome, rows in counts.items():
                yield beam.pvalue.TaggedOutput(COUNTS, (f"join_{table}_{outcome}", rows))
            yield beam.pvalue.TaggedOutput(LOOKUP_USED, (table, used))
        yield beam.pvalue.TaggedOutput(PROFILE, prepare.profile(prepared, self._profiled))


class UsedRowsFn(beam.CombineFn):
    """(lookup table, indices of its rows a batch used) -> {table: rows used at all}."""

    def create_accumulator(self):
        return {}

    def add_input(self, acc, element):
        table, used = element
        acc.setdefault(table, set()).update(used.tolist())
        return acc

    def merge_accumulators(self, accs):
        out: dict = {}
        for a in accs:
            for table, rows in a.items():
                out.setdefault(table, set()).update(rows)
        return out

    def extract_output(self, acc):
        return {table: len(rows) for table, rows in acc.items()}


def _merge_profile(a: list, b: list) -> list:
    lo = [v for v in (a[2], b[2]) if v is not None]
    hi = [v for v in (a[3], b[3]) if v is not None]
    return [a[0] + b[0], a[1] + b[1], min(lo) if lo else None, max(hi) if hi else None]


class ProfileFn(beam.CombineFn):
    """prepare.profile dicts of every batch -> one: per column [rows, nulls, min, max]."""

    def create_accumulator(self):
        return {}

    def add_input(self, acc, profile):
        for col, p in profile.items():
            acc[col] = _merge_profile(acc[col], p) if col in acc else list(p)
        return acc

    def merge_accumulators(self, accs):
        out: dict = {}
        for a in accs:
            out = self.add_input(out, a)
        return out

    def extract_output(self, acc):
        return acc


class SplitTransformedFn(beam.DoFn):
    """tf.Transform's output batches of train and eval together -> train batches (main)
    and EVAL batches, by the passthrough split flag."""

    def process(self, element):
        batch = element[0] if isinstance(element, tuple) else element
        is_eval = batch.column(prepare.IS_EVAL).flatten().to_numpy(zero_copy_only=False)
        if is_eval.all():
            yield beam.pvalue.TaggedOutput(EVAL, batch)
        elif not is_eval.any():
            yield batch
        else:
            yield batch.filter(pa.array(~is_eval))
            yield beam.pvalue.TaggedOutput(EVAL, batch.filter(pa.array(is_eval)))


def output_schema(schema: DatasetSchema) -> pa.Schema:
    """The declared Arrow schema of train/ and eval/ Parquet."""
    fields = [pa.field(f.name, pa.float32(), nullable=False) for f in schema.numeric]
    fields += [pa.field(f.name, pa.int64(), nullable=False)
               for f in [*schema.buckets, *schema.vocabularies, *schema.hashes, *schema.crosses]]
    fields += [pa.field(schema.label.name, pa.float32(), nullable=False),
               pa.field(prepare.EXAMPLE_ID, pa.string(), nullable=False)]
    return pa.schema(fields)


def flatten_transformed(element, out_schema: pa.Schema) -> pa.Table:
    """tf.Transform's output batch (one-value list columns) -> flat typed Arrow table."""
    batch = element[0] if isinstance(element, tuple) else element
    n = batch.num_rows
    cols = []
    for field in out_schema:
        col = batch.column(field.name)
        values = col.flatten()
        if len(values) != n:
            raise ValueError(f"transformed column {field.name!r} has {len(values)} values "
                             f"for {n} rows (expected exactly one each)")
        cols.append(values.cast(field.type))
    return pa.Table.from_arrays(cols, schema=out_schema)


class FeatureStatsFn(beam.CombineFn):
    """Per-feature statistics of the transformed train split: count, mean, stddev, min,
    max for numeric features; the ten most frequent ids for categorical ones."""

    def __init__(self, numeric: list[str], categorical: list[str]):
        self._numeric, self._categorical = numeric, categorical

    def create_accumulator(self):
        return {"n": 0,
                "num": {c: np.array([0.0, 0.0, np.inf, -np.inf, 0.0]) for c in self._numeric},
                "cat": {c: {} for c in self._categorical}}

    def add_input(self, acc, table: pa.Table):
        acc["n"] += table.num_rows
        for c in self._numeric:
            x = table.column(c).to_numpy().astype(np.float64)
            s = acc["num"][c]
            s[4] += np.isnan(x).sum()  # a value the fill left missing (never, by design)
            s[0] += x.sum()
            s[1] += (x * x).sum()
            s[2] = min(s[2], x.min())
            s[3] = max(s[3], x.max())
        for c in self._categorical:
            ids, counts = np.unique(table.column(c).to_numpy(), return_counts=True)
            d = acc["cat"][c]
            for i, k in zip(ids.tolist(), counts.tolist()):
                d[i] = d.get(i, 0) + k
        return acc

    def merge_accumulators(self, accs):
        accs = list(accs)
        out = self.create_accumulator()
        for a in accs:
            out["n"] += a["n"]
            for c in self._numeric:
                s, t = out["num"][c], a["num"][c]
                s[0] += t[0]
                s[1] += t[1]
                s[2], s[3] = min(s[2], t[2]), max(s[3], t[3])
                s[4] += t[4]
            for c in self._categorical:
                d = out["cat"][c]
                for k, v in a["cat"][c].items():
                    d[k] = d.get(k, 0) + v
        return out

    def extract_output(self, acc):
        n = acc["n"]
        stats = {}
        for c in self._numeric:
            s = acc["num"][c]
            mean = s[0] / n if n else float("nan")
            var = max(s[1] / n - mean * mean, 0.0) if n else float("nan")
            stats[c] = {"count": n, "mean": mean, "stddev": var ** 0.5,
                        "min": float(s[2]) if n else None, "max": float(s[3]) if n else None,
                        "missing_after_fill": int(s[4])}
        for c in self._categorical:
            d = acc["cat"][c]
            top = sorted(d.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
            stats[c] = {"count": n, "distinct": len(d),
                        "top_values": [{"id": int(k), "count": int(v)} for k, v in top]}
        return stats


class CrossStatsFn(beam.CombineFn):
    """Per cross over train: how often each value (by its 63-bit fingerprint) occurs and
    which hash bucket it landed in. Output: distinct values, bucket collisions, rare
    values; the numbers that show overcrossing."""

    def __init__(self, crosses: list[tuple[str, str, int]], rare_threshold: int):
        self._crosses = crosses  # (feature name, fingerprint column, hash buckets)
        self._rare = rare_threshold

    def create_accumulator(self):
        return {name: {} for name, _, _ in self._crosses}

    def add_input(self, acc, batch):
        batch = batch[0] if isinstance(batch, tuple) else batch
        for name, fp_col, _ in self._crosses:
            fps = batch.column(fp_col).flatten().to_numpy()
            ids = batch.column(name).flatten().to_numpy()
            uniq, first, counts = np.unique(fps, return_index=True, return_counts=True)
            d = acc[name]
            for fp, bucket, k in zip(uniq.tolist(), ids[first].tolist(), counts.tolist()):
                entry = d.get(fp)
                d[fp] = (bucket, k + (entry[1] if entry else 0))
        return acc

    def merge_accumulators(self, accs):
        out = self.create_accumulator()
        for a in accs:
            for name, d in a.items():
                o = out[name]
                for fp, (bucket, k) in d.items():
                    entry = o.get(fp)
                    o[fp] = (bucket, k + (entry[1] if entry else 0))
        return out

    def extract_output(self, acc):
        stats = {}
        for name, _, n_buckets in self._crosses:
            d = acc[name]
            counts = np.array([k for _, k in d.values()], dtype=np.int64)
            buckets = np.array([b for b, _ in d.values()], dtype=np.int64)
            distinct, total = len(d), int(counts.sum())
            used, per_bucket = np.unique(buckets, return_counts=True)
            rare = counts < self._rare
            stats[name] = {
                "hash_buckets": n_buckets, "train_rows": total, "distinct_values": distinct,
                "buckets_used": int(len(used)),
                "bucket_collisions": distinct - int(len(used)),
                "colliding_value_share":
                    float(per_bucket[per_bucket > 1].sum() / distinct) if distinct else 0.0,
                "rare_threshold": self._rare,
                "rare_value_share": float(rare.mean()) if distinct else 0.0,
                "rare_row_share": float(counts[rare].sum() / total) if total else 0.0,
            }
        return stats
