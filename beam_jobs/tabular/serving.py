"""Serving a feature artifact: raw rows -> the features a model trained on it sees.

Shared by the jobs that apply a trained model's inputs to new raw data (scoring,
monitoring). Two pieces:

- ``ReadServingExamples``: raw tables read, validated, joined and derived exactly as the
  feature job does (beam_jobs.tabular.reading / prepare, the dataset schema the feature
  artifact records), with the same dead letters. A row is named by the same
  ``example_id`` (``<source path>:<line>``), so rows scored from the raw files the
  feature job read carry the ids of its train/eval Parquet. Unlike training, a row
  whose label cannot be computed is still served (label null); a row failing a schema
  filter is outside the population the model was trained for and is dead-lettered.
- ``TransformFeaturesFn``: the SAVED transform (``<features>/transform_fn``, loaded once
  per DoFn instance with ``tft.TFTransformOutput``) applied to batches of those rows;
  never the project's Python preprocessing.
"""
from __future__ import annotations

import hashlib
import json
import logging

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.metrics import Metrics

from beam_jobs.common import deadletter
from beam_jobs.tabular import examples, prepare, reading
from beam_jobs.tabular.records import LINE_COL, SOURCE_COL
from mlbatch import storage
from mlbatch.artifacts.base import digest_of
from mlbatch.artifacts.features import FeatureSet
from mlbatch.config import ConfigError, load_yaml
from mlbatch.schema import DatasetSchema, SchemaError, with_classes
from mlbatch.schema.build import build as build_schema
from mlbatch.errors import UsageError

LOGGER = logging.getLogger(__name__)
EXAMPLES = "examples"
FILES = examples.FILES
COUNTS = examples.COUNTS
DEAD_LETTER = examples.DEAD_LETTER
LABEL = "label"  # the served label column: float64 in the label's own units, null if absent
TRANSFORM_DIR = "transform_fn"


class ServingError(ValueError, UsageError):
    """The feature artifact cannot be served (named in the message)."""


def schema_of(features: FeatureSet, override: str | None = None) -> DatasetSchema:
    """The dataset schema the feature artifact was built with: the schema file its
    manifest records (by URI and sha256), or ``override`` (a copy of that same file,
    e.g. when the recorded path is on another machine), with a ``classes: {top_k: K}``
    label's classes as the artifact recorded them. Raises ServingError when the
    file is missing or its content differs from what the artifact recorded."""
    rec = features.manifest.doc.get("schema") if features.manifest else None
    if not rec:
        raise ServingError(f"{features.root}: the feature artifact records no schema")
    uri = override or rec["uri"]
    try:
        data = storage.read_bytes(uri)
    except (OSError, storage.StorageError) as e:
        hint = "" if override else " (pass a copy of it with --schema)"
        raise ServingError(f"cannot read the schema file {uri}{hint}: {e}") from e
    digest = hashlib.sha256(data).hexdigest()
    if digest != rec["sha256"]:
        raise ServingError(f"schema file {uri} (sha256 {digest[:12]}...) is not the one the "
                           f"features at {features.root} were built with (sha256 "
                           f"{rec['sha256'][:12]}...)")
    try:
        schema = build_schema(load_yaml(data.decode("utf-8"), uri), uri)
    except (ConfigError, UnicodeDecodeError, SchemaError) as e:
        raise ServingError(f"{uri}: {e}") from e
    if schema.label.top_k:  # classes from the data: the ones the feature job resolved
        schema = with_classes(schema, features.classes)
    return schema


def transform_digest(features: FeatureSet) -> str:
    """Content digest of the artifact's transform_fn/ (from its committed file list)."""
    files = [f for f in features.manifest.files if f["path"].startswith(TRANSFORM_DIR + "/")]
    if not files:
        raise ServingError(f"{features.root}: the feature artifact has no {TRANSFORM_DIR}/")
    return digest_of(files)


