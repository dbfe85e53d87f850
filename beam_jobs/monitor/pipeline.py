"""Wires the monitor: raw rows of the training data, of the new window and (drift) of a
previous window -> statistics of the raw, transformed, label and prediction values on
both sides, the transform-skew comparison and the counts -> one JSON document
(``encode_result``) that the driver turns into drift.json (beam_jobs.monitor.report).
No pickle: the file lies in the output location, where whoever can write there could
otherwise run code in the driver."""
from __future__ import annotations

import dataclasses
import json

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.parquetio import ReadAllFromParquetBatched

from beam_jobs.common import deadletter
from beam_jobs.monitor import attribution
from beam_jobs.tabular import serving
from beam_jobs.monitor import model as model_mod
from beam_jobs.monitor import transforms as t
from beam_jobs.monitor.stats import Column
from mlbatch.artifacts.features import FeatureSet
from mlbatch.schema import DatasetSchema

JOB = "beam_jobs.monitor"
STATISTICS = "_statistics.json"  # the pipeline's result for the driver; deleted after


@dataclasses.dataclass(frozen=True)
class Plan:
    schema: DatasetSchema
    features: FeatureSet
    output: str
    baseline: dict[str, list[str]]  # the training run's raw files, by table
    current: dict[str, list[str]]
    against: dict[str, list[str]] | None  # drift against raw data
    previous: dict | None  # drift against a previous monitor output: its statistics
    model: str | None
    raw: list[Column]  # raw columns and the label (stage "label")
    transformed: list[Column]
    prediction: Column | None
    skew_rate: float  # share of the training rows re-transformed for the skew check
    chunk_rows: int = 50_000
    attributions: bool = False  # attribution drift (needs model)
    attribution_thresholds: dict = dataclasses.field(default_factory=dict)


def _read(p, name: str, plan: Plan, files: dict[str, list[str]]):
    return p | f"Read{name}" >> serving.ReadServingExamples(plan.schema, files,
                                                            chunk_rows=plan.chunk_rows, job=JOB)


def _transform(rows, name: str, plan: Plan):
    return rows | f"Transform{name}" >> beam.ParDo(
        serving.TransformFeaturesFn(plan.features.root, plan.schema, job=JOB))


def _edges(tables, name: str, columns: list[Column], previous: dict | None):
    """The training range's edges; in drift against a previous monitor output, the edges
    its histograms were counted over (the same baseline's)."""
    if previous is not None:
        return tables.pipeline | f"Previous{name}Edges" >> beam.Create(
            [previous["edges"][name.lower()]])
    return tables | f"{name}Edges" >> beam.CombineGlobally(t.TrainingEdgesFn(columns))


def _statistics(results: list, tables, name: str, columns: list[Column], edges) -> None:
    results.append(tables | f"{name}Statistics" >> t.ComputeStatistics(columns, edges)
                   | f"Key{name}" >> beam.Map(lambda s, k=name: (k, s)))


def build(p: beam.Pipeline, plan: Plan) -> None:
    results = []
    train = (_read(p, "Baseline", plan, plan.baseline)[serving.EXAMPLES]
             | "KeepTrain" >> beam.Map(t.keep_train, plan.schema))
    written = (p | "TrainFiles" >> beam.Create(plan.features.files("train"))
               | "ReadTrainFeatures" >> ReadAllFromParquetBatched())
    current = _read(p, "Current", plan, plan.current)
    current_t = _transform(current[serving.EXAMPLES], "Current", plan)
    prev = plan.previous
    raw_edges = _edges(train, "Raw", plan.raw, prev)
    t_edges = _edges(written, "Transformed", plan.transformed, prev)
    sides = {"Current": (current[serving.EXAMPLES], current_t)}
    if plan.against is not None:
        against = _read(p, "Against", plan, plan.against)[serving.EXAMPLES]
        sides["Reference"] = (against, _transform(against, "Against", plan))
    elif prev is None:
        sides["Reference"] = (train, written)
    for side, (rows, transformed) in sides.items():
        _statistics(results, rows, f"{side}Raw", plan.raw, raw_edges)
        _statistics(results, transformed, f"{side}Transformed", plan.transformed, t_edges)
    if plan.prediction is not None:
        predict = lambda tables, n: tables | f"Predict{n}" >> beam.ParDo(  # noqa: E731
            model_mod.PredictFn(plan.model))
        p_edges = _edges(predict(written, "Train"), "Prediction", [plan.prediction], prev)
        for side, (_, transformed) in sides.items():
            _statistics(results, predict(transformed, side), f"{side}Prediction",
                        [plan.prediction], p_edges)
        results.append(p_edges | "KeyPredictionEdges" >> beam.Map(lambda e: ("edges/prediction", e)))
    if plan.attributions:
        results += _attributions(written, sides, plan)
    results += [raw_edges | "KeyRawEdges" >> beam.Map(lambda e: ("edges/raw", e)),
                t_edges | "KeyTransformedEdges" >> beam.Map(lambda e: ("edges/transformed", e)),
                _transform_skew(train, written, plan), _counts(current)]
    _ = current[serving.DEAD_LETTER] | "WriteDeadLetters" >> deadletter.WriteDeadLetters(
        FileSystems.join(plan.output, deadletter.DEAD_LETTER, "part"))
    _ = (results | "FlattenResults" >> beam.Flatten() | "ResultsToDict" >> beam.combiners.ToDict()
         | "WriteStatistics" >> beam.Map(_write_result, FileSystems.join(plan.output, STATISTICS)))


