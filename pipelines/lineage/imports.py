"""Step records written where a step ran (a Vertex AI task, a remote cluster) imported into
a lineage store: each record holds the arguments of ``pipelines.lineage.record_step``."""
from __future__ import annotations

import json
import logging

from mlbatch import storage
from pipelines.lineage.record import record_step
from pipelines.lineage.store import LineageError, LineageStore

LOGGER = logging.getLogger(__name__)

RECORD_FIELDS = ("pipeline_run", "step_name", "job", "runs_on", "params", "cache_key",
                 "inputs", "output", "started", "ended", "state", "pipeline", "error")


def import_step_records(store: LineageStore, directory: str) -> list[int]:
    """Records every ``<step>.json`` under ``directory`` (local or gs://) in ``store``, in
    name order; returns the execution ids. A record missing a field, or whose output's
    digest is no longer the one it recorded, is refused naming the file."""
    ids = []
    for entry in sorted(storage.list_files(directory), key=lambda f: f.relpath):
        if not entry.relpath.endswith(".json") or "/" in entry.relpath:
            continue
        uri = storage.join(directory, entry.relpath)
        try:
            record = json.loads(storage.read_text(uri))
        except ValueError as e:
            raise LineageError(f"{uri}: not valid JSON ({e})") from e
        missing = [f for f in RECORD_FIELDS if f not in record]
        if missing:
            raise LineageError(f"{uri}: not a step record (missing {', '.join(missing)})")
        _check_digest(uri, record)
        ids.append(record_step(store, **{f: record[f] for f in RECORD_FIELDS}))
    LOGGER.info("imported %d step records from %s", len(ids), directory)
    return ids


def _check_digest(uri: str, record: dict) -> None:
    from mlbatch.artifacts import ArtifactError, read_manifest

    if not record.get("digest") or not record.get("output"):
        return
    try:
        digest = read_manifest(record["output"]).digest
    except (ArtifactError, FileNotFoundError, storage.StorageError) as e:
        raise LineageError(f"{uri}: its output {record['output']} is unreadable: {e}") from e
    if digest != record["digest"]:
        raise LineageError(f"{uri}: its output {record['output']} is now {digest}, the task "
                           f"recorded {record['digest']} (rewritten since)")
