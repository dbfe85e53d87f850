"""The ``features`` artifact: what the feature job writes and every trainer reads.

A feature directory (``python -m beam_jobs.features``) holds::

    train/*.parquet  eval/*.parquet      one row per example: every feature, the label,
                                         example_id (source file:line of the raw record)
    transform_fn/ transformed_metadata/  the tf.Transform artifact (serving); load with
    metadata/                            tft.TFTransformOutput(<dir>)
    summary.json                         counts per stage and table, feature statistics
    dead_letter/ excluded/               rejected and unusable rows, with reasons
    artifact.json                        the commit marker; its "features" section:

    "features": {
      "label": {"name", "task", "transform": null | {...}},
      "features": [{"name", "kind": numeric|categorical, "cardinality"?, "transform",
                    "sources"}],
      "splits": {"train": {"rows", "dir"}, "eval": {...}},
      "example_id": "example_id",
      "transform_fn": "transform_fn" | null,
      "checks": {"<count check>": true, ...}     every one true, or nothing is committed
    }

Column types: ``numeric`` features are float32 (already scaled); ``categorical``
features (vocabulary ids, quantile buckets, hashed values, crosses) are int64 in
``[0, cardinality)``; the label is float32 (0/1 for binary classification; for
regression in the label transform's units: ``mlbatch.labels.inverse_label`` maps it back;
for multiclass classification the class's index in ``label.classes``).

Training code never names a feature: it reads them from here, and only through
``load_feature_set`` (the one reader of this type).
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mlbatch import storage
from mlbatch.artifacts.base import read_json
from mlbatch.artifacts.manifest import ArtifactError, Manifest, read_manifest
from mlbatch.labels import LabelTransformError, check_label_transform

TYPE = "features"
SPLITS = ("train", "eval")
TASKS = ("binary_classification", "regression", "multiclass_classification")
KINDS = ("numeric", "categorical")


class FeatureContractError(ArtifactError):
    """The feature directory does not match the contract (named in the message)."""


@dataclasses.dataclass(frozen=True)
class Feature:
    name: str
    kind: str  # "numeric" | "categorical"
    cardinality: int | None = None  # categorical only: ids lie in [0, cardinality)
    transform: str = ""  # z_score | scale_0_1 | vocabulary | bucketize | hash | cross
    sources: tuple[str, ...] = ()  # prepared columns it derives from

    def __post_init__(self):
        if self.kind not in KINDS:
            raise FeatureContractError(f"feature {self.name!r}: kind {self.kind!r} not in {KINDS}")
        if self.kind == "categorical" and (self.cardinality is None or self.cardinality < 1):
            raise FeatureContractError(
                f"feature {self.name!r}: categorical needs cardinality >= 1, got {self.cardinality}")

    def to_dict(self) -> dict:
        d = {"name": self.name, "kind": self.kind, "transform": self.transform,
             "sources": list(self.sources)}
        if self.cardinality is not None:
            d["cardinality"] = int(self.cardinality)
        return d


@dataclasses.dataclass(frozen=True)
class FeatureSet:
    """A committed feature artifact (the reader's view)."""
    root: str  # URI of the directory
    label: str
    task: str
    features: tuple[Feature, ...]
    manifest: Manifest | None = None
    label_transform: dict | None = None  # regression: how the stored label was transformed
    classes: tuple[str, ...] = ()  # multiclass: class names; the label is the index
    _rows: dict = dataclasses.field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self):
        if self.task not in TASKS:
            raise FeatureContractError(f"label task {self.task!r} not in {TASKS}")
        if (self.task == "multiclass_classification") != bool(self.classes):
            raise FeatureContractError(f"label classes {list(self.classes)}: a "
                                       "multiclass_classification label (only) has >= 2")
        if self.task == "multiclass_classification" and len(self.classes) < 2:
            raise FeatureContractError(f"label classes {list(self.classes)}: need >= 2")

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def numeric(self) -> list[Feature]:
        return [f for f in self.features if f.kind == "numeric"]

    @property
    def categorical(self) -> list[Feature]:
        return [f for f in self.features if f.kind == "categorical"]

    @property
    def digest(self) -> str | None:
        return self.manifest.digest if self.manifest else None

    def files(self, split: str) -> list[str]:
        """URIs of the split's Parquet files in sorted order; raises if there are none."""
        if split not in SPLITS:
            raise FeatureContractError(f"unknown split {split!r}; expected one of {SPLITS}")
        d = storage.join(self.root, split)
        files = [storage.join(d, f.relpath) for f in storage.list_files(d)
                 if f.relpath.endswith(".parquet") and "/" not in f.relpath]
        if not files:
            raise FeatureContractError(f"split {split!r} has no Parquet files under {d}")
        return files

    def num_rows(self, split: str) -> int:
        """Rows of a split, from its Parquet footers (read once)."""
        if split not in self._rows:
            self._rows[split] = sum(self.parquet_file(f).metadata.num_rows
                                    for f in self.files(split))
        return self._rows[split]

    def parquet_file(self, uri: str) -> pq.ParquetFile:
        """A ``pyarrow.parquet.ParquetFile`` of one of this artifact's files (any file
        system)."""
        loc = storage.locate(uri)
        return pq.ParquetFile(loc.fs.open_input_file(loc.path))

    def read_table(self, split_or_file: str, columns: list[str] | None = None) -> pa.Table:
        """A whole split (or one file of it) as an Arrow table."""
        uris = self.files(split_or_file) if split_or_file in SPLITS else [split_or_file]
        tables = []
        for uri in uris:
            loc = storage.locate(uri)
            tables.append(pq.read_table(loc.path, columns=columns, filesystem=loc.fs))
        return pa.concat_tables(tables) if len(tables) > 1 else tables[0]

    @property
    def transform_fn_dir(self) -> str | None:
        """The directory to hand to ``tft.TFTransformOutput`` (None without one)."""
        rel = self.manifest.body.get("transform_fn") if self.manifest else None
        return self.root if rel else None


