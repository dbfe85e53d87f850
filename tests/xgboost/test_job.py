"""The XGBoost job end to end on the shared Ray cluster (tests/conftest.py)."""
from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest
import ray

from ray_jobs.xgboost import driver
from ray_jobs.common.cluster import PlacementError
from ray_jobs.xgboost.config import Layout, XGBoostConfig
from mlbatch.metrics import task_metrics
from tests.xgboost.conftest import FAST
from tests.xgboost.helpers import SlowRoundsAndReportPid, connect_test_process, predict_eval

pytestmark = [pytest.mark.cluster, pytest.mark.e2e]


@pytest.fixture(scope="module")
def connected(ray_cluster):
    connect_test_process(ray_cluster)
    return ray_cluster


@pytest.fixture(scope="module")
def clf_run(connected, synthetic_features, tmp_path_factory):
    """An undisturbed 2-actor run (also the baseline of the fault-tolerance test)."""
    out = tmp_path_factory.mktemp("xgb_clf")
    doc = driver.run(XGBoostConfig(features=str(synthetic_features), output=str(out),
                                   num_actors=2, cpus_per_actor=1, **FAST))
    return out, doc


def test_classification_model_reproduces_metrics_in_plain_xgboost(clf_run, synthetic_features):
    out, doc = clf_run
    fs, booster, p, y = predict_eval(out / "model.json", synthetic_features)
    written = json.loads((out / "metrics.json").read_text())
    assert written == doc and written["task"] == "binary_classification"
    expected = task_metrics(fs.task, y, p)
    assert written["eval"] == pytest.approx({**expected, "objective_loss": expected["logloss"]},
                                            abs=1e-9)
    assert set(written["eval"]) == {"eval_loss", "auc", "logloss", "accuracy", "objective_loss"}
    assert written["eval"]["eval_loss"] == written["eval"]["logloss"]
    assert written["loss_units"] == {"eval_loss": "logloss in label units",
                                     "objective_loss": "logloss of label"}
    assert written["eval"]["auc"] > 0.7  # the synthetic label is learnable
    assert booster.num_boosted_rounds() == written["best_round"] <= written["rounds_trained"]
    assert booster.feature_names == fs.names
    assert written["layout"] == {"num_actors": 2, "cpus_per_actor": 1, "gpus_per_actor": 0}
    importance = json.loads((out / "feature_importance.json").read_text())
    assert sorted(r["feature"] for r in importance) == sorted(fs.names)
    assert importance[0]["gain"] >= importance[-1]["gain"] and importance[0]["gain"] > 0
    png = (out / "learning_curve.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_default_layout_is_one_actor_per_cpu_on_each_node(connected):
    def layout(**kw):
        return driver.resolve_layout(XGBoostConfig(features="f", output="o", **kw))
    assert layout() == Layout(connected.num_cpus, 1)  # one node of 4 CPUs
    assert layout(num_actors=2) == Layout(2, connected.num_cpus // 2)
    assert layout(cpus_per_actor=2) == Layout(connected.num_cpus // 2, 2)
    assert layout(num_actors=1, cpus_per_actor=1) == Layout(1, 1)


def test_too_many_cpus_fails_fast_naming_both(connected, synthetic_features, tmp_path,
                                              monkeypatch):
    monkeypatch.setattr(driver, "make_trainer", lambda *a, **k: pytest.fail("training started"))
    with pytest.raises(PlacementError) as e:
        driver.run(XGBoostConfig(features=str(synthetic_features), output=str(tmp_path),
                                 num_actors=2, cpus_per_actor=100, **FAST))
    msg = str(e.value)
    assert "cannot place 2 actor(s) x (100 CPU)" in msg
    assert "200 CPU in total but the cluster has 4" in msg
    assert "{CPU=100} on one node but the largest node has {CPU=4}" in msg


def test_busy_cluster_times_out_with_what_is_free(connected, synthetic_features, tmp_path):
    from ray.util.placement_group import placement_group, remove_placement_group
    hog = placement_group([{"CPU": 3}])
    ray.get(hog.ready(), timeout=60)
    try:
        with pytest.raises(PlacementError, match=r"could not place 2 actor\(s\) x \(1 CPU\) "
                                                 r"within 2s.*but only \{CPU="):
            driver.run(XGBoostConfig(features=str(synthetic_features), output=str(tmp_path),
                                     num_actors=2, cpus_per_actor=1,
                                     **{**FAST, "placement_timeout_s": 2.0}))
    finally:
        remove_placement_group(hog)


def test_killing_a_training_actor_still_finishes_with_the_same_quality(
        clf_run, synthetic_features, tmp_path):
    target, starts = tmp_path / "victim.pid", tmp_path / "starts.txt"
    killed: list[int] = []

    def kill_when_ready():
        deadline = time.time() + 120
        while not target.exists() and time.time() < deadline:
            time.sleep(0.05)
        if target.exists():
            pid = int(target.read_text())
            os.kill(pid, signal.SIGKILL)  # the actor process, as a node failure would
            killed.append(pid)

    killer = threading.Thread(target=kill_when_ready, daemon=True)
    killer.start()
    cfg = XGBoostConfig(features=str(synthetic_features), output=str(tmp_path / "out"),
                        num_actors=2, cpus_per_actor=1,
                        **{**FAST, "max_actor_restarts": 1, "checkpoint_frequency": 5})
    doc = driver.run(cfg, callbacks=[SlowRoundsAndReportPid(target, starts, at_round=12)])
    killer.join(timeout=5)
    pids = [int(line) for line in starts.read_text().split()]
    assert killed and killed[0] in pids
    # Ray Train restarts the whole worker group (2 new workers) from the last checkpoint.
    assert len(set(pids)) == 4 and killed[0] not in pids[2:]
    assert doc["rounds_trained"] == clf_run[1]["rounds_trained"]
    assert not (tmp_path / "out" / driver.CHECKPOINT_DIR).exists()
    baseline = clf_run[1]["eval"]
    assert doc["eval"]["auc"] == pytest.approx(baseline["auc"], abs=0.01)
    assert doc["eval"]["logloss"] == pytest.approx(baseline["logloss"], abs=0.01)
    # The learning curve has every round once, across the restart (the history travels
    # in the checkpoints).
    curve = json.loads((tmp_path / "out" / "learning_curve.json").read_text())
    assert [r["round"] for r in curve] == list(range(1, doc["rounds_trained"] + 1))
