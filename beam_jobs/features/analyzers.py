"""All of a schema's full-pass statistics in one Beam combine, fed to tf.Transform.

tf.Transform expands every analyzer call (`tft.scale_to_z_score`, `tft.bucketize`,
`tft.compute_and_apply_vocabulary`, ...) into its own Beam sub-graph. The flights recipe
has 19 of them, and the job's pipeline had 1,390 applied transforms (415 with the fused
pass). Building, translating and setting up those sub-graphs cost more than the data
work on a few hundred thousand rows (about 1 s per vocabulary, measured).
`FusedAnalyzer` computes the same statistics in a single
pass, one `CombineGlobally` over the analysis batches, and hands them to tf.Transform
through its public `tft.experimental.ptransform_analyzer` hook. The mappers that use
them (`tft.apply_buckets`, `tft.apply_vocabulary`) and the SavedModel are tf.Transform's
own, so serving applies exactly what the job wrote.

Statistics and their tf.Transform counterparts (same definitions, checked by tests):

* moments per numeric column (count, mean, M2; merged with Chan et al.'s formula) and
  min/max: `scale_to_z_score` (variance over the values present, or over the filled
  values when the fill is a constant) and `scale_to_0_1`;
* a weighted quantile sketch per bucketized column (tfx_bsl's `QuantilesSketch`, the one
  `tft.quantiles` uses, same epsilon rule); rows filled with the mean enter as one
  weighted point, so the boundaries are those of the filled column;
* token counts per vocabulary: order by count then token (both descending), drop empty
  tokens and tokens with a line break, apply frequency_threshold then top_k, as
  `tft.vocabulary` does. The counts of a vocabulary are held by the final merge, as
  tf.Transform's own top-k ordering holds them.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.io.filesystems import FileSystems
from tensorflow_transform.beam.experimental import PTransformAnalyzer
from tfx_bsl.sketches import QuantilesSketch


MAX_SKETCH_VALUES = 1 << 32  # the error bound holds up to this many values per column
EMPTY_VOCAB_TOKEN = {"string": b"__EMPTY_VOCABULARY__", "int64": b"-1"}


def bucket_epsilon(num_buckets: int) -> float:
    """tft.bucketize's default error tolerance for `num_buckets` buckets."""
    return min(1.0 / num_buckets, 0.01)


@dataclasses.dataclass(frozen=True)
class ScaleSpec:
    """A numeric feature: `column` (index into the numeric inputs) scaled by `scale`."""
    column: int
    scale: str  # "z_score" | "scale_0_1"
    fill: Any  # "mean" or a number


@dataclasses.dataclass(frozen=True)
class BucketSpec:
    column: int
    num_buckets: int
    fill: Any


@dataclasses.dataclass(frozen=True)
class VocabSpec:
    filename: str
    dtype: str  # "string" | "int64"
    top_k: int | None
    frequency_threshold: int | None


@dataclasses.dataclass(frozen=True)
class AnalysisSpec:
    """What the fused pass computes. Inputs, in order: one float32 [batch, n_columns]
    matrix (NaN = missing) when n_columns > 0, then one dense [batch] tensor per vocab."""
    n_columns: int
    scales: tuple[ScaleSpec, ...]
    buckets: tuple[BucketSpec, ...]
    vocabs: tuple[VocabSpec, ...]

    def sketch_epsilons(self) -> dict[int, float]:
        eps: dict[int, float] = {}
        for b in self.buckets:
            eps[b.column] = min(eps.get(b.column, 1.0), bucket_epsilon(b.num_buckets))
        return eps


# Moments columns: count of present values, their mean, M2 (sum of squared deviations),
# min, max; then the count of missing values.
N, MEAN, M2, MIN, MAX, MISSING = range(6)


def _empty_moments(n_columns: int) -> np.ndarray:
    m = np.zeros((n_columns, 6))
    m[:, MIN], m[:, MAX] = np.inf, -np.inf
    return m


def batch_moments(x: np.ndarray) -> np.ndarray:
    """Moments of one [batch, n_columns] float matrix, NaN meaning missing."""
    x = np.asarray(x, dtype=np.float64)
    present = ~np.isnan(x)
    n = present.sum(axis=0).astype(np.float64)
    out = _empty_moments(x.shape[1])
    out[:, N] = n
    out[:, MISSING] = x.shape[0] - n
    has = n > 0
    if has.any():
        xs = x[:, has]
        mean = np.nanmean(xs, axis=0)
        out[has, MEAN] = mean
        out[has, M2] = np.nansum((xs - mean) ** 2, axis=0)
        out[has, MIN] = np.nanmin(xs, axis=0)
        out[has, MAX] = np.nanmax(xs, axis=0)
    return out


