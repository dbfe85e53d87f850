"""How the driver builds Ray Train's XGBoostTrainer (no Ray needed: nothing is started)."""
from __future__ import annotations

import json
import os

import pytest

from ray_jobs.common.synthetic import write_synthetic_features
from ray_jobs.xgboost import data, driver, worker
from ray_jobs.xgboost.config import Layout, XGBoostConfig


@pytest.fixture(scope="module")
def fs(tmp_path_factory):
    root = write_synthetic_features(tmp_path_factory.mktemp("tc"), n_train=200, n_eval=50,
                                    seed=4)
    return data.load_and_validate(root)


def test_gpu_workers_train_with_cuda_and_reserve_their_gpus(fs, tmp_path):
    config = XGBoostConfig(features=fs.root, output=str(tmp_path), num_actors=2,
                           cpus_per_actor=3, gpus_per_actor=1, checkpoint_frequency=7)
    layout = driver.resolve_layout(config)
    spec = driver.train_spec(config, fs, config.booster_params(fs.task), layout)
    assert spec.params["device"] == "cuda" and spec.params["tree_method"] == "hist"
    assert spec.params["nthread"] == 3 and spec.report_every == 7
    assert (spec.metric, spec.mode) == ("eval-label_loss", "min")  # eval_loss, label units
    assert spec.objective_metric == "eval-logloss" and spec.task == "binary_classification"
    trainer = driver.make_trainer(spec, layout, name="t", storage_uri=str(tmp_path),
                                  max_failures=2)
    scaling = trainer.scaling_config
    assert scaling.num_workers == 2 and scaling.use_gpu
    assert scaling.resources_per_worker == {"CPU": 3, "GPU": 1}
    assert trainer.run_config.failure_config.max_failures == 2
    assert worker.TrainSpec(**trainer.train_loop_config) == spec


def test_cpu_workers_train_on_cpu(fs, tmp_path):
    config = XGBoostConfig(features=fs.root, output=str(tmp_path))
    spec = driver.train_spec(config, fs, config.booster_params(fs.task), Layout(2, 1))
    trainer = driver.make_trainer(spec, Layout(2, 1), name="t", storage_uri=str(tmp_path),
                                  max_failures=0)
    assert spec.params["device"] == "cpu" and not trainer.scaling_config.use_gpu
    assert trainer.scaling_config.resources_per_worker == {"CPU": 1}


def test_workers_read_hist_shards_into_quantile_matrices_with_the_params_bins():
    assert worker.quantile_bins({"tree_method": "hist", "max_bin": 64}) == 64
    assert worker.quantile_bins({}) == 256  # hist and XGBoost's own 256 bins by default
    assert worker.quantile_bins({"tree_method": "approx", "max_bin": 64}) is None


def test_a_process_start_is_read_from_proc_to_the_clock_tick():
    """The benchmark's start-up breakdown dates each training worker's process by it."""
    import subprocess
    import time
    before = time.time()
    child = subprocess.Popen(["sleep", "5"])
    after = time.time()
    try:
        assert before - 0.05 <= worker.process_start(child.pid) <= after + 0.05
    finally:
        child.kill()
        child.wait()


def test_a_timeline_writes_its_marks_per_rank_only_when_given_a_directory(tmp_path):
    line = worker.Timeline(str(tmp_path))
    line.mark("first_round_end", once=True)
    first = line.marks["first_round_end"]
    line.mark("first_round_end", once=True)  # kept: the first round's end
    line.add("reports_s", 0.25)
    line.add("reports_s", 0.5)
    line.write(rank=1)
    marks = json.loads((tmp_path / "rank1.json").read_text())
    assert set(marks) == {"process_start", "fn_start", "first_round_end", "reports_s",
                          "fn_end", "cpu_s_at"}
    assert set(marks["cpu_s_at"]) == {"fn_start", "first_round_end", "fn_end"}
    assert marks["first_round_end"] == first and marks["reports_s"] == 0.75
    assert marks["process_start"] <= marks["fn_start"] <= first <= marks["fn_end"]
    worker.Timeline(None).write(rank=0)  # the job's default: no marks, no file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rank1.json"]


def test_the_preemption_watcher_is_off_only_on_the_private_local_ray(fs, tmp_path,
                                                                      monkeypatch):
    """One Ray Train actor process fewer where nothing can drain the node: the job's
    own single-node Ray; on a cluster (or a Ray the user started) Ray's default stays,
    and a value the user set wins everywhere."""
    from ray_jobs.common import cluster as ray_cluster
    config = XGBoostConfig(features=fs.root, output=str(tmp_path))
    spec = driver.train_spec(config, fs, config.booster_params(fs.task), Layout(2, 1))
    env = driver.PREEMPTION_WATCHER_ENV
    monkeypatch.delenv(env, raising=False)
    driver.make_trainer(spec, Layout(2, 1), name="t", storage_uri=str(tmp_path),
                        max_failures=0)
    assert env not in os.environ  # not our local Ray: Ray's default (on)
    monkeypatch.setattr(ray_cluster, "started_local", lambda: True)
    driver.make_trainer(spec, Layout(2, 1), name="t", storage_uri=str(tmp_path),
                        max_failures=0)
    assert os.environ[env] == "0"
    monkeypatch.setenv(env, "1")
    driver.make_trainer(spec, Layout(2, 1), name="t", storage_uri=str(tmp_path),
                        max_failures=0)
    assert os.environ[env] == "1"
