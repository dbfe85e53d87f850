"""`python -m ray_jobs.tune --job xgboost` on the shared Ray cluster."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import xgboost as xgb

from mlbatch.artifacts import read_manifest
from mlbatch.artifacts.tune_run import load_tune_run
from mlbatch.artifacts.xgboost_model import load_xgboost_model
from ray_jobs.tune import __main__ as cli
from ray_jobs.tune import driver
from tests.conftest import REPO_ROOT
from tests.tune.helpers import failing_once_plugin

pytestmark = [pytest.mark.cluster, pytest.mark.e2e]

BASE = ["--set", "num_actors=1", "--set", "cpus_per_actor=1", "--set", "early_stopping_rounds=0"]


def trial_history(exp: Path) -> dict[str, list[dict]]:
    """Every report each trial made, from its result.json (appended per report)."""
    out = {}
    for d in sorted(p for p in exp.glob("trial_*") if p.is_dir()):
        lines = (d / "result.json").read_text().splitlines() if (d / "result.json").exists() else []
        out[d.name.removeprefix("trial_")] = [json.loads(line) for line in lines if line]
    return out


def test_asha_stops_weak_trials_and_a_failing_trial_is_retried(connected, synthetic_features,
                                                               tmp_path):
    space = tmp_path / "space.yaml"  # two clearly different learning rates, so ASHA can tell
    space.write_text("eta: {choice: [0.3, 0.01]}\nmax_depth: {randint: [3, 7]}\n")
    out = tmp_path / "out"
    settings = cli.parse_args([
        "--job", "xgboost", "--features", str(synthetic_features), "--output", str(out),
        "--num-samples", "4", "--search", "random", "--scheduler", "asha", "--seed", "3",
        "--max-concurrent", "2", "--grace-period", "3", "--reduction-factor", "2",
        "--max-failures", "1", "--search-space", str(space), "--set", "num_boost_round=24",
        "--set", "checkpoint_every=3", *BASE])
    summary = driver.run(settings, plugin=failing_once_plugin(str(tmp_path / "failed")))

    table = pd.read_parquet(out / "results.parquet")
    assert len(table) == 4 and set(table["status"]) == {"TERMINATED"}
    # ASHA counts rounds (rungs 3, 6, 12 of 24); a report every 3 rounds lands on each.
    stopped = table[table["end_reason"] == "scheduler_stopped"]
    assert len(stopped) >= 1 and (stopped["round"] < 24).all()
    completed = table[table["end_reason"] == "completed"]
    assert len(completed) >= 1 and (completed["round"] == 24).all()
    assert (completed["iterations"] == 8).all()
    assert summary["scheduler_stopped"] == len(stopped)
    # The injected failure was retried (FailureConfig) and is reported.
    assert table["num_failures"].tolist().count(1) == 1 and table["num_failures"].sum() == 1
    failures = [json.loads(x) for x in (settings.experiment_dir / driver.FAILURES_FILE)
                .read_text().splitlines()]
    assert len(failures) == 1 and failures[0]["retried"] and "injected" in failures[0]["error"]
    # One report every 3 boosting rounds, each with the path of its checkpoint.
    for tid, reports in trial_history(settings.experiment_dir).items():
        iters = [r["training_iteration"] for r in reports]
        assert iters == list(range(1, len(iters) + 1)), tid
        assert [r["round"] for r in reports] == [3 * i for i in iters], tid
        assert all(r["checkpoint_path"].startswith(str(out)) for r in reports), tid
        assert list((settings.experiment_dir / f"trial_{tid}").glob("events.out.tfevents.*"))
    # Best trial: params file and the exported model agree with the table.
    best = json.loads((out / "best_params.json").read_text())
    assert best["trial_id"] == table.iloc[0]["trial_id"]
    assert best["config"]["eta"] == table.iloc[0]["config/eta"]
    info = json.loads((out / "best" / "model_info.json").read_text())
    booster = xgb.Booster(model_file=str(out / "best" / "model.json"))
    assert booster.num_boosted_rounds() == info["best_round"]
    assert info["best_eval_loss"] == pytest.approx(best["eval_loss"])
    # The run is a committed tune_run artifact; best/ a committed model with lineage.
    run = load_tune_run(out)
    assert run.job == "xgboost" and run.metric == "eval_loss" and run.mode == "min"
    assert run.best["trial_id"] == best["trial_id"] and run.best_params == best["config"]
    assert run.best_metric == pytest.approx(best["eval_loss"])
    assert run.trials().num_rows == 4
    model = load_xgboost_model(run.best_model_uri)
    assert model.booster.num_boosted_rounds() == info["best_round"]
    features = read_manifest(synthetic_features, "features")
    for m in (run.manifest, model.manifest):
        assert m.input("features")["digest"] == features.digest
    assert model.manifest.digest == run.best["model"]["digest"]
    assert not any(f["path"].startswith("xgboost_tune/") for f in run.manifest.files)
    # Its metrics are the eval split's, as a job's model records them (the registry and
    # the blessing read them): recomputed here from the exported trees.
    from mlbatch.artifacts.features import load_feature_set
    from ray_jobs.xgboost.driver import eval_metrics, predict_split
    fs = load_feature_set(synthetic_features, check_columns=False)
    expected = eval_metrics(fs, *predict_split(booster, fs, "eval"))
    got = model.manifest.metrics
    assert {"auc", "logloss", "accuracy"} <= set(got)
    assert [got[k] for k in ("auc", "logloss", "accuracy")] == pytest.approx(
        [expected[k] for k in ("auc", "logloss", "accuracy")], rel=1e-12)
    assert got["eval_loss"] == pytest.approx(best["eval_loss"])


def test_resume_after_the_driver_is_killed_loses_and_repeats_no_trial(
        connected, synthetic_features, tmp_path):
    args = ["--job", "xgboost", "--features", str(synthetic_features), "--output", str(tmp_path),
            "--num-samples", "2", "--search", "optuna", "--scheduler", "fifo",
            "--max-concurrent", "1", "--set", "num_boost_round=20", "--set",
            "checkpoint_every=1", *BASE]
    exp = tmp_path / "xgboost_tune"
    # The driver process runs the real CLI; its trials sleep 0.15 s per round so that the
    # kill lands in the middle of a trial.
    proc = subprocess.Popen([sys.executable, "-m", "tests.tune.helpers", *args],
                            cwd=REPO_ROOT, env=connected.env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 150
        while time.time() < deadline and proc.poll() is None:
            hist = trial_history(exp) if exp.exists() else {}
            if any(len(r) >= 6 for r in hist.values()):
                break
            time.sleep(0.2)
        assert proc.poll() is None, "driver ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    before = trial_history(exp)
    assert before and all(len(r) < 20 for r in before.values())  # killed mid-experiment

    summary = cli.run(["--job", "xgboost", "--output", str(tmp_path), "--resume"])

    table = pd.read_parquet(tmp_path / "results.parquet")
    assert summary["trials"] == 2 and len(table) == 2
    assert set(table["status"]) == {"TERMINATED"} and (table["round"] == 20).all()
    assert table[[c for c in table if c.startswith("config/")]].drop_duplicates().shape[0] == 2
    after = trial_history(exp)
    assert set(after) == set(table["trial_id"])  # no orphan trial directories
    for tid, reports in after.items():
        # A restarted trial's Train run resumes from its checkpoint: round 1 is reported
        # once, no round twice, and it ends at round 20. Ray Train persists a checkpoint
        # before Tune's driver records that round's report, so a driver killed in between
        # resumes one round past the last recorded report: at most one round (the one
        # being checkpointed at the kill) is missing from the history, never repeated.
        rounds = [r["round"] for r in reports]
        assert rounds.count(1) == 1, f"trial {tid} started over"
        assert rounds == sorted(set(rounds)) and rounds[-1] == 20, f"trial {tid}: {rounds}"
        assert len(set(range(1, 21)) - set(rounds)) <= 1, f"trial {tid} lost rounds: {rounds}"
    resumed = [t for t, r in before.items() if r]
    assert resumed and all(after[t][: len(before[t])] == before[t] for t in resumed)
    assert json.loads((tmp_path / "best_params.json").read_text())["trial_id"] in set(table["trial_id"])


def test_bad_search_space_and_existing_experiment_fail_before_trials(connected, synthetic_features,
                                                                     tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("eta: {loguniform: [0, 0.3]}\n")
    args = ["--job", "xgboost", "--features", str(synthetic_features), "--output",
            str(tmp_path / "out")]
    with pytest.raises(ValueError, match="entry 'eta': loguniform needs 0 < lo"):
        cli.run([*args, "--search-space", str(space)])
    with pytest.raises(ValueError, match="params.max_dpeth: unknown XGBoost parameter"):
        cli.run([*args, "--name", "typo", "--set", "params.max_dpeth=3"])
    from ray_jobs.common.cluster import PlacementError
    with pytest.raises(PlacementError, match=r"one trial .*40 CPU in total but the cluster has 4"):
        cli.run([*args, "--name", "big", "--set", "num_actors=4", "--set", "cpus_per_actor=10"])
    with pytest.raises(ValueError, match="--resume: no experiment to restore"):
        cli.run(["--job", "xgboost", "--output", str(tmp_path / "none"), "--resume"])
