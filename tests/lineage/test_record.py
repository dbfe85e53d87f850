"""Recording pipeline steps from real artifacts, and walking their lineage both ways."""
from __future__ import annotations

import shutil

import pytest

from mlbatch import storage
from mlbatch.artifacts.base import ArtifactWriter, read_manifest
from pipelines.lineage import (ArtifactState, EventType, ExecutionState, LineageError, LineageStore,
                               lineage, record_step)
from tests.lineage.conftest import RUN, record, write_artifact

RAW_ROLES = ["raw:flights", "raw:planes", "raw:weather", "schema"]


def test_steps_are_executions_of_their_jobs_in_the_run_context(recorded):
    store, ids = recorded
    xgb, = store.get_executions_by_id([ids["xgboost"]])
    assert (xgb.type, xgb.name, xgb.last_known_state) == (
        "ray_jobs.xgboost", f"{RUN}/xgboost", ExecutionState.COMPLETE)
    assert xgb.properties == {
        "pipeline_run": RUN, "step": "xgboost", "job": "ray_jobs.xgboost", "runs_on": "local",
        "cache_key": "sha256:key-xgboost", "params": {"num_boost_round": 15},
        "started": "2026-12-02T01:01:30+00:00", "ended": "2026-12-02T01:01:42.5+00:00",
        "elapsed_s": 12.5}
    run, = store.get_contexts("pipeline_run")
    assert (run.name, run.properties) == (RUN, {"pipeline": "flights"})
    assert [c.name for c in store.get_parent_contexts(run.id)] == ["flights"]
    assert sorted(e.properties["step"] for e in store.get_executions_by_context(run.id)) == [
        "features", "jax", "xgboost"]
    # every artifact touched is attributed to the run: 4 raw files, features,
    # transform_fn, 2 models
    assert sorted(a.type for a in store.get_artifacts_by_context(run.id)) == [
        "features", "file", "file", "file", "file", "jax_model", "transform_fn",
        "xgboost_model"]


def test_model_lineage_reaches_the_raw_files(recorded, flights_features, flights_xgboost,
                                             flights_slice):
    store, _ = recorded
    tree = lineage(store, str(flights_xgboost), "upstream")
    model = read_manifest(flights_xgboost)
    assert tree["artifact"]["digest"] == model.digest
    assert tree["artifact"]["custom_properties"]["metrics.auc"] == model.metrics["auc"]
    step = tree["produced_by"]["execution"]
    assert (step["step"], step["state"], step["params"]) == ("xgboost", "COMPLETE",
                                                             {"num_boost_round": 15})
    feats, = tree["produced_by"]["inputs"]
    assert feats["role"] == "features"
    assert feats["artifact"]["digest"] == read_manifest(flights_features).digest
    producer = feats["produced_by"]
    assert producer["execution"]["step"] == "features"
    transform, = producer["also_wrote"]
    assert (transform["type"], transform["uri"], transform["role"]) == (
        "transform_fn", str(flights_features / "transform_fn"), "output/transform_fn")
    raw = {t["role"]: t["artifact"] for t in producer["inputs"]}
    assert sorted(raw) == RAW_ROLES
    for table in ("flights", "planes", "weather"):
        path = str(flights_slice / f"{table}.csv")
        assert raw[f"raw:{table}"]["uri"] == path
        assert raw[f"raw:{table}"]["digest"] == f"sha256:{storage.sha256(path)}"
        assert raw[f"raw:{table}"]["properties"]["size"] == storage.size(path)
    assert all(t["produced_by"] is None for t in producer["inputs"])


def test_raw_file_downstream_reaches_both_models(recorded, flights_slice, flights_xgboost,
                                                 flights_jax):
    store, _ = recorded
    tree = lineage(store, str(flights_slice / "weather.csv"), "downstream")
    use, = tree["consumed_by"]
    assert (use["execution"]["step"], use["role"]) == ("features", "raw:weather")
    outputs = {o["role"]: o for o in use["outputs"]}
    assert sorted(outputs) == ["output", "output/transform_fn"]
    models = {u["execution"]["step"]: [o["artifact"]["uri"] for o in u["outputs"]]
              for u in outputs["output"]["consumed_by"]}
    assert models == {"xgboost": [str(flights_xgboost)], "jax": [str(flights_jax)]}


