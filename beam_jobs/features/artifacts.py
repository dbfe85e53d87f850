"""After the pipeline: cross statistics, the summary and the commit of the artifact.

Read from what the pipeline wrote (the tf.Transform output), never recomputed, so the
manifest describes exactly the artifact that serving will load.
"""
from __future__ import annotations

import logging
from importlib import metadata

import tensorflow_transform as tft
from apache_beam.io.filesystems import FileSystems

from beam_jobs.features import io
from mlbatch.artifacts import ArtifactWriter
from mlbatch.artifacts.features import Feature, feature_section
from beam_jobs.features.preprocessing import raw_feature_spec
from mlbatch.labels import transform_record
from mlbatch.schema import DatasetSchema

LOGGER = logging.getLogger(__name__)
OVERCROSS_RARE_ROW_SHARE = 0.2  # warn when more train rows than this carry a rare value
OVERCROSS_COLLISION_SHARE = 0.3  # ... or when this share of distinct values collide


def _domain_cardinality(tf_output: tft.TFTransformOutput, name: str) -> int | None:
    for feature in tf_output.transformed_metadata.schema.feature:
        if feature.name == name and feature.HasField("int_domain"):
            return int(feature.int_domain.max) + 1
    return None


def manifest_features(schema: DatasetSchema, tf_output: tft.TFTransformOutput) -> list[Feature]:
    feats = [Feature(f.name, "numeric", transform=f.scale, sources=(f.column,))
             for f in schema.numeric]
    for f in schema.buckets:
        feats.append(Feature(f.name, "categorical", f.num_buckets, "bucketize", (f.column,)))
    for f in schema.vocabularies:
        card = _domain_cardinality(tf_output, f.name)
        if card is None:
            raise RuntimeError(f"transformed metadata has no domain for {f.name!r}")
        feats.append(Feature(f.name, "categorical", card, "vocabulary", (f.column,)))
    for f in schema.hashes:
        feats.append(Feature(f.name, "categorical", f.hash_buckets, "hash", (f.column,)))
    for f in schema.crosses:
        feats.append(Feature(f.name, "categorical", f.hash_buckets, "cross", tuple(f.columns)))
    return feats


def flag_overcrossing(schema: DatasetSchema, crosses: dict) -> dict:
    """Adds the columns and an `overcrossed` verdict to each cross's statistics."""
    for f in schema.crosses:
        s = crosses[f.name]
        s["columns"] = list(f.columns)
        s["overcrossed"] = bool(s["rare_row_share"] > OVERCROSS_RARE_ROW_SHARE
                                or s["colliding_value_share"] > OVERCROSS_COLLISION_SHARE)
        if s["overcrossed"]:
            LOGGER.warning("cross %r looks overcrossed: %.0f%% of train rows carry a value seen "
                           "< %d times, %.0f%% of its %d values share a bucket", f.cross,
                           100 * s["rare_row_share"], schema.cross_rare_threshold,
                           100 * s["colliding_value_share"], s["distinct_values"])
    return crosses


def versions() -> dict:
    out = {}
    for pkg in ("apache-beam", "tensorflow-transform", "tensorflow", "tfx-bsl", "pyarrow"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out


def write_raw_metadata(output: str, schema: DatasetSchema) -> None:
    """`<output>/metadata/`: the raw feature spec serving parses requests with
    (TFTransformOutput.raw_feature_spec()); the Arrow input path does not write it."""
    from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils

    metadata_io.write_metadata(
        dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(
            raw_feature_spec(schema))),
        FileSystems.join(output, tft.TFTransformOutput.RAW_METADATA_DIR))


def finalize(writer: ArtifactWriter, schema: DatasetSchema, analyzers: str) -> dict:
    """Completes summary.json and, when every count reconciles, commits the artifact
    (artifact.json with the features section); otherwise records the failure and leaves
    the directory uncommitted. Returns the summary."""
    output = writer.root
    write_raw_metadata(output, schema)
    tf_output = tft.TFTransformOutput(output)
    summary_path = FileSystems.join(output, "summary.json")
    summary = io.read_json(summary_path)
    summary["crosses"] = flag_overcrossing(schema, summary["crosses"])
    summary["versions"] = versions()
    summary["analyzers"] = analyzers
    io.write_json(summary_path, summary)
    if not summary["reconciled"]:
        failed = [k for k, ok in summary["checks"].items() if not ok]
        writer.fail(f"counts do not reconcile: {failed} (see summary.json)")
        return summary
    for table, t in summary["tables"].items():
        for path, _records in t["files"]:
            writer.input_file(f"raw:{table}", path)
    writer.set_schema(schema.name, schema.version, schema.source)
    writer.metrics.update(stages=summary["stages"])
    s = summary["stages"]
    writer.commit(rows={"train": s["train"], "eval": s["eval"]}, body=feature_section(
        label=schema.label.name, task=schema.label.task,
        label_transform=transform_record(schema.label.transform),
        features=manifest_features(schema, tf_output),
        splits={"train": s["train"], "eval": s["eval"]}, checks=summary["checks"]))
    return summary
