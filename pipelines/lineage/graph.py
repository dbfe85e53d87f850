"""Walking the lineage store: what an artifact was built from, and what was built from it.

``lineage(store, uri, "upstream")`` is a tree of plain dicts (JSON-ready)::

    {"artifact": NODE, "role": None, "seen": False,
     "produced_by": {"execution": EXEC, "also_wrote": [NODE + {"role"}],
                     "inputs": [TREE + {"role"}], "reused_by": [EXEC]} | None}

and ``"downstream"``::

    {"artifact": NODE, "role": None, "seen": False,
     "consumed_by": [{"execution": EXEC, "role": str, "outputs": [TREE + {"role"}]}]}

NODE = {id, type, uri, state, digest, properties, custom_properties};
EXEC = {id, name, job, state, step, runs_on, cache_key, params, started, ended,
elapsed_s, error, pipeline_run}. An artifact reached a second time (a diamond in the
DAG) is listed with ``"seen": True`` and not expanded again. Of several executions that
output the same artifact, the one that ran it (COMPLETE) is its producer and the later
cache hits are listed under ``reused_by``.
"""
from __future__ import annotations

from typing import Any

from mlbatch import storage
from pipelines.lineage.schema import ArtifactState, EventType, ExecutionState
from pipelines.lineage.store import Artifact, Event, Execution, LineageError, LineageStore

DIRECTIONS = ("upstream", "downstream")
_OUT = (EventType.OUTPUT, EventType.DECLARED_OUTPUT)
_IN = (EventType.INPUT, EventType.DECLARED_INPUT)


def artifact_node(a: Artifact) -> dict[str, Any]:
    return {"id": a.id, "type": a.type, "uri": a.uri, "state": a.state.name,
            "digest": a.properties.get("digest"), "properties": a.properties,
            "custom_properties": a.custom_properties}


def execution_node(e: Execution) -> dict[str, Any]:
    keys = ("step", "job", "runs_on", "cache_key", "params", "started", "ended", "elapsed_s",
            "error", "pipeline_run")
    return {"id": e.id, "name": e.name, "type": e.type, "state": e.last_known_state.name,
            **{k: e.properties.get(k) for k in keys}}


def find_artifact(store: LineageStore, uri: str) -> Artifact:
    """The artifact recorded at ``uri``: the live one, else the latest recorded."""
    uri = storage.locate(uri).uri
    found = store.get_artifacts_by_uri(uri)
    if not found:
        raise LineageError(f"no artifact recorded at {uri} in the lineage store {store.path}")
    live = [a for a in found if a.state is ArtifactState.LIVE]
    return (live or found)[-1]


def _role(event: Event) -> str:
    return "/".join(str(s) for s in event.path) if event.path else event.type.name.lower()


class _Walker:
    def __init__(self, store: LineageStore):
        self.store = store
        self.seen: set[int] = set()

    def _execution(self, execution_id: int) -> Execution:
        return self.store.get_executions_by_id([execution_id])[0]

    def _artifact(self, artifact_id: int) -> Artifact:
        return self.store.get_artifacts_by_id([artifact_id])[0]

    def _visit(self, a: Artifact, role: str | None) -> tuple[dict, bool]:
        first = a.id not in self.seen
        self.seen.add(a.id)
        return {"artifact": artifact_node(a), "role": role, "seen": not first}, first

    def upstream(self, a: Artifact, role: str | None = None) -> dict:
        tree, first = self._visit(a, role)
        tree["produced_by"] = None
        if not first:
            return tree
        producers = sorted((self._execution(ev.execution_id) for ev in
                            self.store.get_events_by_artifact_ids([a.id]) if ev.type in _OUT),
                           key=lambda e: (e.last_known_state is not ExecutionState.COMPLETE,
                                          e.id))
        if not producers:
            return tree
        producer, *reusers = producers
        events = self.store.get_events_by_execution_ids([producer.id])
        inputs = [self.upstream(self._artifact(ev.artifact_id), _role(ev))
                  for ev in events if ev.type in _IN]
        also = [{**artifact_node(self._artifact(ev.artifact_id)), "role": _role(ev)}
                for ev in events if ev.type in _OUT and ev.artifact_id != a.id]
        tree["produced_by"] = {"execution": execution_node(producer), "also_wrote": also,
                               "inputs": inputs,
                               "reused_by": [execution_node(e) for e in reusers]}
        return tree

    def downstream(self, a: Artifact, role: str | None = None) -> dict:
        tree, first = self._visit(a, role)
        tree["consumed_by"] = []
        if not first:
            return tree
        for ev in self.store.get_events_by_artifact_ids([a.id]):
            if ev.type not in _IN:
                continue
            consumer = self._execution(ev.execution_id)
            outputs = [self.downstream(self._artifact(out.artifact_id), _role(out))
                       for out in self.store.get_events_by_execution_ids([consumer.id])
                       if out.type in _OUT]
            tree["consumed_by"].append({"execution": execution_node(consumer),
                                        "role": _role(ev), "outputs": outputs})
        return tree


def lineage(store: LineageStore, uri: str, direction: str = "upstream") -> dict:
    """The lineage tree of the artifact at ``uri`` (see the module docstring)."""
    if direction not in DIRECTIONS:
        raise LineageError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    walker = _Walker(store)
    artifact = find_artifact(store, uri)
    return walker.upstream(artifact) if direction == "upstream" else walker.downstream(artifact)


def upstream_tree(store: LineageStore, artifact_id: int) -> dict:
    """The upstream lineage tree of the artifact with this id (a walk of its own, so no
    node is cut short as already seen by another walk)."""
    return _Walker(store).upstream(store.get_artifacts_by_id([artifact_id])[0])
