"""The ``tune_run`` artifact: a finished Ray Tune experiment over one training job.

Written by ``python -m ray_jobs.tune``::

    results.parquet results.csv   one row per trial: trial_id, status, end_reason,
                                  iterations, the metric, best_<metric>, config/<param> ...
    best_params.json              the best trial's sampled hyperparameters and metric
    best/                         the best trial's model: a committed xgboost_model or
                                  jax_model artifact (its own artifact.json and lineage)
    settings.json <name>/         the experiment's settings and Tune's own state (not
                                  digested: Tune's state and event files are not deterministic)
    artifact.json                 inputs: the features artifact; and the "tune_run" section:
                                  {"job", "metric", "mode", "results", "experiment", "trials",
                                   "best": {"trial_id", "config", "metric", "iterations",
                                            "model": {"dir", "type", "digest"} | null} | null}
"""
from __future__ import annotations

import dataclasses
import os

import pyarrow as pa
import pyarrow.parquet as pq

from mlbatch import storage
from mlbatch.artifacts.manifest import ArtifactError, Manifest, read_manifest

TYPE = "tune_run"


@dataclasses.dataclass(frozen=True)
class TuneRun:
    root: str
    manifest: Manifest

    @property
    def job(self) -> str:
        return self.manifest.body["job"]

    @property
    def metric(self) -> str:
        return self.manifest.body["metric"]

    @property
    def mode(self) -> str:
        return self.manifest.body["mode"]

    @property
    def best(self) -> dict | None:
        """{"trial_id", "config", "metric", "iterations", "model"} of the best trial."""
        return self.manifest.body.get("best")

    @property
    def best_params(self) -> dict:
        if not self.best:
            raise ArtifactError(f"{self.root}: no trial reported {self.metric!r}")
        return dict(self.best["config"])

    @property
    def best_metric(self) -> float | None:
        return self.best["metric"] if self.best else None

    @property
    def best_model_uri(self) -> str:
        """URI of the best trial's model artifact (read it with its type's reader)."""
        model = self.best and self.best.get("model")
        if not model:
            raise ArtifactError(f"{self.root}: the tune run exported no best model")
        return self.manifest.path(model["dir"])

    def trials(self) -> pa.Table:
        """The trials table (one row per trial, best first)."""
        loc = storage.locate(self.manifest.path(self.manifest.body["results"]))
        return pq.read_table(loc.path, filesystem=loc.fs)


def load_tune_run(root: str | os.PathLike) -> TuneRun:
    """Reads a committed ``tune_run`` artifact (local path or ``gs://``)."""
    m = read_manifest(root, TYPE)
    for key in ("job", "metric", "mode", "results"):
        if key not in m.body:
            raise ArtifactError(f"{m.root}: the {TYPE} section lacks {key!r}")
    return TuneRun(root=m.root, manifest=m)
