"""Loads and validates a dataset schema file (``schemas/<dataset>.yaml``).

The schema is the one place where table columns, joins, derived columns, filters, the
label, the split and the feature recipe are named; everything else (raw Arrow schema,
preprocessing_fn, output Parquet schema, the feature manifest) is derived from the
objects built here. Every error names the file and the offending field. Field
reference: docs/schema.md.
"""
from __future__ import annotations

from pathlib import Path

from mlbatch.config import ConfigError, load_yaml
from mlbatch.schema.build import build
from mlbatch.schema.specs import (COLUMN_TYPES, DERIVED_FNS, FORMATS, LABEL_OPS, LABEL_TRANSFORMS,
                                  SCALES, SPLIT_BY, TASKS, AsOfSpec, BucketFeature, ColumnSpec, CrossFeature,
                                  DatasetSchema, DerivedSpec, HashFeature, JoinSpec, LabelSpec,
                                  LimitsSpec, NumericFeature, PartitionSpec, SchemaError, SplitSpec,
                                  TableSpec, VocabFeature, resolve_classes, with_classes)

__all__ = ["AsOfSpec", "COLUMN_TYPES", "DERIVED_FNS", "FORMATS", "LABEL_OPS", "LABEL_TRANSFORMS", "SCALES",
           "SPLIT_BY", "TASKS", "BucketFeature", "ColumnSpec", "CrossFeature", "DatasetSchema",
           "DerivedSpec", "HashFeature", "JoinSpec", "LabelSpec", "LimitsSpec",
           "NumericFeature", "PartitionSpec", "SchemaError", "SplitSpec", "TableSpec",
           "VocabFeature", "load_schema", "resolve_classes", "with_classes"]


def load_schema(path: str | Path) -> DatasetSchema:
    """Parses and validates a schema file; raises SchemaError naming the bad field."""
    path = Path(path)
    if not path.is_file():
        raise SchemaError(f"schema file {path} does not exist")
    try:
        raw = load_yaml(path.read_text(encoding="utf-8"), str(path))
    except ConfigError as e:
        raise SchemaError(str(e)) from None
    except UnicodeDecodeError as e:
        raise SchemaError(f"{path}: not UTF-8 text (byte {e.start})") from None
    try:
        return build(raw, str(path))
    except SchemaError as e:
        raise SchemaError(f"{path}: {e}") from None
