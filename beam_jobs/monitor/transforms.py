"""The monitor's DoFns and composites: edges of the training range, mergeable statistics,
the transform-skew sample and the comparison of its re-transformed rows. No IO."""
from __future__ import annotations

import hashlib

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tfx_bsl.sketches import QuantilesSketch

from beam_jobs.tabular import prepare, serving
from beam_jobs.monitor import drift, stats

SKETCH_EPSILON = 0.001  # decile edges within 0.1% of rank of the exact ones
MAX_SKETCH_VALUES = 1 << 32
SAMPLE_BUCKETS = 1 << 20


class TrainingEdgesFn(beam.CombineFn):
    """Tables -> {column: {"standard": edges, "quantile": edges}} of the numeric columns:
    exact minimum and maximum, deciles from a quantile sketch."""

    def __init__(self, columns: list[stats.Column], num_buckets: int = drift.NUM_BUCKETS):
        self._columns = [c for c in columns if c.kind == "numeric"]
        self._num_buckets = num_buckets

    def create_accumulator(self) -> dict:
        return {c.key: [np.inf, -np.inf, QuantilesSketch(SKETCH_EPSILON, MAX_SKETCH_VALUES, 1)]
                for c in self._columns}

    def add_input(self, acc: dict, table: pa.Table) -> dict:
        for c in self._columns:
            v = stats.numbers(table.column(c.column_name))
            v = v[~np.isnan(v)]
            if v.size:
                entry = acc[c.key]
                entry[0], entry[1] = min(entry[0], float(v.min())), max(entry[1], float(v.max()))
                entry[2].AddValues(pa.array(v))
        return acc

    def merge_accumulators(self, accs) -> dict:
        accs = iter(accs)
        out = next(accs)
        for a in accs:
            for name, (lo, hi, sketch) in a.items():
                entry = out[name]
                entry[0], entry[1] = min(entry[0], lo), max(entry[1], hi)
                entry[2].Merge(sketch)
        return out

    def extract_output(self, acc: dict) -> dict:
        out = {}
        for name, (lo, hi, sketch) in acc.items():
            if not np.isfinite(lo):
                raise ValueError(f"column {name!r} has no values in the training data: no "
                                 f"training range to bucket")
            q = np.array(sketch.GetQuantiles(self._num_buckets).to_pylist()[0], np.float64)
            q[0], q[-1] = lo, hi
            out[name] = {"standard": drift.standard_edges(lo, hi, self._num_buckets),
                         "quantile": drift.quantile_edges(np.clip(q, lo, hi))}
        return out


class TableStatisticsFn(beam.DoFn):
    """A table -> its partial statistics (stats.table_statistics) over the side input's
    edges."""

    def __init__(self, columns: list[stats.Column]):
        self._columns = columns

    def process(self, table: pa.Table, edges: dict):
        if table.num_rows:
            yield stats.table_statistics(table, self._columns, edges)


class MergeStatisticsFn(beam.CombineFn):
    def create_accumulator(self) -> dict:
        return {}

    def add_input(self, acc: dict, part: dict) -> dict:
        return stats.merge_statistics([acc, part])

    def merge_accumulators(self, accs) -> dict:
        return stats.merge_statistics(list(accs))

    def extract_output(self, acc: dict) -> dict:
        return acc


class ComputeStatistics(beam.PTransform):
    """Tables -> one dict of statistics of ``columns`` over ``edges`` (a singleton)."""

    def __init__(self, columns: list[stats.Column], edges):
        super().__init__()
        self._columns, self._edges = columns, edges

    def expand(self, tables):
        return (tables
                | "TableStatistics" >> beam.ParDo(TableStatisticsFn(self._columns),
                                                  beam.pvalue.AsSingleton(self._edges))
                | "MergeStatistics" >> beam.CombineGlobally(MergeStatisticsFn()))


def keep_train(t: pa.Table, schema) -> pa.Table:
    """The prepared rows the feature job trained on: the train split, with a label."""
    keep = pc.and_(pc.invert(pa.array(prepare.split_is_eval(t, schema))),
                   pc.is_valid(t.column(serving.LABEL)))
    return t.filter(keep)


def in_sample(ids: pa.Array | pa.ChunkedArray, rate: float) -> np.ndarray:
    """A deterministic sample of example ids (BLAKE2 of the id below rate)."""
    cut = int(rate * SAMPLE_BUCKETS)
    return np.array([int.from_bytes(hashlib.blake2b(
        (i if isinstance(i, bytes) else str(i).encode()), digest_size=4).digest(), "little")
        % SAMPLE_BUCKETS < cut for i in ids.to_pylist()], dtype=bool)


def sample_rows(t: pa.Table, rate: float) -> pa.Table:
    return t.filter(pa.array(in_sample(t.column(prepare.EXAMPLE_ID), rate)))


def keyed_rows(t: pa.Table, names: list[str]):
    """(example_id as str, {feature: value}) per row."""
    ids = t.column(prepare.EXAMPLE_ID).to_pylist()
    cols = {n: t.column(n).to_pylist() for n in names}
    for i, ex in enumerate(ids):
        yield (ex.decode() if isinstance(ex, bytes) else ex), {n: cols[n][i] for n in names}


def compare_rows(element, numeric: set[str], names: list[str]) -> dict:
    """One example's re-transformed features against the written ones: the features
    that differ (floats beyond 1e-6 relative; ids exactly) and whether a side is missing."""
    _, sides = element
    again, written = list(sides["again"]), list(sides["written"])
    if len(again) != 1 or len(written) != 1:
        return {"missing": True, "differs": {}}
    a, w = again[0], written[0]
    differs = {}
    for n in names:
        if n in numeric:
            diff = abs(float(a[n]) - float(w[n]))
            if not diff <= 1e-6 * max(1.0, abs(float(w[n]))):
                differs[n] = diff
        elif int(a[n]) != int(w[n]):
            differs[n] = 1.0
    return {"missing": False, "differs": differs}


def summarize_skew(results: list[dict], names: list[str]) -> dict:
    """drift.json's "transform_skew" from compare_rows results."""
    per = {n: [0, 0.0] for n in names}
    for r in results:
        for n, d in r["differs"].items():
            per[n][0] += 1
            per[n][1] = max(per[n][1], d)
    compared = [r for r in results if not r["missing"]]
    return {"sampled": len(compared), "missing": len(results) - len(compared),
            "mismatches": sum(1 for r in compared if r["differs"]),
            "features": [{"name": n, "mismatches": k, "max_abs_diff": d}
                         for n, (k, d) in per.items()]}