def _attributions(written, sides: dict, plan: Plan) -> list:
    """Summed per-feature attributions of each side (and of the training features when
    the reference is the training data): keyed "attribution/<side>"."""
    tables = {side: transformed for side, (_, transformed) in sides.items()}
    out = []
    for side, t_tables in tables.items():
        out.append(t_tables | f"Attribute{side}" >> beam.CombineGlobally(
            attribution.SumAttributionsFn(plan.model))
            | f"KeyAttribution{side}" >> beam.Map(lambda s, k=side: (f"attribution/{k}", s)))
    return out


def _transform_skew(train, written, plan: Plan):
    """A sample of the training rows through the saved transform, joined by example_id
    with the features the feature job wrote for them."""
    names = [c.name for c in plan.transformed]
    numeric = {c.name for c in plan.transformed if c.kind == "numeric"}
    rate = plan.skew_rate
    again = (_transform(train | "SampleTrain" >> beam.Map(t.sample_rows, rate), "Sample", plan)
             | "KeyAgain" >> beam.FlatMap(t.keyed_rows, names))
    wrote = (written | "SampleWritten" >> beam.Map(t.sample_rows, rate)
             | "KeyWritten" >> beam.FlatMap(t.keyed_rows, names))
    return ({"again": again, "written": wrote} | "JoinSample" >> beam.CoGroupByKey()
            | "CompareSample" >> beam.Map(t.compare_rows, numeric, names)
            | "SkewToList" >> beam.combiners.ToList()
            | "SummarizeSkew" >> beam.Map(lambda r: ("transform_skew", t.summarize_skew(r, names))))


def _counts(current):
    """Current rows: records read per table, valid, prepared and dead letters."""
    read = current[serving.FILES] | "CountRead" >> beam.Map(
        lambda f: (f"{f['table']}_read", f["records"]))
    dead = current[serving.DEAD_LETTER] | "CountDeadLetters" >> beam.Map(
        lambda d: (f"{d['table']}_dead_letter", 1))
    return ((read, dead, current[serving.COUNTS]) | "FlattenCounts" >> beam.Flatten()
            | "SumCounts" >> beam.CombinePerKey(sum) | "CountsToDict" >> beam.combiners.ToDict()
            | "KeyCounts" >> beam.Map(lambda c: ("counts", c)))


def _write_result(doc: dict, path: str) -> None:
    with FileSystems.create(path) as f:
        f.write(encode_result(doc))


_ARRAY, _TUPLE, _PAIRS = "__ndarray__", "__tuple__", "__pairs__"


def _tagged(value):
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise TypeError(f"cannot encode a {value.dtype} array")
        return {_ARRAY: value.tolist(), "dtype": value.dtype.str, "shape": list(value.shape)}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return {_TUPLE: [_tagged(v) for v in value]}
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return {k: _tagged(v) for k, v in value.items()}
        return {_PAIRS: [[_tagged(k), _tagged(v)] for k, v in value.items()]}
    if isinstance(value, list):
        return [_tagged(v) for v in value]
    return value


def _untagged(value):
    if isinstance(value, list):
        return [_untagged(v) for v in value]
    if not isinstance(value, dict):
        return value
    if _ARRAY in value:
        return np.asarray(value[_ARRAY], dtype=np.dtype(value["dtype"])).reshape(value["shape"])
    if _TUPLE in value:
        return tuple(_untagged(v) for v in value[_TUPLE])
    if _PAIRS in value:
        return {_hashable(_untagged(k)): _untagged(v) for k, v in value[_PAIRS]}
    return {k: _untagged(v) for k, v in value.items()}


def _hashable(key):
    return tuple(key) if isinstance(key, list) else key


def encode_result(doc: dict) -> bytes:
    """The pipeline's result as JSON: numpy arrays (numeric dtypes, exact values), tuples and
    non-string dict keys tagged, so ``decode_result`` gives back an equal structure."""
    return json.dumps(_tagged(doc), allow_nan=True).encode("utf-8")


def decode_result(data: bytes) -> dict:
    """The inverse of ``encode_result`` (plain JSON: nothing in it is executed)."""
    return _untagged(json.loads(data))
