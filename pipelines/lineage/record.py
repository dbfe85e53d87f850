"""Recording a pipeline step in the lineage store, from the artifacts it read and wrote.

One step is one MLMD ``Execution`` of the execution type named after its job
(``ray_jobs.xgboost`` ...), named ``<pipeline_run>/<step>``, associated with the
``pipeline_run`` context (itself a child of the ``pipeline`` context). What it read and
wrote comes from the ``artifact.json`` files, read through ``mlbatch.artifacts``:

* each input artifact (the step's declared inputs and every artifact input its output's
  manifest lists): an ``INPUT`` event, path = the role it had (``features``, ``model``);
* each raw file the output's manifest lists (``raw:<table>``, ``schema``): a ``file``
  artifact and an ``INPUT`` event;
* the output artifact: an ``OUTPUT`` event, path ``output``; artifacts committed inside it
  (a Tune run's ``best/``) and a feature artifact's ``transform_fn`` too, path
  ``output/<subdir>``.

An artifact's identity is its URI *and* content digest (artifact name ``uri@digest``): the
same bytes recorded again are the same artifact, new bytes at a URI are a new artifact and
the older one there is marked ``DELETED``. Recording the same step of the same run again
replaces that execution's events, so recording is idempotent.
"""
from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping
from typing import Any

from mlbatch import storage
from mlbatch.artifacts.base import ArtifactError, Manifest, digest_of, read_manifest
from pipelines.lineage.schema import ArtifactState, EventType, ExecutionState, PropertyType
from pipelines.lineage.store import LineageError, LineageStore
from pipelines.lineage import drift_history

LOGGER = logging.getLogger(__name__)

S, I, D, STRUCT = PropertyType.STRING, PropertyType.INT, PropertyType.DOUBLE, PropertyType.STRUCT
ARTIFACT_PROPERTIES = {"digest": S, "format_version": S, "producer_job": S, "git_commit": S}
FILE_TYPE, FILE_PROPERTIES = "file", {"digest": S, "sha256": S, "size": I}
TRANSFORM_FN_TYPE = "transform_fn"
EXECUTION_PROPERTIES = {"pipeline_run": S, "step": S, "job": S, "runs_on": S, "cache_key": S,
                        "params": STRUCT, "started": S, "ended": S, "elapsed_s": D, "error": S}
PIPELINE, PIPELINE_RUN = "pipeline", "pipeline_run"

# The runner's step states (run.json) -> MLMD execution states.
STATES = {"done": ExecutionState.COMPLETE, "cached": ExecutionState.CACHED,
          "failed": ExecutionState.FAILED, "skipped": ExecutionState.CANCELED,
          "running": ExecutionState.RUNNING, "waiting": ExecutionState.NEW}
_SUCCEEDED = (ExecutionState.COMPLETE, ExecutionState.CACHED)


def execution_state(state: str) -> ExecutionState:
    if state in STATES:
        return STATES[state]
    try:
        return ExecutionState[state.upper()]
    except KeyError:
        raise LineageError(f"unknown step state {state!r}; one of {sorted(STATES)} or an "
                           f"MLMD Execution.State name") from None


def _iso(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, (int, float)):
        return datetime.datetime.fromtimestamp(value, datetime.timezone.utc).isoformat()
    try:
        datetime.datetime.fromisoformat(str(value))
    except ValueError:
        raise LineageError(f"{what} {value!r} is no ISO 8601 time or epoch seconds") from None
    return str(value)


def _elapsed(started: str | None, ended: str | None) -> float | None:
    if not (started and ended):
        return None
    delta = datetime.datetime.fromisoformat(ended) - datetime.datetime.fromisoformat(started)
    return round(delta.total_seconds(), 3)


