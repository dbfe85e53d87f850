"""The tf.Transform side: raw tensor representations and the preprocessing_fn.

Both are built from the dataset schema, so the transform applied at serving time is
exactly the one analyzed here (tf.Transform saves it as a SavedModel).

Full-pass analyzers (computed over train only): z-score / 0-1 scaling, mean imputation,
quantile buckets, vocabularies. The job computes them all in one fused pass
(analyzers.py, make_preprocessing_fn); make_reference_preprocessing_fn writes the same
features with one standard tf.Transform analyzer each. Per-row: hashing and crosses
(FarmHash fingerprint, stable across runs, hosts and languages that use the same TF op).
"""
from __future__ import annotations

from typing import Callable

import tensorflow as tf
import tensorflow_transform as tft

from beam_jobs.features import analyzers
from mlbatch.schema import DatasetSchema

MISSING = b"__MISSING__"
MISSING_INT = -1
CROSS_SEPARATOR = "_X_"


def vocab_filename(column: str) -> str:
    return f"vocab_{column}"


FINGERPRINT_BUCKETS = 2**63 - 1


def cross_fingerprint_name(cross: str) -> str:
    """Output holding a 63-bit fingerprint of each cross value (before bucketing): the
    job counts distinct values, collisions and rare values from it, and serving can use
    it to compare live cross values with train (skew and drift)."""
    return f"__fingerprint_{cross}"


def raw_feature_spec(schema: DatasetSchema) -> dict[str, tf.io.VarLenFeature]:
    """tf.Example parsing spec of the raw (prepared) inputs, for serving."""
    types = schema.prepared_columns()
    dtype = {"string": tf.string, "int64": tf.int64, "float64": tf.float32}
    return {n: tf.io.VarLenFeature(dtype[types[n]]) for n in schema.transform_inputs()}


def _dense(x: tf.SparseTensor, default) -> tf.Tensor:
    return tf.squeeze(tft.sparse_tensor_to_dense_with_shape(x, [None, 1], default), axis=1)


def _filled_numeric(x: tf.SparseTensor, fill) -> tf.Tensor:
    """Dense float32; missing values become the train mean (a full pass) or a constant."""
    x = tf.cast(x, tf.float32)
    if fill == "mean":
        fill_value = tft.mean(x.values)
    else:
        fill_value = tf.constant(float(fill), tf.float32)
    dense = _dense(x, float("nan"))
    return tf.where(tf.math.is_nan(dense), fill_value, dense)


def _category(x: tf.SparseTensor) -> tf.Tensor:
    """Dense categorical value; missing is a category of its own."""
    if x.dtype == tf.string:
        return _dense(x, MISSING)
    return _dense(tf.cast(x, tf.int64), MISSING_INT)


def analysis_spec(schema: DatasetSchema) -> tuple[analyzers.AnalysisSpec, list[str]]:
    """The fused pass's spec and the numeric source columns (its matrix columns)."""
    columns: list[str] = []
    for f in [*schema.numeric, *schema.buckets]:
        if f.column not in columns:
            columns.append(f.column)
    types = schema.prepared_columns()
    spec = analyzers.AnalysisSpec(
        n_columns=len(columns),
        scales=tuple(analyzers.ScaleSpec(columns.index(f.column), f.scale, f.fill)
                     for f in schema.numeric),
        buckets=tuple(analyzers.BucketSpec(columns.index(f.column), f.num_buckets, f.fill)
                      for f in schema.buckets),
        vocabs=tuple(analyzers.VocabSpec(vocab_filename(f.column),
                                         "string" if types[f.column] == "string" else "int64",
                                         f.top_k, f.frequency_threshold)
                     for f in schema.vocabularies))
    return spec, columns


class _Categories(dict):
    """Dense categorical value of each input column, built once per trace."""

    def __init__(self, inputs: dict):
        super().__init__()
        self._inputs = inputs

    def __missing__(self, column: str) -> tf.Tensor:
        self[column] = _category(self._inputs[column])
        return self[column]


def _per_row_features(schema: DatasetSchema, categories: _Categories, buckets: dict,
                      out: dict) -> None:
    """Hashes and crosses (no analyzer): per-row FarmHash fingerprints."""
    for f in schema.hashes:
        value = categories[f.column]
        if value.dtype != tf.string:
            value = tf.strings.as_string(value)
        out[f.name] = tf.strings.to_hash_bucket_fast(value, f.hash_buckets)
    for f in schema.crosses:
        parts = []
        for col in f.columns:
            v = buckets[col] if col in buckets else categories[col]
            parts.append(v if v.dtype == tf.string else tf.strings.as_string(v))
        crossed = tf.strings.join(parts, separator=CROSS_SEPARATOR)
        out[f.name] = tf.strings.to_hash_bucket_fast(crossed, f.hash_buckets)
        out[cross_fingerprint_name(f.cross)] = tf.strings.to_hash_bucket_fast(
            crossed, FINGERPRINT_BUCKETS)


