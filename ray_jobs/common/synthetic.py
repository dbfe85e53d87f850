"""Synthetic feature directories that follow the feature job's contract.

For tests of the training jobs in isolation and for benchmarks at sizes the real data
does not reach. The label is a noisy logistic (or linear) function of the features, so
a model can learn it (multiclass: the terciles of that function, classes ``low``, ``mid``,
``high``); nothing about the result is fixed in advance.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mlbatch.artifacts import ArtifactWriter
from mlbatch.artifacts.features import Feature, feature_section

SYNTHETIC_CLASSES = ("low", "mid", "high")


def write_synthetic_features(root: str | Path, *, n_train: int, n_eval: int,
                             n_numeric: int = 6, cardinalities: tuple[int, ...] = (8, 32, 256),
                             task: str = "binary_classification", shards: int = 2,
                             seed: int = 0) -> Path:
    """Writes train/ and eval/ Parquet shards under root and commits them as a
    ``features`` artifact (no transform_fn: these features were never raw)."""
    root = Path(root)
    config = {"n_train": n_train, "n_eval": n_eval, "n_numeric": n_numeric,
              "cardinalities": list(cardinalities), "task": task, "shards": shards, "seed": seed}
    writer = ArtifactWriter(root, "features", job="ray_jobs.common.synthetic", config=config)
    writer.claim(overwrite=True)
    rng = np.random.default_rng(seed)
    w_num = rng.normal(size=n_numeric)
    w_cat = [rng.normal(scale=0.8, size=c) for c in cardinalities]
    features = ([Feature(f"num_{i}", "numeric", transform="z_score") for i in range(n_numeric)]
                + [Feature(f"cat_{j}", "categorical", cardinality=c, transform="vocabulary")
                   for j, c in enumerate(cardinalities)])
    for split, n in (("train", n_train), ("eval", n_eval)):
        x = rng.normal(size=(n, n_numeric)).astype(np.float32)
        ids = [rng.integers(0, c, size=n) for c in cardinalities]
        logit = x @ w_num + sum(w[i] for w, i in zip(w_cat, ids)) + rng.normal(scale=0.5, size=n)
        if task == "binary_classification":
            label = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.float32)
        elif task == "multiclass_classification":  # 3 classes: the logit's terciles
            label = np.digitize(logit, np.quantile(logit, [1 / 3, 2 / 3])).astype(np.float32)
        else:
            label = logit.astype(np.float32)
        cols = {f"num_{i}": x[:, i] for i in range(n_numeric)}
        cols.update({f"cat_{j}": ids[j].astype(np.int64) for j in range(len(cardinalities))})
        cols["label"] = label
        table = pa.table(cols)
        (root / split).mkdir(parents=True, exist_ok=True)
        bounds = np.linspace(0, n, shards + 1).astype(int)
        for s in range(shards):
            pq.write_table(table.slice(bounds[s], bounds[s + 1] - bounds[s]),
                           root / split / f"part-{s:05d}-of-{shards:05d}.parquet")
    writer.commit(rows={"train": n_train, "eval": n_eval}, body=feature_section(
        label="label", task=task, features=features, splits={"train": n_train, "eval": n_eval},
        example_id=None, transform_fn=None, dataset="synthetic",
        classes=SYNTHETIC_CLASSES if task == "multiclass_classification" else ()))
    return root