def _flat_metrics(metrics: Mapping[str, Any], prefix: str = "metrics.") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, Mapping):
            out.update(_flat_metrics(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[f"{prefix}{key}"] = float(value)
    return out


def _put_named(store: LineageStore, type_name: str, uri: str, digest: str,
               properties: dict, custom: dict | None = None) -> int:
    """The artifact (type, uri, digest); an older artifact at the URI becomes DELETED."""
    name = f"{uri}@{digest}"
    artifact_id = store.put_artifact(type_name, name, uri, state=ArtifactState.LIVE,
                                     properties=properties, custom_properties=custom or {})
    for other in store.get_artifacts_by_uri(uri):
        if other.id != artifact_id and other.state is ArtifactState.LIVE:
            store.set_artifact_state(other.id, ArtifactState.DELETED)
    return artifact_id


def put_manifest_artifact(store: LineageStore, m: Manifest) -> int:
    """The artifact a committed ``artifact.json`` describes (type, digest, metrics ...)."""
    store.put_artifact_type(m.type, ARTIFACT_PROPERTIES)
    producer = m.doc.get("producer") or {}
    props = {"digest": m.digest, "format_version": m.format_version,
             "producer_job": producer.get("job"), "git_commit": producer.get("git_commit")}
    timings = m.doc.get("timings") or {}
    custom = {**_flat_metrics(m.metrics), "rows": m.rows or None,
              "started": timings.get("started"), "finished": timings.get("finished"),
              "wall_s": timings.get("wall_s")}
    return _put_named(store, m.type, m.root, m.digest,
                      {k: v for k, v in props.items() if v is not None},
                      {k: v for k, v in custom.items() if v is not None})


def put_file(store: LineageStore, entry: Mapping[str, Any]) -> int:
    """A raw input file as its manifest entry records it (uri, size, sha256)."""
    store.put_artifact_type(FILE_TYPE, FILE_PROPERTIES)
    digest = f"sha256:{entry['sha256']}"
    return _put_named(store, FILE_TYPE, entry["uri"], digest,
                      {"digest": digest, "sha256": entry["sha256"], "size": int(entry["size"])})


def _put_reference(store: LineageStore, entry: Mapping[str, Any]) -> int:
    """An input artifact as a manifest's input entry records it (uri, type, digest)."""
    try:
        m = read_manifest(entry["uri"])
    except ArtifactError:
        m = None
    if m is not None and m.digest == entry["digest"]:
        return put_manifest_artifact(store, m)
    store.put_artifact_type(entry["type"], ARTIFACT_PROPERTIES)  # since replaced or moved
    name = f"{entry['uri']}@{entry['digest']}"
    known = [a for a in store.get_artifacts_by_uri(entry["uri"]) if a.name == name]
    state = known[0].state if known else ArtifactState.DELETED
    return store.put_artifact(entry["type"], name, entry["uri"], state=state,
                              properties={"digest": entry["digest"]})


def _transform_fn(store: LineageStore, m: Manifest) -> tuple[str, int] | None:
    """A feature artifact's transform_fn SavedModel as an artifact of its own."""
    subdir = m.body.get("transform_fn") if m.type == "features" else None
    if not subdir:
        return None
    prefix = subdir.rstrip("/") + "/"
    files = [{**f, "path": f["path"][len(prefix):]} for f in m.files
             if f["path"].startswith(prefix)]
    store.put_artifact_type(TRANSFORM_FN_TYPE, {"digest": S})
    digest = digest_of(files)
    return subdir, _put_named(store, TRANSFORM_FN_TYPE, m.path(subdir), digest,
                              {"digest": digest})


def _outputs(store: LineageStore, m: Manifest) -> list[tuple[tuple[str, ...], int]]:
    """(event path, artifact id) of the output and the artifacts committed inside it."""
    outputs = [(("output",), put_manifest_artifact(store, m))]
    nested = sorted({f["path"].rsplit("/", 1)[0] for f in m.files
                     if f["path"].endswith("/artifact.json")})
    for subdir in nested:
        try:
            outputs.append((("output", subdir),
                            put_manifest_artifact(store, read_manifest(m.path(subdir)))))
        except ArtifactError as e:
            LOGGER.warning("%s: nested artifact %s not recorded: %s", m.root, subdir, e)
    transform = _transform_fn(store, m)
    if transform:
        outputs.append((("output", transform[0]), transform[1]))
    return outputs


def _inputs(store: LineageStore, inputs: list[str], m: Manifest | None,
            succeeded: bool) -> list[tuple[tuple[Any, ...], int]]:
    """(event path, artifact id) of every input: declared artifacts and recorded files."""
    recorded = {storage.locate(e["uri"]).uri: e for e in (m.inputs if m else [])}
    out, seen = [], set()
    for i, uri in enumerate(inputs):
        uri = storage.locate(uri).uri
        entry = recorded.get(uri)
        if entry is not None and entry.get("kind") == "artifact":
            out.append(((entry["role"],), _put_reference(store, entry)))
        else:
            try:
                artifact_id = put_manifest_artifact(store, read_manifest(uri))
            except ArtifactError as e:
                if succeeded:
                    raise LineageError(f"input {uri}: {e}") from e
                LOGGER.info("input %s of an unfinished step not recorded: %s", uri, e)
                continue
            out.append((("inputs", i), artifact_id))
        seen.add(uri)
    for uri, entry in recorded.items():
        if uri in seen:
            continue
        if entry.get("kind") == "file":
            out.append(((entry["role"],), put_file(store, entry)))
        elif entry.get("kind") == "artifact":
            out.append(((entry["role"],), _put_reference(store, entry)))
    return out


def _contexts(store: LineageStore, pipeline_run: str, pipeline: str | None) -> list[int]:
    store.put_context_type(PIPELINE, {})
    store.put_context_type(PIPELINE_RUN, {"pipeline": S})
    run_id = store.put_context(PIPELINE_RUN, pipeline_run,
                               properties={"pipeline": pipeline} if pipeline else {})
    if not pipeline:
        return [run_id]
    pipeline_id = store.put_context(PIPELINE, pipeline)
    store.put_parent_context(run_id, pipeline_id)
    return [run_id, pipeline_id]


def _read_output(output: str | None, state: ExecutionState, step_name: str) -> Manifest | None:
    if output is None:
        if state in _SUCCEEDED:
            raise LineageError(f"step {step_name!r} is {state.name} but names no output")
        return None
    try:
        return read_manifest(output)
    except ArtifactError as e:
        if state in _SUCCEEDED:
            raise LineageError(f"step {step_name!r} is {state.name} but its output "
                               f"cannot be read: {e}") from e
        return None


def record_step(store: LineageStore, pipeline_run: str, step_name: str, job: str,
                runs_on: str, params: Mapping[str, Any], cache_key: str | None,
                inputs: list[str], output: str | None, started: Any, ended: Any,
                state: str, *, pipeline: str | None = None, error: str | None = None) -> int:
    """Records one step (see the module docstring); returns its execution id."""
    exec_state = execution_state(state)
    manifest = _read_output(output, exec_state, step_name)
    timings = (manifest.doc.get("timings") or {}) if manifest else {}
    started_s = _iso(started, "started") or timings.get("started")  # else the job's own
    ended_s = _iso(ended, "ended") or timings.get("finished")
    props = {"pipeline_run": pipeline_run, "step": step_name, "job": job, "runs_on": runs_on,
             "cache_key": cache_key, "params": dict(params), "started": started_s,
             "ended": ended_s, "elapsed_s": _elapsed(started_s, ended_s), "error": error}
    with store.transaction():
        contexts = _contexts(store, pipeline_run, pipeline)
        store.put_execution_type(job, EXECUTION_PROPERTIES)
        execution_id = store.put_execution(
            job, f"{pipeline_run}/{step_name}", state=exec_state,
            properties={k: v for k, v in props.items() if v is not None})
        store.delete_events_of_execution(execution_id)
        linked = [(EventType.INPUT, path, a) for path, a in
                  _inputs(store, list(inputs), manifest, exec_state in _SUCCEEDED)]
        if manifest is not None:
            linked += [(EventType.OUTPUT, path, a) for path, a in _outputs(store, manifest)]
        for event_type, path, artifact_id in linked:
            store.put_event(artifact_id, execution_id, event_type, path)
            for context_id in contexts:
                store.put_attribution(context_id, artifact_id)
        for context_id in contexts:
            store.put_association(context_id, execution_id)
        if manifest is not None and manifest.type == "monitor":
            drift_history.put_history(store, execution_id, manifest)
    LOGGER.info("lineage: %s/%s %s (%d events)", pipeline_run, step_name, exec_state.name,
                len(linked))
    return execution_id