def prepare_for_serving(main: pa.Table, lookups: dict[str, pa.Table], schema: DatasetSchema
                        ) -> tuple[pa.Table, pa.Array]:
    """Joins and derives a batch of valid main rows; adds example_id and LABEL.

    Returns (prepared, reasons): per row None, or why a derived value cannot be computed
    or the row is outside the schema's filters (prepare.filter_reasons); the caller
    dead-letters those rows."""
    t, derive_reasons, _ = prepare.join_and_derive(main, lookups, schema)
    t = t.append_column(LABEL, prepare.label_values(t, schema))
    return t, pc.coalesce(derive_reasons, prepare.filter_reasons(t, schema))


class PrepareServingFn(beam.DoFn):
    """Valid main rows -> prepared tables (main output); rows outside the schema's
    filters -> DEAD_LETTER; (counter, n) pairs -> COUNTS."""

    def __init__(self, schema: DatasetSchema, job: str):
        self._schema, self._job = schema, job
        self._filtered = Metrics.counter(job, "filtered")

    def process(self, batch: pa.RecordBatch, **lookups):
        t, reasons = prepare_for_serving(pa.Table.from_batches([batch]), lookups, self._schema)
        out = pc.is_valid(reasons)
        n_out = pc.sum(out).as_py() or 0
        if n_out:
            self._filtered.inc(n_out)
            yield from self._dead_letters(t.filter(out), reasons.filter(out))
            t = t.filter(pc.invert(out))
        yield beam.pvalue.TaggedOutput(COUNTS, ("filtered", n_out))
        yield beam.pvalue.TaggedOutput(COUNTS, ("prepared", t.num_rows))
        if t.num_rows:
            yield t

    def _dead_letters(self, rows: pa.Table, reasons: pa.Array):
        cols = self._schema.main_table.column_names
        values = rows.select(cols).to_pylist()
        for src, line, why, v in zip(rows.column(SOURCE_COL).to_pylist(),
                                     rows.column(LINE_COL).to_pylist(), reasons.to_pylist(),
                                     values):
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, deadletter.record(
                self._job, src, f"{why}: outside the population the model was trained on",
                json.dumps(v, default=str), table=self._schema.main, line=line))


def _main_seeds(schema: DatasetSchema) -> list[str]:
    """Columns of a prepared main row serving reads: the transform's inputs, the filters'
    columns, each join's main-side key expressions and as-of time."""
    seeds = [*schema.transform_inputs(), *(c for f in schema.filters for c in f.columns)]
    for j in schema.joins:
        seeds += [c for e in j.left for c in e.columns] if j.left else list(j.on)
        seeds += list(j.as_of.time.columns) if j.as_of else []
    return seeds


def needed_columns(schema: DatasetSchema) -> dict[str, list[str]]:
    """Per table, the raw columns serving cannot do without: the transform's inputs
    traced back through derived columns and joins, the schema's filters, the join keys
    (and as-of times) and each lookup table's key. The label's sources and columns no
    feature reads are not among them: rows without them are scored (label null, no
    metrics)."""
    derived = {d.name: d for d in schema.derived}
    wanted: set[str] = set()
    todo = _main_seeds(schema)
    while todo:
        c = todo.pop()
        if c not in wanted:
            wanted.add(c)
            todo.extend(derived[c].expr.columns if c in derived else ())
    need = {schema.main: wanted}
    for j in schema.joins:
        t = schema.tables[j.table]
        times = j.as_of.lookup_time.columns if j.as_of else ()
        need[t.name] = {*j.on, *t.key, *times,
                        *(c for c in t.column_names if j.prefix + c in wanted)}
    return {name: [c for c in t.column_names if c in need.get(name, t.key)]
            for name, t in schema.tables.items()}


def check_serving_inputs(input_root: str, schema: DatasetSchema
                         ) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """reading.check_inputs for serving: (each table's files, each table's declared
    columns its files hold). Only needed_columns must be present; InputError names a
    file lacking one of those."""
    files = reading.check_inputs(input_root, list(schema.tables.values()),
                                 needed_columns(schema))
    return files, {name: reading.present_columns(schema.tables[name], paths)
                   for name, paths in files.items()}


