"""Scoring and monitoring read ``--model registry:NAME@ALIAS``: the blessed version is
scored and the predictions' lineage records which version it was; a reference that
cannot be resolved stops the job before its pipeline starts (exit 2)."""
from __future__ import annotations

from beam_jobs.monitor.__main__ import main as monitor_main
from beam_jobs.score.__main__ import main as score_main
from beam_jobs.score.__main__ import run as score_run
from mlbatch.artifacts.base import read_manifest
from mlbatch.artifacts.predictions import load_predictions
from pipelines.lineage import LineageStore
from pipelines.model_registry import ModelRegistry


def test_scoring_with_the_blessed_alias_records_the_version(tmp_path, flights_slice,
                                                           flights_features, flights_xgboost,
                                                           flights_jax):
    store = tmp_path / "registry.sqlite"
    with LineageStore(store) as s:
        reg = ModelRegistry(s)
        reg.register("delay", str(flights_jax))
        reg.register("delay", str(flights_xgboost))
        reg.set_alias("delay", "blessed", 2)
        reg.set_alias("delay", "blessed", 1)
        reg.rollback("delay")  # blessed: back to version 2, the XGBoost model
    out = tmp_path / "scored"
    score_run(["--features", str(flights_features), "--model", "registry:delay@blessed",
               "--registry", str(store), "--input", str(flights_slice), "--output", str(out)],
              save_main_session=False)
    m = read_manifest(out)
    xgb = read_manifest(flights_xgboost)
    assert m.input("model") == {
        "role": "model", "kind": "artifact", "type": "xgboost_model", "uri": xgb.root,
        "digest": xgb.digest, "registered": {"name": "delay", "version": 2, "alias": "blessed",
                                             "digest": xgb.digest, "store": str(store)}}
    assert load_predictions(out).model_digest == xgb.digest


def test_monitoring_with_a_version_records_it(tmp_path, flights_slice, flights_features,
                                              flights_xgboost):
    store = tmp_path / "registry.sqlite"
    with LineageStore(store) as s:
        ModelRegistry(s).register("delay", str(flights_xgboost))
    out = tmp_path / "monitor"
    assert monitor_main(["--baseline", str(flights_features), "--input", str(flights_slice),
                         "--model", "registry:delay/1", "--registry", str(store),
                         "--output", str(out)]) == 0
    xgb = read_manifest(flights_xgboost)
    assert read_manifest(out).input("model")["registered"] == {
        "name": "delay", "version": 1, "alias": None, "digest": xgb.digest, "store": str(store)}
    assert read_manifest(out).input("model")["digest"] == xgb.digest


def test_an_unresolvable_reference_stops_before_the_pipeline(tmp_path, flights_slice,
                                                             flights_features, capsys,
                                                             monkeypatch):
    monkeypatch.delenv("MLBATCH_REGISTRY", raising=False)
    common = ["--input", str(flights_slice), "--output", str(tmp_path / "out")]
    assert score_main(["--features", str(flights_features), "--model", "registry:delay@blessed",
                       *common]) == 2
    assert "no registry store: pass --registry or set MLBATCH_REGISTRY" in capsys.readouterr().err
    monkeypatch.setenv("MLBATCH_REGISTRY", str(tmp_path / "absent.sqlite"))
    assert monitor_main(["--baseline", str(flights_features), "--model", "registry:delay/1",
                         *common]) == 2
    assert f"registry store {tmp_path / 'absent.sqlite'} does not exist" in (
        capsys.readouterr().err)
    assert not (tmp_path / "out").exists()
