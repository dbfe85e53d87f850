"""After the pipeline: the feature manifest, cross statistics and lineage.

Read from what the pipeline wrote (the tf.Transform output), never recomputed, so the
manifest describes exactly the artifact that serving will load.
"""
from __future__ import annotations

import hashlib
import logging
from importlib import metadata

import tensorflow_transform as tft
from apache_beam.io.filesystems import FileSystems

from beam_jobs.features import io
from beam_jobs.features.preprocessing import raw_feature_spec
from beam_jobs.features.schema import DatasetSchema

LOGGER = logging.getLogger(__name__)
OVERCROSS_RARE_ROW_SHARE = 0.2  # warn when more train rows than this carry a rare value
OVERCROSS_COLLISION_SHARE = 0.3  # ... or when this share of distinct values collide


def _domain_cardinality(tf_output: tft.TFTransformOutput, name: str) -> int | None:
    for feature in tf_output.transformed_metadata.schema.feature:
        if feature.name == name and feature.HasField("int_domain"):
            return int(feature.int_domain.max) + 1
    return None


def manifest_features(schema: DatasetSchema, tf_output: tft.TFTransformOutput) -> list[dict]:
    feats = [{"name": f.name, "kind": "numeric", "transform": f.scale, "sources": [f.column]}
             for f in schema.numeric]
    for f in schema.buckets:
        feats.append({"name": f.name, "kind": "categorical", "cardinality": f.num_buckets,
                      "transform": "bucketize", "sources": [f.column]})
    for f in schema.vocabularies:
        card = _domain_cardinality(tf_output, f.name)
        if card is None:
            raise RuntimeError(f"transformed metadata has no domain for {f.name!r}")
        feats.append({"name": f.name, "kind": "categorical", "cardinality": card,
                      "transform": "vocabulary", "sources": [f.column],
                      "num_oov_buckets": f.num_oov_buckets})
    for f in schema.hashes:
        feats.append({"name": f.name, "kind": "categorical", "cardinality": f.hash_buckets,
                      "transform": "hash", "sources": [f.column]})
    for f in schema.crosses:
        feats.append({"name": f.name, "kind": "categorical", "cardinality": f.hash_buckets,
                      "transform": "cross", "sources": list(f.columns)})
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


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with FileSystems.open(path) as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def lineage(schema: DatasetSchema, argv: list[str], files: dict[str, list],
            analyzers: str) -> dict:
    versions = {}
    for pkg in ("apache-beam", "tensorflow-transform", "tensorflow", "tfx-bsl", "pyarrow"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {"schema_file": schema.source, "schema_sha256": _sha256(schema.source),
            "inputs": files, "argv": argv, "analyzers": analyzers, "versions": versions}


def write_raw_metadata(output: str, schema: DatasetSchema) -> None:
    """`<output>/metadata/`: the raw feature spec serving parses requests with
    (TFTransformOutput.raw_feature_spec()); the Arrow input path does not write it."""
    from tensorflow_transform.tf_metadata import dataset_metadata, metadata_io, schema_utils

    metadata_io.write_metadata(
        dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(
            raw_feature_spec(schema))),
        FileSystems.join(output, tft.TFTransformOutput.RAW_METADATA_DIR))


def finalize(output: str, schema: DatasetSchema, argv: list[str], analyzers: str) -> dict:
    """Writes feature_manifest.json and completes summary.json; returns the summary."""
    write_raw_metadata(output, schema)
    tf_output = tft.TFTransformOutput(output)
    summary_path = FileSystems.join(output, "summary.json")
    summary = io.read_json(summary_path)
    summary["crosses"] = flag_overcrossing(schema, summary["crosses"])
    summary["lineage"] = lineage(
        schema, argv, {t: v["files"] for t, v in summary["tables"].items()}, analyzers)
    io.write_json(summary_path, summary)
    manifest = {
        "dataset": schema.name,
        "label": {"name": schema.label.name, "task": schema.label.task},
        "features": manifest_features(schema, tf_output),
        "splits": {"train": summary["stages"]["train"], "eval": summary["stages"]["eval"]},
        "example_id": "example_id",
        "transform_fn": FileSystems.join(output, "transform_fn"),
        "lineage": summary["lineage"],
    }
    io.write_json(FileSystems.join(output, "feature_manifest.json"), manifest)
    return summary