def make_preprocessing_fn(schema: DatasetSchema) -> Callable[[dict], dict]:
    """The job's preprocessing_fn: every full-pass statistic from one fused analyzer
    (analyzers.FusedAnalyzer), applied with tf.Transform's mappers. Computes the same
    features as make_reference_preprocessing_fn (tested), with one analyzer instead of
    one per feature."""
    spec, columns = analysis_spec(schema)
    numeric_spec, vocab_spec = analyzers.split_spec(spec)

    def analyze(inputs: list, part: analyzers.AnalysisSpec, name: str) -> list:
        if not inputs:
            return []
        layout = analyzers.output_layout(part)
        assets = [a for _, _, a in layout]
        return list(tft.experimental.ptransform_analyzer(
            inputs, analyzers.FusedAnalyzer(part),
            output_dtypes=[tf.dtypes.as_dtype(d) for d, _, _ in layout],
            output_shapes=[s for _, s, _ in layout],
            output_asset_default_values=assets if any(assets) else None, name=name))

    def preprocessing_fn(inputs: dict) -> dict:
        dense = {c: _dense(tf.cast(inputs[c], tf.float32), float("nan")) for c in columns}
        categories = _Categories(inputs)
        vocab_inputs = [categories[f.column] for f in schema.vocabularies]
        numeric = ([tf.stack([dense[c] for c in columns], axis=1)] if columns else [])
        stats = analyze(numeric, numeric_spec, "numeric_statistics")
        vocab_files = analyze(vocab_inputs, vocab_spec, "vocabularies")
        parts = iter(stats)
        scale_params = next(parts) if schema.numeric else None
        bucket_fills = next(parts) if schema.buckets else None
        boundaries = list(parts)
        out = {}
        for i, f in enumerate(schema.numeric):
            fill, center, scale = scale_params[i, 0], scale_params[i, 1], scale_params[i, 2]
            x = dense[f.column]
            x = tf.where(tf.math.is_nan(x), fill, x)
            if f.scale == "z_score":
                out[f.name] = tf.where(scale != 0, (x - center) / scale, x - center)
            else:
                out[f.name] = tf.where(scale > 0, (x - center) / scale, tf.math.sigmoid(x))
        buckets = {}
        for i, f in enumerate(schema.buckets):
            x = dense[f.column]
            x = tf.where(tf.math.is_nan(x), bucket_fills[i], x)
            buckets[f.name] = tft.apply_buckets(x, boundaries[i])
            out[f.name] = buckets[f.name]
        for f, path in zip(schema.vocabularies, vocab_files):
            out[f.name] = tft.apply_vocabulary(categories[f.column], path,
                                               num_oov_buckets=f.num_oov_buckets)
        _per_row_features(schema, categories, buckets, out)
        return out

    return preprocessing_fn


def make_reference_preprocessing_fn(schema: DatasetSchema) -> Callable[[dict], dict]:
    """The same features written the canonical way, one tf.Transform analyzer per
    feature (tft.scale_to_z_score, tft.bucketize, tft.compute_and_apply_vocabulary). The
    benchmark's canonical pipeline runs it; tests check the job's fused version against it."""

    def preprocessing_fn(inputs: dict) -> dict:
        out = {}
        for f in schema.numeric:
            if f.scale == "z_score" and f.fill == "mean":
                # Mean imputation then z-score is z-scoring the present values and
                # putting 0 where a value is missing: one analyzer instead of two.
                z = tft.scale_to_z_score(tf.cast(inputs[f.column], tf.float32))
                out[f.name] = _dense(z, 0.0)
                continue
            x = _filled_numeric(inputs[f.column], f.fill)
            out[f.name] = (tft.scale_to_z_score(x) if f.scale == "z_score"
                           else tft.scale_to_0_1(x))
        buckets = {}
        for f in schema.buckets:
            x = _filled_numeric(inputs[f.column], f.fill)
            buckets[f.name] = tft.bucketize(x, f.num_buckets)
            out[f.name] = buckets[f.name]
        categories = _Categories(inputs)
        for f in schema.vocabularies:
            out[f.name] = tft.compute_and_apply_vocabulary(
                categories[f.column], top_k=f.top_k,
                frequency_threshold=f.frequency_threshold, num_oov_buckets=f.num_oov_buckets,
                vocab_filename=vocab_filename(f.column))
        _per_row_features(schema, categories, buckets, out)
        return out

    return preprocessing_fn