def merge_moments(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Chan, Golub and LeVeque's pairwise update: exact to rounding, in any order."""
    out = np.empty_like(a)
    n = a[:, N] + b[:, N]
    safe = np.where(n > 0, n, 1.0)
    delta = b[:, MEAN] - a[:, MEAN]
    out[:, N] = n
    out[:, MEAN] = np.where(n > 0, a[:, MEAN] + delta * b[:, N] / safe, 0.0)
    out[:, M2] = a[:, M2] + b[:, M2] + delta * delta * a[:, N] * b[:, N] / safe
    out[:, MIN] = np.minimum(a[:, MIN], b[:, MIN])
    out[:, MAX] = np.maximum(a[:, MAX], b[:, MAX])
    out[:, MISSING] = a[:, MISSING] + b[:, MISSING]
    return out


def _count_tokens(values: np.ndarray, dtype: str) -> dict:
    """Token -> count of one batch of a vocabulary's input (pyarrow's hash kernel)."""
    arr = pa.array(np.asarray(values).ravel(),
                   type=pa.binary() if dtype == "string" else pa.int64())
    vc = pc.value_counts(arr)
    return dict(zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist()))


class _Accumulator:
    __slots__ = ("moments", "sketches", "counts")

    def __init__(self, moments, sketches, counts):
        self.moments, self.sketches, self.counts = moments, sketches, counts


class FusedStatsFn(beam.CombineFn):
    """Moments, quantile sketches and token counts of the analysis batches in one pass."""

    def __init__(self, spec: AnalysisSpec):
        self._spec = spec

    def create_accumulator(self) -> _Accumulator:
        sketches = {c: QuantilesSketch(e, MAX_SKETCH_VALUES, 1)
                    for c, e in self._spec.sketch_epsilons().items()}
        return _Accumulator(_empty_moments(self._spec.n_columns), sketches,
                            [{} for _ in self._spec.vocabs])

    def add_input(self, acc: _Accumulator, batch) -> _Accumulator:
        batch = list(batch)
        if self._spec.n_columns:
            x = np.asarray(batch.pop(0), dtype=np.float32).reshape(-1, self._spec.n_columns)
            acc.moments = merge_moments(acc.moments, batch_moments(x))
            for c, sketch in acc.sketches.items():
                col = x[:, c]
                sketch.AddValues(pa.array(col[~np.isnan(col)]))
        for counts, values, v in zip(acc.counts, batch, self._spec.vocabs):
            for token, k in _count_tokens(values, v.dtype).items():
                counts[token] = counts.get(token, 0) + k
        return acc

    def merge_accumulators(self, accs) -> _Accumulator:
        accs = iter(accs)
        out = next(accs)
        for a in accs:
            out.moments = merge_moments(out.moments, a.moments)
            for c, sketch in a.sketches.items():
                out.sketches[c].Merge(sketch)
            for mine, theirs in zip(out.counts, a.counts):
                for token, k in theirs.items():
                    mine[token] = mine.get(token, 0) + k
        return out

    def compact(self, acc: _Accumulator) -> _Accumulator:
        for sketch in acc.sketches.values():
            sketch.Compact()
        return acc

    def extract_output(self, acc: _Accumulator) -> dict:
        m, eps = acc.moments, self._spec.sketch_epsilons()
        return {
            "scale_params": np.array([scale_params(m[s.column], s) for s in self._spec.scales],
                                     dtype=np.float32).reshape(-1, 3),
            "bucket_fills": np.array([fill_value(m[b.column], b.fill) for b in self._spec.buckets],
                                     dtype=np.float32),
            "boundaries": [bucket_boundaries(acc.sketches[b.column], eps[b.column],
                                             m[b.column], b) for b in self._spec.buckets],
            "vocabularies": [order_vocabulary(c, v) for c, v in zip(acc.counts, self._spec.vocabs)],
        }


def fill_value(moments: np.ndarray, fill) -> float:
    """The value missing entries get: the mean of the present ones, or a constant."""
    if fill == "mean":
        return float(moments[MEAN]) if moments[N] > 0 else 0.0
    return float(fill)


def scale_params(moments: np.ndarray, spec: ScaleSpec) -> tuple[float, float, float]:
    """(fill, center, scale) of a numeric feature: out = (filled - center) / scale, or
    filled - center (z-score) / sigmoid(filled) (0-1) when scale is 0, as tf.Transform."""
    n, missing = moments[N], moments[MISSING]
    fill = fill_value(moments, spec.fill)
    if spec.scale == "z_score":
        if spec.fill == "mean":  # z-score of the present values; missing -> exactly 0
            mean, m2, count = moments[MEAN], moments[M2], n
        else:  # the constant-filled column: one more group of `missing` values at `fill`
            count = n + missing
            delta = fill - moments[MEAN]
            mean = (moments[MEAN] * n + fill * missing) / count if count else 0.0
            m2 = moments[M2] + delta * delta * n * missing / count if count else 0.0
        std = float(np.sqrt(m2 / count)) if count else 0.0
        return fill, float(mean) if count else 0.0, std
    lo, hi = moments[MIN], moments[MAX]
    if missing:
        lo, hi = min(lo, fill), max(hi, fill)
    if not np.isfinite(lo) or not np.isfinite(hi):
        return fill, 0.0, 0.0
    return fill, float(lo), float(hi - lo)