def feature_section(*, label: str, task: str, features: list[Feature], splits: dict[str, int],
                    label_transform: dict | None = None, example_id: str | None = "example_id",
                    transform_fn: str | None = "transform_fn",
                    checks: dict[str, bool] | None = None, classes: tuple[str, ...] = (),
                    **extra: Any) -> dict:
    """The ``features`` section of artifact.json (written by the feature job and by the
    synthetic writer; read by ``load_feature_set``); ``label.classes`` only for a
    multiclass label."""
    lab = {"name": label, "task": task, "transform": label_transform}
    if classes:
        lab["classes"] = list(classes)
    return {"label": lab,
            "features": [f.to_dict() for f in features],
            "splits": {s: {"rows": int(n), "dir": s} for s, n in splits.items()},
            "example_id": example_id, "transform_fn": transform_fn,
            "checks": dict(checks or {}), **extra}


def load_feature_set(root: str | os.PathLike, *, check_columns: bool = True) -> FeatureSet:
    """The one reader of a feature directory: the committed manifest, and (with
    ``check_columns``) every declared column present and typed in both splits.

    Raises FeatureContractError (an ArtifactError) naming the cause: not committed (the
    run failed, with its reason), unreconciled counts, unknown major format version,
    a missing or mistyped column, an empty split.
    """
    try:
        m = read_manifest(root, TYPE)
    except ArtifactError as e:
        raise FeatureContractError(str(e)) from e
    body = m.body
    try:
        lab = body["label"]
        features = tuple(Feature(name=f["name"], kind=f["kind"], cardinality=f.get("cardinality"),
                                 transform=f.get("transform", ""),
                                 sources=tuple(f.get("sources", ()))) for f in body["features"])
        fs = FeatureSet(root=m.root, label=lab["name"], task=lab["task"], features=features,
                        manifest=m, label_transform=lab.get("transform"),
                        classes=tuple(lab.get("classes", ())))
        check_label_transform(fs.label_transform)
    except (KeyError, TypeError) as e:
        raise FeatureContractError(f"{m.root}: malformed features section ({e!r})") from e
    except LabelTransformError as e:
        raise FeatureContractError(f"{m.root}: {e}") from e
    failed = [name for name, ok in body.get("checks", {}).items() if not ok]
    if failed:
        raise FeatureContractError(f"{m.root}: the feature output is unreconciled: checks "
                                   f"{failed} failed (see summary.json); do not train on it")
    if check_columns:
        for split in SPLITS:
            _check_split_schema(fs, split)
    return fs


