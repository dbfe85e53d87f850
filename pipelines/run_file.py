"""``RUN/run.json``: the account of one pipeline run, the one module that knows its name
and shape. The runner rewrites it after every change of a step (so a killed run leaves
an exact account behind); the report reads it. Fields (docs/report.md)::

    pipeline, spec, spec_digest, started, ended, status (running | succeeded | failed),
    steps [{name, job, runs_on, inputs, status, cache_key, output, started, elapsed_s,
            key_figures, error}], versions {python, apache_beam, ...}
"""
from __future__ import annotations

from typing import Any

from mlbatch import storage
from mlbatch.artifacts import read_json, write_json
from mlbatch.errors import UsageError

RUN_FILE = "run.json"


class RunFileError(ValueError, UsageError):
    """run.json exists but cannot be read as a run's account (the message says why)."""


def write_run(run_dir: str, *, pipeline: str, spec: str, spec_digest: str, started: str,
              ended: str | None, status: str, steps: list[dict[str, Any]],
              versions: dict[str, str | None]) -> None:
    """Writes RUN/run.json (atomically, through the one JSON writer)."""
    write_json(storage.join(run_dir, RUN_FILE), {
        "pipeline": pipeline, "spec": spec, "spec_digest": spec_digest, "started": started,
        "ended": ended, "status": status, "steps": steps, "versions": versions})


def read_run(run_dir: str) -> dict[str, Any] | None:
    """RUN/run.json as written (None when the directory has none); raises RunFileError
    for a file that is not JSON or has no list of steps."""
    uri = storage.join(run_dir, RUN_FILE)
    if not storage.exists(uri):
        return None
    try:
        doc = read_json(uri)
    except ValueError as e:
        raise RunFileError(f"{uri}: not valid JSON ({e})") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("steps"), list):
        raise RunFileError(f"{uri}: expected an object with a list 'steps'")
    return doc