def bucket_boundaries(sketch: QuantilesSketch, epsilon: float, moments: np.ndarray,
                      spec: BucketSpec) -> np.ndarray:
    """num_buckets - 1 boundaries of the filled column ([1, k], as tft.quantiles).
    `epsilon` is the column sketch's (the smallest any bucketization of it asks for)."""
    k = spec.num_buckets - 1
    merged = QuantilesSketch(epsilon, MAX_SKETCH_VALUES, 1)  # a copy: the fill is per feature
    merged.Merge(sketch)
    if moments[MISSING]:
        merged.AddValues(pa.array([fill_value(moments, spec.fill)], pa.float64()),
                         pa.array([float(moments[MISSING])], pa.float64()))
    q = merged.GetQuantiles(spec.num_buckets).to_pylist()
    if not q or not q[0]:
        return np.zeros((1, k), np.float32)
    return np.array(q[0][1:-1], np.float32).reshape(1, k)


def order_vocabulary(counts: dict, spec: VocabSpec) -> list[bytes]:
    """Tokens by count, then token, both descending; threshold, then top_k."""
    entries = []
    for token, k in counts.items():
        if spec.dtype == "string":
            if not token or b"\n" in token or b"\r" in token:
                continue  # a vocabulary file holds one token per line
        else:
            token = str(token).encode()
        entries.append((k, token))
    if spec.frequency_threshold is not None and spec.frequency_threshold > 1:
        entries = [e for e in entries if e[0] >= spec.frequency_threshold]
    entries.sort(reverse=True)
    if spec.top_k is not None:
        entries = entries[:spec.top_k]
    return [t for _, t in entries] or [EMPTY_VOCAB_TOKEN[spec.dtype]]


class _EmitOutputsFn(beam.DoFn):
    """The combined statistics -> one tagged output per analyzer output tensor; writes
    the vocabulary files (their paths are the outputs, and become SavedModel assets)."""

    def __init__(self, spec: AnalysisSpec, temp_dir: str, tags: list[str]):
        self._spec, self._temp_dir, self._tags = spec, temp_dir, tags

    def process(self, stats: dict):
        values = []
        if self._spec.n_columns and self._spec.scales:
            values.append(stats["scale_params"])
        if self._spec.n_columns and self._spec.buckets:
            values += [stats["bucket_fills"], *stats["boundaries"]]
        for tokens, v in zip(stats["vocabularies"], self._spec.vocabs):
            path = FileSystems.join(self._temp_dir, v.filename)
            with FileSystems.create(path) as f:
                f.write(b"".join(t + b"\n" for t in tokens))
            values.append(np.array(path.encode()))
        for tag, value in zip(self._tags, values):
            yield beam.pvalue.TaggedOutput(tag, value)


class FusedAnalyzer(PTransformAnalyzer):
    """The ptransform of `tft.experimental.ptransform_analyzer`: analysis batches (tuples
    of ndarrays) -> one single-element PCollection per output, in `output_layout` order."""

    def __init__(self, spec: AnalysisSpec):
        super().__init__()
        self._spec = spec

    def expand(self, batches):
        tags = [f"out{i}" for i in range(len(output_layout(self._spec)))]
        outputs = (batches
                   | "Combine" >> beam.CombineGlobally(FusedStatsFn(self._spec))
                   | "Emit" >> beam.ParDo(
                       _EmitOutputsFn(self._spec, self.base_temp_dir, tags)).with_outputs(*tags))
        return tuple(outputs[t] for t in tags)


def output_layout(spec: AnalysisSpec) -> list[tuple[str, list[int], bytes | None]]:
    """(dtype, shape, asset default content) of each analyzer output: the scaling
    parameters, the bucket fill values and boundaries (when there are numeric columns),
    then the vocabulary file paths."""
    layout = []
    # A zero-size tensor cannot be an analyzer output: each part only when it has entries.
    if spec.n_columns and spec.scales:
        layout.append(("float32", [len(spec.scales), 3], None))
    if spec.n_columns and spec.buckets:
        layout.append(("float32", [len(spec.buckets)], None))
        layout += [("float32", [1, b.num_buckets - 1], None) for b in spec.buckets]
    layout += [("string", [], EMPTY_VOCAB_TOKEN[v.dtype] + b"\n") for v in spec.vocabs]
    return layout


def split_spec(spec: AnalysisSpec) -> tuple[AnalysisSpec, AnalysisSpec]:
    """(numeric part, vocabulary part). tft.experimental.ptransform_analyzer treats
    every output as an asset once any is (tensorflow-transform 1.21), so the statistics
    and the vocabulary files come from two analyzers; both run in the same phase."""
    return (dataclasses.replace(spec, vocabs=()),
            AnalysisSpec(n_columns=0, scales=(), buckets=(), vocabs=spec.vocabs))
