"""The drift history: one row per feature, label, prediction and attribution per
monitoring run, kept in every monitor artifact as ``history.json`` and in the lineage
store (``pipelines.lineage.drift_history``).

A monitor run given ``--history <previous monitor output>`` carries that output's rows
and appends its own, so the newest monitor artifact of a series holds the whole timeline
of its baseline; the rows are never rewritten. Each row::

    period, mode ("skew" | "drift"), against, run (the monitor output's URI), stage
    ("raw" | "transformed" | "label" | "prediction" | "attribution"), name, metric
    ("linf" | "js" | "attr"), distance, threshold, null_p99 (the sample-size-aware null
    threshold), n_reference, n_current, verdict ("breach" | "ok")

``history_rows`` (producer) and ``load_history`` (reader) are the one way in and out.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable

from mlbatch import storage
from mlbatch.artifacts.base import ArtifactError, read_json, read_manifest

HISTORY = "history.json"
VERSION = 1


@dataclasses.dataclass(frozen=True)
class HistoryRow:
    period: str
    mode: str
    against: str | None
    run: str
    stage: str
    name: str
    metric: str
    distance: float
    threshold: float
    null_p99: float
    n_reference: int
    n_current: int
    verdict: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def history_rows(doc: dict, *, period: str, run: str) -> list[HistoryRow]:
    """This run's rows from its drift.json document: every feature, then the label, the
    prediction and the attributions (when compared)."""
    entries = [*doc["features"], *(doc[k] for k in ("label_drift", "prediction_drift") if doc.get(k)),
               *doc.get("attribution_drift", [])]
    return [HistoryRow(period=period, mode=doc["mode"], against=doc.get("against"), run=run,
                       stage=e["stage"], name=e["name"], metric=e["metric"],
                       distance=e["distance"], threshold=e["threshold"], null_p99=e["null_p99"],
                       n_reference=e["n_reference"], n_current=e["n_current"],
                       verdict="breach" if e["breach"] else "ok") for e in entries]


def check_new_period(previous: Iterable[HistoryRow], period: str, mode: str) -> None:
    """Raises ArtifactError when the carried history already holds ``period`` in ``mode``
    (a second writer of the same history rows)."""
    if any(r.period == period and r.mode == mode for r in previous):
        raise ArtifactError(f"the history already holds period {period!r} ({mode}); "
                            "give another --period or start from an earlier --history")


def history_document(rows: Iterable[HistoryRow]) -> dict:
    return {"version": VERSION, "rows": [r.to_dict() for r in rows]}


def load_history(root: str | os.PathLike) -> list[HistoryRow]:
    """The rows of a committed monitor artifact's history (oldest first); raises
    ArtifactError naming the cause."""
    m = read_manifest(root, "monitor")
    name = m.body.get("history")
    if name is None:
        raise ArtifactError(f"{m.root}: this monitor output keeps no drift history "
                            "(written before the history existed)")
    try:
        doc = read_json(m.path(name))
        if doc.get("version") != VERSION:
            raise ValueError(f"history version {doc.get('version')!r}, expected {VERSION}")
        return [HistoryRow(**r) for r in doc["rows"]]
    except (OSError, ValueError, KeyError, TypeError, storage.StorageError) as e:
        raise ArtifactError(f"{m.root}: unreadable drift history ({e!r})") from e
