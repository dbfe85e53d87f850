"""The ``monitor`` artifact: what ``python -m beam_jobs.monitor`` writes (skew and drift).

A monitor directory holds::

    drift.json        mode ("skew" | "drift"), verdict ("ok" | "breach"), baseline (URI
                      and digest of the training features), against, sample sizes, and
                      per feature: name, stage (raw | transformed), kind, metric (linf | js),
                      distance, threshold, null_p99, n_reference, n_current, breach;
                      transform_skew, prediction_drift, label_drift (docs/monitoring.md)
    histograms.json   "<stage>/<name>" -> counts on both sides (for the report)
    anomalies.pbtxt   the same results as tensorflow_metadata Anomalies (drift_skew_info)
    history.json      the drift history (mlbatch.artifacts.drift_history)
    alert.json        only on a breach: what breached (load_alert; the pipeline runner
                      hands it to the pipeline's on_alert command)
    dead_letter/      rows of the new data that could not be read, with their reasons
    artifact.json     the commit marker; metrics: features_checked, features_breached,
                      verdict

``load_monitor`` is the one reader.
"""
from __future__ import annotations

import dataclasses
import os

from mlbatch import storage
from mlbatch.artifacts.base import ArtifactError, Manifest, read_json, read_manifest

TYPE = "monitor"
DRIFT = "drift.json"
HISTOGRAMS = "histograms.json"
ANOMALIES = "anomalies.pbtxt"
ALERT = "alert.json"


@dataclasses.dataclass(frozen=True)
class MonitorResult:
    root: str
    manifest: Manifest
    drift: dict
    histograms: dict

    @property
    def verdict(self) -> str:
        return self.drift["verdict"]

    @property
    def mode(self) -> str:
        return self.drift["mode"]

    @property
    def breached(self) -> list[str]:
        """Names of the features (raw or transformed) that breached."""
        return [f["name"] for f in self.drift["features"] if f["breach"]]

    @property
    def baseline_digest(self) -> str | None:
        return self.drift.get("baseline_digest")


def load_monitor(root: str | os.PathLike) -> MonitorResult:
    """Reads a committed monitor artifact; raises ArtifactError naming the cause."""
    m = read_manifest(root, TYPE)
    try:
        doc = read_json(m.path(m.body.get("drift", DRIFT)))
        hist = read_json(m.path(m.body.get("histograms", HISTOGRAMS)))
        for key in ("mode", "verdict", "features"):
            if key not in doc:
                raise KeyError(key)
    except (OSError, ValueError, KeyError, storage.StorageError) as e:
        raise ArtifactError(f"{m.root}: unreadable monitor output ({e!r})") from e
    return MonitorResult(root=m.root, manifest=m, drift=doc, histograms=hist)


def load_alert(root: str | os.PathLike) -> dict | None:
    """The alert record of a committed monitor artifact, or None when nothing breached."""
    m = read_manifest(root, TYPE)
    name = m.body.get("alert")
    if name is None:
        return None
    try:
        return read_json(m.path(name))
    except (OSError, ValueError, storage.StorageError) as e:
        raise ArtifactError(f"{m.root}: unreadable alert record ({e!r})") from e