def test_recording_again_changes_nothing(recorded, flights_features, flights_xgboost):
    store, ids = recorded
    before = {t: store.count(t) for t in ("Artifact", "Execution", "Event", "EventPath",
                                          "Attribution", "Association", "Context")}
    again = record(store, "xgboost", "ray_jobs.xgboost", [flights_features], flights_xgboost,
                   num_boost_round=15)
    assert again == ids["xgboost"]
    assert {t: store.count(t) for t in before} == before


def test_new_bytes_at_a_uri_are_a_new_artifact(tmp_path):
    store = LineageStore(tmp_path / "lineage.sqlite")
    out = tmp_path / "run" / "report"
    write_artifact(out, "first")
    first = record(store, "report", "tests.lineage", [], out)
    old_digest = read_manifest(out).digest
    write_artifact(out, "second")
    second = record(store, "report", "tests.lineage", [], out, run="run-2")
    assert first != second
    states = {a.properties["digest"]: a.state for a in store.get_artifacts_by_uri(str(out))}
    assert states == {old_digest: ArtifactState.DELETED,
                      read_manifest(out).digest: ArtifactState.LIVE}
    assert lineage(store, str(out))["produced_by"]["execution"]["pipeline_run"] == "run-2"


def test_a_cache_hit_is_recorded_as_reuse_not_as_the_producer(tmp_path):
    store = LineageStore(tmp_path / "lineage.sqlite")
    up = write_artifact(tmp_path / "up", "upstream")
    out = write_artifact(tmp_path / "down", "downstream", upstream=up)
    record(store, "up", "tests.lineage", [], up)
    record(store, "down", "tests.lineage", [up], out)
    record(store, "down", "tests.lineage", [up], out, state="cached", run="run-2")
    producer = lineage(store, str(out))["produced_by"]
    assert (producer["execution"]["pipeline_run"], producer["execution"]["state"]) == (
        RUN, "COMPLETE")
    assert [(e["pipeline_run"], e["state"]) for e in producer["reused_by"]] == [
        ("run-2", "CACHED")]
    assert producer["inputs"][0]["role"] == "upstream"


def test_a_failed_step_has_no_output_and_keeps_its_error(tmp_path):
    store = LineageStore(tmp_path / "lineage.sqlite")
    up = write_artifact(tmp_path / "up", "upstream")
    out = tmp_path / "down"
    w = ArtifactWriter(out, "run_report", job="tests.lineage")
    w.claim()
    w.fail("boom")
    eid = record_step(store, RUN, "down", "tests.lineage", "local", {}, None, [str(up)],
                      str(out), None, None, "failed", error="ValueError: boom")
    e, = store.get_executions_by_id([eid])
    assert (e.last_known_state, e.properties["error"]) == (ExecutionState.FAILED,
                                                           "ValueError: boom")
    assert [(ev.type, ev.path) for ev in store.get_events_by_execution_ids([eid])] == [
        (EventType.INPUT, ("inputs", 0))]
    with pytest.raises(LineageError, match="step 'down' is COMPLETE but its output cannot be "
                                           "read: .*failed: boom"):
        record_step(store, RUN, "down", "tests.lineage", "local", {}, None, [str(up)],
                    str(out), None, None, "done")
    with pytest.raises(LineageError, match="unknown step state 'finished'"):
        record_step(store, RUN, "down", "tests.lineage", "local", {}, None, [], None, None,
                    None, "finished")
    with pytest.raises(LineageError, match="no artifact recorded at"):
        lineage(store, str(out))


def test_a_tune_runs_best_model_is_an_output_of_the_tune_step(tmp_path, flights_xgboost):
    """Artifacts committed inside an output (a Tune run's best/) are outputs too."""
    store = LineageStore(tmp_path / "lineage.sqlite")
    tune = tmp_path / "tune"
    w = ArtifactWriter(tune, "tune_run", job="tests.lineage")
    w.claim()
    shutil.copytree(flights_xgboost, tune / "best")
    w.commit(body={"job": "xgboost"})
    eid = record(store, "tune", "ray_jobs.tune", [], tune)
    paths = {ev.path: store.get_artifacts_by_id([ev.artifact_id])[0]
             for ev in store.get_events_by_execution_ids([eid])}
    assert paths[("output",)].type == "tune_run"
    assert paths[("output", "best")].uri == str(tune / "best")
    assert paths[("output", "best")].properties["digest"] == read_manifest(flights_xgboost).digest
    tree = lineage(store, str(tune / "best"))
    assert tree["produced_by"]["execution"]["step"] == "tune"
