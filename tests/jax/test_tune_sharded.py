"""Tune over sharded training: every trial runs 2 JAX worker processes (jax.distributed
over gloo, one CPU device each), and a search that cannot be placed fails before any
trial starts, naming what a trial needs and what the cluster has."""
import numpy as np
import pytest

from ray_jobs.jax import checkpoint, driver, loop
from ray_jobs.jax.worker import LocalGroup, Trainer
from tests.jax.conftest import assert_params_close, load_npz
from tests.jax.test_tune import BASE, run_tuner

pytestmark = pytest.mark.cluster

SHARDED = {**BASE, "epochs": 1, "num_workers": 2, "devices_per_worker": 1, "data_shards": 2,
           "coordinator_host": "127.0.0.1"}


def test_trials_of_two_workers_each_train_sharded(ray_connected, tiny_features, tmp_path):
    from ray import tune

    from ray_jobs.jax import tuning
    space = {"learning_rate": tune.grid_search([0.01, 0.02])}
    results = run_tuner(tuning.make_trainable(str(tiny_features), SHARDED), SHARDED, space,
                        tmp_path, "sharded")
    assert results.errors == []
    assert sorted(r.config["learning_rate"] for r in results) == [0.01, 0.02]
    for r in results:
        (row,) = r.metrics_dataframe.to_dict("records")  # 1 epoch: one report
        assert (row["num_processes"], row["num_devices"]) == (2, 2)
        assert row["epoch"] == 0 and np.isfinite(row["eval_loss"])
    # a trial's 2-process result equals the same config trained in one process
    r = next(r for r in results if r.config["learning_rate"] == 0.01)
    with r.checkpoint.as_directory() as d:
        tuned = load_npz(f"{d}/{tuning.CHECKPOINT_FILE}")
    cfg = tuning.trial_config(SHARDED, {"learning_rate": 0.01}).replace(num_workers=1)

    class Last:
        blob = None
        on_start = on_train = on_checkpoint = on_end = staticmethod(lambda *a: None)

        def on_epoch(self, record, blob, improved):
            Last.blob = blob
    loop.fit(LocalGroup(Trainer(cfg, str(tiny_features))), cfg, Last())
    single = {k: v for k, v in checkpoint.decode(Last.blob)[0].items()
              if k.startswith("params/")}
    assert_params_close(tuned, single, atol=1e-5)


def test_unplaceable_trials_fail_before_the_search_starts(ray_connected, tiny_features):
    from ray_jobs.jax import tuning
    too_big = {**SHARDED, "num_workers": 2, "worker_cpus": 3.0}
    with pytest.raises(driver.PlacementError) as e:
        tuning.make_trainable(str(tiny_features), too_big)
    assert str(e.value).startswith(  # then the cluster's resources, which vary by machine
        "cannot place a trial (num_workers=2 x worker_cpus=3): asked for 6 CPU in total "
        "but the cluster has 4.")