class ReadServingExamples(beam.PTransform):
    """Raw tables (``inputs``: each table's files, reading.check_inputs) -> a dict of
    PCollections: EXAMPLES (prepared main rows as Arrow tables with example_id and
    LABEL), DEAD_LETTER (dicts, every table), FILES (one record per file read: table,
    path, records, lines) and COUNTS ((name, n) pairs: "<table>_valid",
    "<table>_duplicate_keys_dropped", "filtered", "prepared"): the one read-and-prepare
    composite (``examples.ReadAndPrepare``) with PrepareServingFn as its per-row step.

    ``columns`` (check_serving_inputs): per table, the declared columns its files hold;
    only those are read and validated, the others (the label's sources, columns no
    feature reads) are null, so label-free rows are served with a null LABEL. None:
    read from the files' headers here, on the driver."""

    def __init__(self, schema: DatasetSchema, inputs: dict[str, list[str]], *,
                 chunk_rows: int = 50_000, job: str = "serving",
                 columns: dict[str, list[str]] | None = None):
        super().__init__()
        self._schema, self._inputs, self._columns = schema, inputs, columns
        self._chunk_rows, self._job = chunk_rows, job

    def expand(self, pbegin):
        schema, columns = self._schema, self._columns
        if columns is None:
            columns = {name: reading.present_columns(schema.tables[name], paths)
                       for name, paths in self._inputs.items()}
        out = pbegin | "ReadAndPrepare" >> examples.ReadAndPrepare(
            schema, self._inputs, PrepareServingFn(schema, self._job),
            chunk_rows=self._chunk_rows, job=self._job, columns=columns)
        return {EXAMPLES: out[examples.PREPARED], DEAD_LETTER: out[DEAD_LETTER],
                FILES: out[FILES], COUNTS: out[COUNTS]}


def transform_inputs(t: pa.Table, schema: DatasetSchema) -> dict:
    """The transform's raw inputs for prepared rows: one sparse tensor per input, through
    the feature job's own TFXIO adapter config (``tensors.serving_tensors``)."""
    from beam_jobs.tabular import tensors  # TensorFlow: only in the workers that transform

    return tensors.serving_tensors(t, schema)


def transformed_table(outputs: dict, passthrough: pa.Table) -> pa.Table:
    """The transform's outputs (one value per row each; float32 or int64, as written
    to the feature Parquet) followed by the passthrough columns."""
    cols, names = [], []
    for name in sorted(outputs):
        values = outputs[name].numpy()
        if values.ndim != 1 or len(values) != passthrough.num_rows:
            raise ValueError(f"transformed output {name!r} has shape {values.shape} for "
                             f"{passthrough.num_rows} rows (expected one value each)")
        cols.append(pa.array(values))
        names.append(name)
    return pa.Table.from_arrays(cols + passthrough.columns,
                                names=names + passthrough.column_names)


class TransformFeaturesFn(beam.DoFn):
    """Prepared rows (ReadServingExamples' EXAMPLES) -> the transformed features, by the
    saved transform_fn of ``features_root`` (tft.TFTransformOutput, loaded in setup):
    an Arrow table per batch with every output of the transform (the model's features,
    and e.g. cross fingerprints) plus ``passthrough`` columns (default: example_id and
    LABEL), at most ``batch_rows`` rows per call."""

    def __init__(self, features_root: str, schema: DatasetSchema,
                 passthrough: tuple[str, ...] = (prepare.EXAMPLE_ID, LABEL),
                 batch_rows: int = 50_000, job: str = "serving"):
        self._root, self._schema = features_root, schema
        self._passthrough, self._batch_rows = tuple(passthrough), batch_rows
        self._rows = Metrics.counter(job, "rows_transformed")
        self._tft = None

    def setup(self):
        import tensorflow_transform as tft

        self._tft = tft.TFTransformOutput(self._root)
        self._tft.transform_features_layer()  # load the SavedModel once, here

    def process(self, t: pa.Table):
        for start in range(0, t.num_rows, self._batch_rows):
            part = t.slice(start, self._batch_rows)
            outputs = self._tft.transform_raw_features(transform_inputs(part, self._schema),
                                                       drop_unused_features=True)
            self._rows.inc(part.num_rows)
            yield transformed_table(outputs, part.select(list(self._passthrough)))
