"""What the monitor watches and the statistics it keeps of it (pure Arrow and numpy).

Columns come from the schema: the **raw** columns are the prepared columns the features
read (``DatasetSchema.transform_inputs``: raw, joined and derived, before tf.Transform);
the **transformed** ones are the features the model sees (the feature artifact's names).
A raw column is numeric when a numeric or bucket feature reads it and it is a number;
otherwise (strings, and integers used only as vocabulary, hash or cross inputs, such as
``month`` or ``dep_hour``) categorical. Its threshold is the smallest ``drift_threshold``
of the features reading it.

Statistics are mergeable partial sums so that Beam can combine them across workers:
categorical columns a {value: count} map (values as strings, missing values left out),
numeric columns the counts of both histograms over the baseline's edges (beam_jobs.monitor.drift).
A multiclass label is categorical, counted by class name; so is a multiclass model's
prediction (its arg-max class, ``model.PredictFn``).
"""
from __future__ import annotations

import collections
import dataclasses

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from beam_jobs.monitor import drift
from mlbatch.schema import CrossFeature, DatasetSchema


@dataclasses.dataclass(frozen=True)
class Column:
    name: str
    kind: str  # "numeric" | "categorical"
    threshold: float = drift.DEFAULT_THRESHOLD
    stage: str = "raw"  # "raw" | "transformed" | "prediction" | "label"
    column: str | None = None  # the table column holding it, when not ``name``
    classes: tuple[str, ...] = ()  # a multiclass label: class indices counted by class name

    @property
    def column_name(self) -> str:
        return self.column or self.name

    @property
    def key(self) -> str:
        """Its key in histograms.json and in the statistics: "<stage>/<name>"."""
        return f"{self.stage}/{self.name}"


def _sources(schema: DatasetSchema, feature) -> tuple[str, ...]:
    buckets = {b.name: b.column for b in schema.buckets}
    cols = feature.columns if isinstance(feature, CrossFeature) else (feature.column,)
    return tuple(buckets.get(c, c) for c in cols)


def raw_columns(schema: DatasetSchema) -> list[Column]:
    """The prepared columns the features read, with their kind and threshold."""
    types = schema.prepared_columns()
    numeric = {f.column for f in (*schema.numeric, *schema.buckets)}
    threshold: dict[str, float] = {}
    for f in schema.features:
        for c in _sources(schema, f):
            threshold[c] = min(threshold.get(c, 1.0), f.drift_threshold)
    return [Column(c, "numeric" if c in numeric and types[c] != "string" else "categorical",
                   threshold[c]) for c in schema.transform_inputs()]


def transformed_columns(schema: DatasetSchema, features) -> list[Column]:
    """The features of a feature artifact (mlbatch.artifacts.features.Feature list)."""
    threshold = {f.name: f.drift_threshold for f in schema.features}
    return [Column(f.name, f.kind, threshold.get(f.name, drift.DEFAULT_THRESHOLD), "transformed")
            for f in features]


def numbers(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False),
                      dtype=np.float64)


def value_counts(column: pa.ChunkedArray | pa.Array) -> dict[str, int]:
    """{value as string: count}, missing values left out."""
    counts = pc.value_counts(pc.drop_null(column))
    return {str(v): int(n) for v, n in zip(counts.field("values").to_pylist(),
                                           counts.field("counts").to_pylist())}


def class_counts(column: pa.ChunkedArray | pa.Array, classes: tuple[str, ...]) -> dict[str, int]:
    """{class name: count} of a column of class indices, missing values left out; an index
    outside the classes is a ValueError (the label function never writes one)."""
    idx = numbers(column)
    idx = idx[~np.isnan(idx)]
    bad = idx[(idx != np.rint(idx)) | (idx < 0) | (idx >= len(classes))]
    if bad.size:
        raise ValueError(f"class index {bad[0]:g} outside [0, {len(classes)}) "
                         f"(classes {list(classes)})")
    counts = np.bincount(idx.astype(np.int64), minlength=len(classes))
    return {name: int(n) for name, n in zip(classes, counts) if n}


def table_statistics(table: pa.Table, columns: list[Column],
                     edges: dict[str, dict[str, np.ndarray]]) -> dict[str, dict]:
    """Partial statistics of one batch: categorical {value: count}; numeric
    {"standard": counts, "quantile": counts} over ``edges[column]``."""
    out = {}
    for c in columns:
        col = table.column(c.column_name)
        if c.classes:
            out[c.key] = class_counts(col, c.classes)
        elif c.kind == "categorical":
            out[c.key] = value_counts(col)
        else:
            out[c.key] = drift.numeric_histograms(numbers(col), edges[c.key])
    return out


def merge_statistics(parts: list[dict[str, dict]]) -> dict[str, dict]:
    """Sums partial statistics (table_statistics outputs) column by column."""
    out: dict[str, dict] = {}
    for part in parts:
        for name, s in part.items():
            if name not in out:
                out[name] = ({k: np.array(v, copy=True) for k, v in s.items()}
                             if _is_numeric(s) else collections.Counter(s))
            elif _is_numeric(s):
                for k, v in s.items():
                    out[name][k] = out[name][k] + np.asarray(v)
            else:
                out[name].update(s)
    return {n: (s if _is_numeric(s) else dict(s)) for n, s in out.items()}


def _is_numeric(s: dict) -> bool:
    return set(s) == {"standard", "quantile"} and all(isinstance(v, np.ndarray) for v in s.values())


def exact_edges(table: pa.Table, columns: list[Column]) -> dict[str, dict[str, np.ndarray]]:
    """Both histograms' edges of every numeric column from the whole reference table
    (exact minimum, maximum and deciles; the Beam job uses a quantile sketch instead)."""
    return {c.key: drift.training_edges(numbers(table.column(c.column_name)))
            for c in columns if c.kind == "numeric"}


def empty_statistics(columns: list[Column], edges: dict[str, dict]) -> dict[str, dict]:
    """Statistics of no rows (what a side without any table reads)."""
    return {c.key: ({k: np.zeros(len(e) + 1, np.int64) for k, e in edges[c.key].items()}
                    if c.kind == "numeric" else {}) for c in columns}


def compare(reference: dict[str, dict], current: dict[str, dict], columns: list[Column],
            edges: dict[str, dict]) -> list[drift.FeatureDrift]:
    """One FeatureDrift per column, reference statistics against current ones (a column
    absent from a side's statistics had no rows there)."""
    empty = empty_statistics(columns, edges)
    out = []
    for c in columns:
        ref, cur = reference.get(c.key, empty[c.key]), current.get(c.key, empty[c.key])
        compare_fn = drift.compare_categorical if c.kind == "categorical" else drift.compare_numeric
        out.append(compare_fn(c.name, ref, cur, stage=c.stage, threshold=c.threshold))
    return out


def compare_tables(reference: pa.Table, current: pa.Table,
                   columns: list[Column]) -> list[drift.FeatureDrift]:
    """The whole comparison in memory: edges from the reference, both tables' statistics."""
    edges = exact_edges(reference, columns)
    return compare(table_statistics(reference, columns, edges),
                   table_statistics(current, columns, edges), columns, edges)
