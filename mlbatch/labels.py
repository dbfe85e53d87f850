"""Regression label transforms: the forward map the feature job applies to the label it
stores, and the inverse every trainer applies so that metrics and predictions are in the
label's own units. One implementation of each, imported by both halves.

A feature artifact records its transform as ``{"kind": "log1p"}`` (or null) in the
``features.label.transform`` field of artifact.json (``FeatureSet.label_transform``).
"""
from __future__ import annotations

import numpy as np

from mlbatch.errors import UsageError

KINDS = ("log1p",)


class LabelTransformError(ValueError, UsageError):
    """An unknown label transform (the message names it)."""


def transform_record(kind: str | None) -> dict | None:
    """The artifact's record of a schema's ``label.transform``: None or ``{"kind": ...}``."""
    if kind is None:
        return None
    check_label_transform({"kind": kind})
    return {"kind": kind}


def check_label_transform(label_transform: dict | None) -> None:
    """Raises LabelTransformError unless ``label_transform`` is None or a known kind."""
    if label_transform is None:
        return
    kind = label_transform.get("kind") if isinstance(label_transform, dict) else None
    if kind not in KINDS:
        raise LabelTransformError(f"label transform {label_transform!r}: kind must be one of "
                                  f"{KINDS}")


def forward_label(values: np.ndarray, kind: str | None) -> tuple[np.ndarray, np.ndarray]:
    """(transformed float64 values, mask of values outside the transform's domain).

    ``log1p`` needs values > -1; a masked value's output is 0 (the caller excludes it).
    """
    values = np.asarray(values, dtype=np.float64)
    if kind is None:
        return values, np.zeros(values.shape, dtype=bool)
    check_label_transform({"kind": kind})
    bad = ~(values > -1.0) | ~np.isfinite(values)
    return np.log1p(np.where(bad, 0.0, values)), bad


def inverse_label(values: np.ndarray, label_transform: dict | None) -> np.ndarray:
    """Stored label units -> the label's own units (float64); identity without a transform."""
    check_label_transform(label_transform)
    values = np.asarray(values, dtype=np.float64)
    if label_transform is None:
        return values
    return np.expm1(values)