def _check_split_schema(fs: FeatureSet, split: str) -> None:
    """Every file of the split (footers only): each feature present and typed as its
    kind, the label present and numeric."""
    for path in fs.files(split):
        _check_file_schema(fs, split, path, fs.parquet_file(path).schema_arrow)


def _check_file_schema(fs: FeatureSet, split: str, path: str, schema: pa.Schema) -> None:
    for f in fs.features:
        if f.name not in schema.names:
            raise FeatureContractError(f"split {split!r}: column {f.name!r} missing in {path}")
        t = schema.field(f.name).type
        ok = pa.types.is_floating(t) if f.kind == "numeric" else pa.types.is_integer(t)
        if not ok:
            want = "float" if f.kind == "numeric" else "integer ids"
            raise FeatureContractError(
                f"split {split!r}: feature {f.name!r} is declared {f.kind} ({want}) but the "
                f"column is {t} in {path}")
    if fs.label not in schema.names:
        raise FeatureContractError(f"split {split!r}: label {fs.label!r} missing in {path}")
    t = schema.field(fs.label).type
    if not (pa.types.is_floating(t) or pa.types.is_integer(t)):
        raise FeatureContractError(f"label {fs.label!r} is {t}, not numeric")
    if fs.num_rows(split) == 0:
        raise FeatureContractError(f"split {split!r} is empty (0 rows)")
    recorded = fs.manifest.rows.get(split) if fs.manifest is not None else None
    if recorded is not None and int(recorded) != fs.num_rows(split):
        raise FeatureContractError(
            f"split {split!r} has {fs.num_rows(split)} rows but {fs.root}/artifact.json "
            f"records {recorded}: the directory changed after it was committed")


def read_summary(fs: FeatureSet) -> dict:
    """The job's ``summary.json``: counts per stage and table, train feature statistics,
    cross statistics and verdicts, the most common dead-letter reasons."""
    return read_json(storage.join(fs.root, "summary.json"))


def read_rejected(fs: FeatureSet, part: str = "dead_letter",
                  columns: list[str] | None = None) -> pa.Table | None:
    """The ``dead_letter`` (or ``excluded``) rows with their reasons; None without any."""
    d = storage.join(fs.root, part)
    if not storage.is_dir(d):
        return None
    uris = [storage.join(d, f.relpath) for f in storage.list_files(d)
            if f.relpath.endswith(".parquet") and "/" not in f.relpath]
    tables = [fs.read_table(u, columns) for u in uris]
    return pa.concat_tables(tables) if tables else None


VOCAB_ASSET = "transform_fn/assets/vocab_{source}"  # beam_jobs.features.preprocessing


def read_vocabulary(fs: FeatureSet, feature: Feature) -> list[str] | None:
    """The values of a ``vocabulary`` feature in id order (id i is line i of the
    tf.Transform vocabulary asset; ids past the end are out-of-vocabulary buckets); None
    for another transform or a directory without the asset."""
    if feature.transform != "vocabulary" or len(feature.sources) != 1 or not fs.transform_fn_dir:
        return None
    uri = storage.join(fs.root, VOCAB_ASSET.format(source=feature.sources[0]))
    if not storage.exists(uri):
        return None
    return storage.read_bytes(uri).decode("utf-8").splitlines()
