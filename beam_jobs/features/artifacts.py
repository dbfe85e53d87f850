"""After the pipeline: cross statistics, the summary and the commit of the artifact.

Read from what the pipeline wrote (the tf.Transform output), never recomputed, so the
manifest describes exactly the artifact that serving will load.
"""
from __future__ import annotations

import collections
import logging
import math
from collections.abc import Callable
from importlib import metadata

import tensorflow_transform as tft
from apache_beam.io.filesystems import FileSystems

from beam_jobs.common import deadletter
from beam_jobs.features import accounting, limits
from beam_jobs.features.preprocessing import raw_feature_spec
from mlbatch import storage
from mlbatch.artifacts import ArtifactWriter, read_json, write_json
from mlbatch.artifacts.features import Feature, feature_section
from mlbatch.labels import transform_record
from mlbatch.schema import DatasetSchema, TableSpec

LOGGER = logging.getLogger(__name__)


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


def min_hash_buckets(distinct: int, max_share: float) -> int:
    """The fewest hash buckets for which the expected share of `distinct` values that
    share their bucket with another, 1 - (1 - 1/B)^(distinct - 1), is below max_share."""
    if distinct < 2:
        return 1
    if max_share <= 0:
        return distinct * distinct  # any collision is too many: a birthday-bound size
    return math.floor(1.0 / -math.expm1(math.log1p(-max_share) / (distinct - 1))) + 1


def flag_overcrossing(schema: DatasetSchema, crosses: dict) -> dict:
    """Two verdicts per cross, each with its reason in the log: `hash_collisions` (its
    hash_buckets are too few for its distinct values: expected colliding share above
    cross_max_collision_share) and `overcrossed` (more train rows than
    cross_max_rare_row_share carry a value seen fewer than cross_rare_threshold times)."""
    for f in schema.crosses:
        s = crosses[f.name]
        s["columns"] = list(f.columns)
        need = min_hash_buckets(s["distinct_values"], schema.cross_max_collision_share)
        s["min_hash_buckets"] = need
        s["hash_collisions"] = f.hash_buckets < need
        s["overcrossed"] = s["rare_row_share"] > schema.cross_max_rare_row_share
        s["verdicts"] = []
        if s["hash_collisions"]:
            s["verdicts"].append(
                f"hash collisions: raise hash_buckets to at least {need} ({s['distinct_values']} "
                f"distinct values in {f.hash_buckets} buckets: {100 * s['colliding_value_share']:.0f}%"
                f" share a bucket, limit {100 * schema.cross_max_collision_share:g}%)")
        if s["overcrossed"]:
            s["verdicts"].append(
                f"overcrossed: {100 * s['rare_row_share']:.0f}% of rows carry values seen fewer "
                f"than {schema.cross_rare_threshold} times (limit "
                f"{100 * schema.cross_max_rare_row_share:g}%)")
        for verdict in s["verdicts"]:
            LOGGER.warning("cross %r: %s", f.cross, verdict)
    return crosses


def _read_columns(pattern: str, columns: list[str]) -> list[dict]:
    import pyarrow.parquet as pq

    rows = []
    for f in FileSystems.match([pattern])[0].metadata_list:
        loc = storage.locate(f.path)
        rows += pq.read_table(loc.path, filesystem=loc.fs, columns=columns).to_pylist()
    return rows


def _outcome_lines(output: str, main: str) -> list[tuple[str, int]]:
    """(source, line) of every outcome of the main table: train, eval and excluded
    rows (their example_id) and its dead letters. Read only when counts disagree."""
    out = []
    for split in ("train", "eval", "excluded"):
        for row in _read_columns(FileSystems.join(output, split, "*.parquet"), ["example_id"]):
            ex = row["example_id"]
            source, _, line = (ex.decode() if isinstance(ex, bytes) else ex).rpartition(":")
            out.append((source, int(line)))
    dead = FileSystems.join(output, deadletter.DEAD_LETTER, "*.parquet")
    for d in _read_columns(dead, ["table", "source", "line"]):
        if d["table"] == main:
            out.append((d["source"], int(d["line"])))
    return out


def _lines_involved(output: str, summary: dict, main: TableSpec, shown: int = 5) -> str:
    """The first lines with two outcomes and the first line numbers with none."""
    seen = collections.Counter(_outcome_lines(output, main.name))
    twice = sorted(k for k, n in seen.items() if n > 1)
    missing = []
    first = 2 if main.format == "csv" else 1  # CSV: line 1 is the header
    by_file = collections.defaultdict(set)
    for src, line in seen:
        by_file[src].add(line)
    for path, n_records in summary["tables"][main.name]["files"]:
        have = by_file[path]
        last = max(first + n_records - 1, max(have, default=0))
        missing += [(path, n) for n in range(first, last + 1) if n not in have][:shown]
    parts = []
    if twice:
        parts.append("lines with more than one outcome: " + ", ".join(
            f"{s}:{n} ({seen[(s, n)]}x)" for s, n in twice[:shown]))
    if missing:
        parts.append("line numbers without an outcome: " + ", ".join(
            f"{s}:{n}" for s, n in missing[:shown]))
    return "; ".join(parts)


