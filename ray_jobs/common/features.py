"""The feature job's output contract, as the training jobs read it.

A feature directory (written by ``python -m beam_jobs.features``) holds::

    train/*.parquet  eval/*.parquet     one row per example: every feature + the label
    feature_manifest.json               names, kinds and cardinalities (from the
                                        tf.Transform transformed metadata), label and task
    transform_fn/ transformed_metadata/ the tf.Transform artifact (serving)
    summary.json                        counts per stage, per-feature statistics

Column types: ``numeric`` features are float32 (already scaled); ``categorical``
features (vocabulary ids, quantile buckets, hashed values, crosses) are int64 in
``[0, cardinality)``; the label is float32 (0/1 for binary classification).

Training code never names a feature: it reads them from here.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pyarrow.parquet as pq

MANIFEST = "feature_manifest.json"
SPLITS = ("train", "eval")
TASKS = ("binary_classification", "regression")
KINDS = ("numeric", "categorical")


class FeatureContractError(ValueError):
    """The feature directory does not match the contract (named in the message)."""


@dataclasses.dataclass(frozen=True)
class Feature:
    name: str
    kind: str  # "numeric" | "categorical"
    cardinality: int | None = None  # categorical only: ids lie in [0, cardinality)
    transform: str = ""  # z_score | scale_0_1 | vocabulary | bucketize | hash | cross
    sources: tuple[str, ...] = ()  # raw columns it derives from

    def __post_init__(self):
        if self.kind not in KINDS:
            raise FeatureContractError(f"feature {self.name!r}: kind {self.kind!r} not in {KINDS}")
        if self.kind == "categorical" and (self.cardinality is None or self.cardinality < 1):
            raise FeatureContractError(
                f"feature {self.name!r}: categorical needs cardinality >= 1, got {self.cardinality}")


@dataclasses.dataclass(frozen=True)
class FeatureSet:
    root: Path
    label: str
    task: str
    features: tuple[Feature, ...]

    def __post_init__(self):
        if self.task not in TASKS:
            raise FeatureContractError(f"label task {self.task!r} not in {TASKS}")

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def numeric(self) -> list[Feature]:
        return [f for f in self.features if f.kind == "numeric"]

    @property
    def categorical(self) -> list[Feature]:
        return [f for f in self.features if f.kind == "categorical"]

    def files(self, split: str) -> list[str]:
        """Sorted Parquet files of a split; raises if the split is missing or empty."""
        if split not in SPLITS:
            raise FeatureContractError(f"unknown split {split!r}; expected one of {SPLITS}")
        d = self.root / split
        files = sorted(str(p) for p in d.glob("*.parquet")) if d.is_dir() else []
        if not files:
            raise FeatureContractError(f"split {split!r} has no Parquet files under {d}")
        return files

    def num_rows(self, split: str) -> int:
        return sum(pq.ParquetFile(f).metadata.num_rows for f in self.files(split))


def load_feature_set(root: str | Path, *, check_columns: bool = True) -> FeatureSet:
    """Reads and validates ``feature_manifest.json`` (and the split schemas) under root."""
    root = Path(root)
    path = root / MANIFEST
    if not path.is_file():
        raise FeatureContractError(f"no {MANIFEST} in {root}: is it a feature job output?")
    try:
        raw = json.loads(path.read_text())
        label = raw["label"]["name"]
        task = raw["label"]["task"]
        features = tuple(
            Feature(name=f["name"], kind=f["kind"], cardinality=f.get("cardinality"),
                    transform=f.get("transform", ""), sources=tuple(f.get("sources", ())))
            for f in raw["features"])
    except (KeyError, TypeError, json.JSONDecodeError) as e:
        raise FeatureContractError(f"{path}: malformed manifest ({e!r})") from e
    fs = FeatureSet(root=root, label=label, task=task, features=features)
    if check_columns:
        for split in SPLITS:
            _check_split_schema(fs, split)
    return fs


def _check_split_schema(fs: FeatureSet, split: str) -> None:
    import pyarrow as pa

    files = fs.files(split)
    schema = pq.read_schema(files[0])
    for name in [fs.label] + fs.names:
        if name not in schema.names:
            raise FeatureContractError(f"split {split!r}: column {name!r} missing in {files[0]}")
    if not (pa.types.is_floating(schema.field(fs.label).type)
            or pa.types.is_integer(schema.field(fs.label).type)):
        raise FeatureContractError(
            f"label {fs.label!r} is {schema.field(fs.label).type}, not numeric")
    if fs.num_rows(split) == 0:
        raise FeatureContractError(f"split {split!r} is empty (0 rows)")


def write_manifest(root: str | Path, *, label: str, task: str,
                   features: list[Feature], extra: dict | None = None) -> Path:
    """Writes ``feature_manifest.json`` (used by the feature job and by synthetic data)."""
    doc = {"label": {"name": label, "task": task},
           "features": [{k: (list(v) if isinstance(v, tuple) else v)
                         for k, v in dataclasses.asdict(f).items()} for f in features]}
    doc.update(extra or {})
    path = Path(root) / MANIFEST
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2))
    return path
