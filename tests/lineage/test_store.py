"""The store itself: MLMD's tables, enum values, types, properties, upserts and links."""
from __future__ import annotations

import sqlite3

import pytest

from pipelines.lineage import (ArtifactState, EventType, ExecutionState, LineageError,
                             LineageStore, PropertyType)
from pipelines.lineage.schema import SCHEMA_VERSION, TABLES, TypeKind


def test_tables_and_enums_are_mlmds(tmp_path):
    store = LineageStore(tmp_path / "s.sqlite")
    names = {r[0] for r in sqlite3.connect(store.path).execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
    assert names == set(TABLES)
    assert sqlite3.connect(store.path).execute(
        "SELECT schema_version FROM MLMDEnv").fetchall() == [(SCHEMA_VERSION,)]
    assert [(s.name, s.value) for s in ExecutionState] == [
        ("UNKNOWN", 0), ("NEW", 1), ("RUNNING", 2), ("COMPLETE", 3), ("FAILED", 4),
        ("CACHED", 5), ("CANCELED", 6)]
    assert [(s.name, s.value) for s in EventType] == [
        ("UNKNOWN", 0), ("DECLARED_OUTPUT", 1), ("DECLARED_INPUT", 2), ("INPUT", 3),
        ("OUTPUT", 4), ("INTERNAL_INPUT", 5), ("INTERNAL_OUTPUT", 6), ("PENDING_OUTPUT", 7)]
    assert [(s.name, s.value) for s in ArtifactState] == [
        ("UNKNOWN", 0), ("PENDING", 1), ("LIVE", 2), ("MARKED_FOR_DELETION", 3),
        ("DELETED", 4), ("ABANDONED", 5), ("REFERENCE", 6)]
    assert [p.value for p in (PropertyType.INT, PropertyType.DOUBLE, PropertyType.STRING,
                              PropertyType.STRUCT, PropertyType.BOOLEAN)] == [1, 2, 3, 4, 6]
    assert [k.value for k in TypeKind] == [0, 1, 2]


def test_types_properties_and_upserts(tmp_path):
    store = LineageStore(tmp_path / "s.sqlite")
    tid = store.put_artifact_type("model", {"digest": "STRING", "rows": PropertyType.INT})
    assert store.put_artifact_type("model", {"digest": PropertyType.STRING}) == tid
    assert store.put_artifact_type("model", {"auc": "DOUBLE"}) == tid  # adding is allowed
    with pytest.raises(LineageError, match="property 'rows' is INT, not STRING"):
        store.put_artifact_type("model", {"rows": "STRING"})
    assert store.put_execution_type("model") != tid  # types are per kind
    a = store.put_artifact("model", "m@1", "/x/m", properties={"digest": "sha256:1", "rows": 7,
                                                                 "auc": 1},
                           custom_properties={"ok": True, "cfg": {"eta": 0.1, "d": [1, 2]},
                                              "w": 2.5})
    assert store.put_artifact("model", "m@1", "/x/m", properties={"rows": 8}) == a
    got, = store.get_artifacts_by_uri("/x/m")
    assert (got.type, got.name, got.state) == ("model", "m@1", ArtifactState.LIVE)
    assert got.properties == {"digest": "sha256:1", "rows": 8, "auc": 1.0}
    assert got.custom_properties == {"ok": True, "cfg": {"eta": 0.1, "d": [1, 2]}, "w": 2.5}
    with pytest.raises(LineageError, match="declares no property 'size'"):
        store.put_artifact("model", "m@2", "/x/m", properties={"size": 3})
    with pytest.raises(LineageError, match="declared INT, got STRING"):
        store.put_artifact("model", "m@2", "/x/m", properties={"rows": "many"})
    with pytest.raises(LineageError, match="no ARTIFACT_TYPE named 'nope'"):
        store.put_artifact("nope", "n", "/n")
    assert store.count("Artifact") == 1  # the failed puts left nothing behind


def test_events_contexts_and_links(tmp_path):
    store = LineageStore(tmp_path / "s.sqlite")
    store.put_artifact_type("data")
    store.put_execution_type("job", {"step": "STRING"})
    store.put_context_type("pipeline_run")
    a, b = (store.put_artifact("data", n, f"/d/{n}") for n in ("a", "b"))
    e = store.put_execution("job", "run/s", state=ExecutionState.RUNNING,
                            properties={"step": "s"})
    store.put_event(a, e, EventType.INPUT, ["inputs", 0])
    store.put_event(b, e, EventType.OUTPUT, ["output"])
    store.put_event(b, e, EventType.OUTPUT, ["output", "best"])  # same event: path replaced
    run = store.put_context("pipeline_run", "run")
    store.put_association(run, e)
    store.put_association(run, e)
    store.put_attribution(run, b)
    events = store.get_events_by_execution_ids([e])
    assert [(ev.artifact_id, ev.type, ev.path) for ev in events] == [
        (a, EventType.INPUT, ("inputs", 0)), (b, EventType.OUTPUT, ("output", "best"))]
    assert [x.id for x in store.get_executions_by_context(run)] == [e]
    assert [x.uri for x in store.get_artifacts_by_context(run)] == ["/d/b"]
    assert store.count("Association") == 1 and store.count("EventPath") == 4
    assert store.get_executions_by_id([e])[0].last_known_state is ExecutionState.RUNNING


def test_remote_store_is_refused():
    with pytest.raises(LineageError, match="must be a local file"):
        LineageStore("gs://bucket/lineage.sqlite")