def reconcile_failure(output: str, schema: DatasetSchema, summary: dict) -> str | None:
    """Why the counts do not add up: the table, the check, both sides and the
    difference, and the first lines involved (None: they add up)."""
    problems = []
    for name, t in summary["tables"].items():
        diff = t["read"] - t["valid"] - t["dead_letter"]
        if diff:
            problems.append(f"table {name!r}: read == valid + dead_letter fails: read "
                            f"{t['read']}, valid {t['valid']} + dead_letter {t['dead_letter']} "
                            f"= {t['valid'] + t['dead_letter']} ({diff:+d} records)")
    s = summary["stages"]
    diff = s["valid"] - s["train"] - s["eval"] - s["excluded"]
    if diff:
        problems.append(f"table {schema.main!r}: valid == train + eval + excluded fails: valid "
                        f"{s['valid']}, train {s['train']} + eval {s['eval']} + excluded "
                        f"{s['excluded']} ({diff:+d} rows)")
    if not problems:
        return None
    lines = _lines_involved(output, summary, schema.main_table)
    return "counts do not reconcile: " + " | ".join(problems) + (f" | {lines}" if lines else "")


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
    from tensorflow_transform.tf_metadata import (
        dataset_metadata,
        metadata_io,
        schema_utils,
    )

    metadata_io.write_metadata(
        dataset_metadata.DatasetMetadata(schema_utils.schema_from_feature_spec(
            raw_feature_spec(schema))),
        FileSystems.join(output, tft.TFTransformOutput.RAW_METADATA_DIR))


def finalize(writer: ArtifactWriter, schema: DatasetSchema, analyzers: str,
             max_dead_letter_share: float | None = None, transform_dir: str | None = None,
             before_commit: Callable[[], None] | None = None) -> dict:
    """Completes summary.json and, when every count reconciles and the dead letters are
    within the limits, commits the artifact (artifact.json with the features section);
    otherwise records why in the summary (`failure`) and the pending marker, leaving the
    directory uncommitted. Returns the summary.

    `transform_dir`: a local directory holding what tf.Transform wrote (transform_fn/,
    transformed_metadata/) when the output is one TensorFlow cannot write (a gs:// bucket
    of a storage emulator); it gets metadata/ too and is copied into the output first.
    `before_commit`: called last before the commit (the input pins: it raises when an
    input changed, leaving the output uncommitted)."""
    output = writer.root
    write_raw_metadata(transform_dir or output, schema)
    tf_output = tft.TFTransformOutput(transform_dir or output)
    if transform_dir:
        storage.copy_tree(transform_dir, output)
    summary_path = FileSystems.join(output, "summary.json")
    summary = read_json(summary_path)
    summary["crosses"] = flag_overcrossing(schema, summary["crosses"])
    summary["versions"] = versions()
    summary["analyzers"] = analyzers
    unreconciled = reconcile_failure(output, schema, summary)
    summary["reconciled"] = unreconciled is None
    summary["fill"] = accounting.fill_summary(schema, summary)
    summary["unusable"] = accounting.column_problems(schema, summary)
    summary["failure"] = unreconciled or limits.check_limits(
        summary, schema.limits, max_dead_letter_share) or summary["unusable"]
    write_json(summary_path, summary)
    if summary["failure"]:
        writer.fail(summary["failure"])
        return summary
    for table, t in summary["tables"].items():
        for path, _records in t["files"]:
            writer.input_file(f"raw:{table}", path)
    if before_commit is not None:
        before_commit()
    writer.set_schema(schema.name, schema.version, schema.source)
    writer.metrics.update(stages=summary["stages"], joins={  # per join, as in summary.json
        t: {k: v for k, v in j.items() if k != "unmatched_filled_with"}
        for t, j in summary.get("joins", {}).items()})
    s = summary["stages"]
    writer.commit(rows={"train": s["train"], "eval": s["eval"]}, body=feature_section(
        label=schema.label.name, task=schema.label.task,
        label_transform=transform_record(schema.label.transform), classes=schema.label.classes,
        features=manifest_features(schema, tf_output),
        splits={"train": s["train"], "eval": s["eval"]}, checks=summary["checks"]))
    return summary
