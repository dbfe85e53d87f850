"""`ray_jobs.tune --output gs://...`: a 2-trial search over the flights features in the
storage emulator's bucket; Tune stores its experiment there itself (storage_filesystem),
and the tune_run artifact, its results and its best model commit there."""
from __future__ import annotations

import pytest

from mlbatch import storage
from mlbatch.artifacts import read_manifest, verify
from mlbatch.artifacts.tune_run import load_tune_run
from mlbatch.artifacts.xgboost_model import load_xgboost_model
from ray_jobs.tune import __main__ as cli
from ray_jobs.tune import driver

pytestmark = [pytest.mark.cluster, pytest.mark.e2e]


def test_two_trial_search_commits_its_tune_run_in_the_bucket(gcs_emulator, flights_features,
                                                             connected_gcs, tmp_path,
                                                             monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may land in a local "gs:" directory
    features, out = gcs_emulator.uri("tune", "features"), gcs_emulator.uri("tune", "xgb")
    storage.copy_tree(str(flights_features), features)
    settings = cli.parse_args([
        "--job", "xgboost", "--features", features, "--output", out, "--num-samples", "2",
        "--search", "random", "--scheduler", "fifo", "--seed", "1", "--set",
        "num_boost_round=4", "--set", "num_actors=1", "--set", "cpus_per_actor=1",
        "--set", "early_stopping_rounds=0", "--set", "checkpoint_every=1"])
    summary = driver.run(settings)

    run = load_tune_run(out)
    assert run.root == out and verify(run.manifest) == []
    trials = run.trials().to_pylist()
    assert len(trials) == 2 and {t["status"] for t in trials} == {"TERMINATED"}
    assert {t["iterations"] for t in trials} == {4}
    assert run.best["trial_id"] == trials[0]["trial_id"] == summary["best"]["trial_id"]
    names = [f.relpath for f in storage.list_files(out)]
    assert {"artifact.json", "settings.json", "results.parquet", "results.csv",
            "best_params.json", "best/artifact.json", "best/model.json"} <= set(names)
    experiment = [n for n in names if n.startswith("xgboost_tune/")]
    assert any(n.startswith("xgboost_tune/experiment_state-") for n in experiment)
    for t in trials:  # each trial's results (Tune) and checkpoints (its Ray Train run)
        assert f"xgboost_tune/trial_{t['trial_id']}/result.json" in experiment
        assert any(n.startswith(f"xgboost_tune/trial_{t['trial_id']}/train/checkpoint_")
                   for n in experiment)
    assert not any(n.startswith("xgboost_tune/") for n in
                   (f["path"] for f in run.manifest.files))  # the experiment is not digested
    best = read_manifest(run.best_model_uri, "xgboost_model")
    assert run.best_model_uri == f"{out}/best" and verify(best) == []
    assert best.input("features")["uri"] == features
    assert best.digest == run.best["model"]["digest"]
    assert load_xgboost_model(run.best_model_uri).feature_names
    assert run.manifest.input("features")["digest"] == read_manifest(features).digest
    assert not (tmp_path / "gs:").exists()
