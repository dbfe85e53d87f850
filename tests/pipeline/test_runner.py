"""The runner and its cache on real jobs: killed and resumed, unchanged, moved, one
parameter changed (plus a failing branch), one raw file changed, and back again."""
from __future__ import annotations

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]

# Files whose bytes differ between two runs of a job on the same inputs: the XGBoost job's
# metrics.json holds its timings. (The feature job's transform_fn SavedModel differs too:
# tf.Transform bakes a random temp dir name into it; here the features stay cached.)
NONDETERMINISTIC = {"xgboost": {"metrics.json"}}


def test_cold_run_runs_every_step(scenario):
    cold = scenario["cold"]
    assert cold.rc == 0, cold.stdout
    assert cold.status() == {"features": "done", "xgboost": "done"}
    xgb = {s["name"]: s for s in cold.run["steps"]}["xgboost"]
    assert xgb["runs_on"].startswith("ray:127.0.0.1:")
    assert xgb["inputs"] == ["features"] and xgb["output"] == "xgboost"
    assert 0.5 < xgb["key_figures"]["auc"] < 1.0
    assert xgb["cache_key"].startswith("sha256:")


def test_killed_run_left_first_step_committed_and_second_unfinished(scenario):
    steps = {s["name"]: s for s in scenario["killed"]["steps"]}
    assert steps["features"]["status"] == "cached"
    assert steps["xgboost"]["status"] == "running"
    assert scenario["killed"]["ended"] is None
    assert "artifact.json" not in scenario["killed_xgboost_files"]


def test_rerun_after_kill_runs_only_the_unfinished_step(scenario):
    resumed = scenario["resumed"]
    assert resumed.rc == 0, resumed.stdout
    assert resumed.status() == {"features": "cached", "xgboost": "done"}
    assert resumed.run["status"] == "succeeded"


def test_killed_and_resumed_run_ends_with_the_artifacts_of_an_uninterrupted_one(scenario):
    """Same raw data and parameters as phase D, which ran uninterrupted: the same files,
    except the ones that record times (named in NONDETERMINISTIC)."""
    assert scenario["resumed_files"]["features"] == scenario["raw_files"]["features"]
    resumed, fresh = scenario["resumed_files"]["xgboost"], scenario["raw_files"]["xgboost"]
    assert set(resumed) == set(fresh) and "model.json" in resumed
    assert {p for p in resumed if resumed[p] != fresh[p]} <= NONDETERMINISTIC["xgboost"]


def test_unchanged_rerun_skips_every_step_and_says_so(scenario):
    unchanged = scenario["unchanged"]
    assert unchanged.rc == 0
    assert unchanged.status() == {"features": "cached", "xgboost": "cached"}
    lines = unchanged.stdout.splitlines()
    assert any(ln.startswith("features") and "cached" in ln and "same cache key" in ln
               for ln in lines)
    assert "step" in unchanged.stdout and "key figure" in unchanged.stdout  # final table
    assert "auc=" in unchanged.stdout and "train 2,352 / eval 608" in unchanged.stdout


def test_dry_run_says_what_would_run_and_writes_nothing(scenario):
    assert scenario["dry_run"].rc == 0
    assert "features       cached" in scenario["dry_run"].stdout
    out = scenario["param_dry_run"].stdout
    assert "xgboost        would run" in out and "changed: params.num_boost_round" in out
    assert "after_bad      would run                       upstream bad reruns" in out


def test_moved_run_dir_and_touched_raw_files_stay_cached(scenario):
    moved = scenario["moved"]
    assert moved.rc == 0
    assert moved.status() == {"features": "cached", "xgboost": "cached"}


def test_one_changed_parameter_reruns_that_step_and_a_failure_stops_only_its_branch(scenario):
    param = scenario["param"]
    assert param.rc == 1
    assert param.status() == {"features": "cached", "bad": "failed", "after_bad": "skipped",
                              "xgboost": "done"}
    steps = {s["name"]: s for s in param.run["steps"]}
    assert "num_boost_round" in steps["bad"]["error"] and "exit 2" in steps["bad"]["error"]
    assert steps["after_bad"]["error"] == "upstream bad failed"
    assert param.run["status"] == "failed"


def test_changed_raw_file_reruns_everything_downstream(scenario):
    raw = scenario["raw"]
    assert raw.rc == 0
    assert raw.status() == {"features": "done", "xgboost": "done"}
    assert raw.run["steps"][0]["cache_key"] != scenario["cold"].run["steps"][0]["cache_key"]
    assert raw.stdout.count("changed: raw.input") == 1  # features; xgboost: its input


def test_run_json_records_the_run(scenario):
    doc = scenario["resumed"].run
    assert doc["pipeline"] == "tiny" and doc["spec_digest"].startswith("sha256:")
    assert doc["status"] == "succeeded" and doc["ended"] is not None
    assert set(doc["versions"]) == {"python", "apache_beam", "tensorflow_transform", "ray",
                                    "jax", "xgboost", "mlbatch"}
    features = doc["steps"][0]
    assert features["key_figures"]["rows_train"] == 2352
    assert features["key_figures"]["rows_eval"] == 608
    assert features["status"] == "cached" and features["error"] is None
    xgboost = doc["steps"][1]
    assert xgboost["elapsed_s"] > 0 and xgboost["started"] is not None


def test_every_step_is_in_the_lineage_store(scenario):
    from pipelines.lineage import LineageStore, lineage
    run_dir = scenario["run_dir"]
    with LineageStore(run_dir / "lineage.sqlite") as store:
        tree = lineage(store, str(run_dir / "xgboost"))
    text = repr(tree)
    assert str(run_dir / "features") in text  # the model's features, upstream
    assert "flights.csv" in text  # ... and the raw files they came from
