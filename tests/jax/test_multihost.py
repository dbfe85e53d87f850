"""The multi-host path on one machine: 2 Ray workers x 2 CPU devices = one 4-device mesh.

Each worker is its own JAX process (jax.distributed over gloo, rank 0 coordinating on
127.0.0.1) reading only its half of the train Parquet; the result must equal a
single-process, single-device run over the same data order (same seed and data_shards).
"""
import pytest

from ray_jobs.jax import checkpoint, driver
from tests.jax.conftest import (assert_params_close, finish, load_npz, run_trainer_subprocess,
                                tiny_config)

pytestmark = pytest.mark.cluster


def test_two_workers_two_devices_each_equal_single_process(ray_connected, tiny_features,
                                                           tmp_path):
    cfg = tiny_config(num_workers=2, devices_per_worker=2, data_shards=2, epochs=1,
                      coordinator_host="127.0.0.1")
    single = run_trainer_subprocess(cfg.replace(num_workers=1, devices_per_worker=1),
                                    tiny_features, tmp_path / "single.npz", steps=10,
                                    wait=False)
    summary = driver.run(cfg, tiny_features, tmp_path / "multi",
                         address=ray_connected.gcs_address)
    single_info = finish(single)
    assert (summary["num_processes"], summary["num_devices"]) == (2, 4)
    assert summary["coordinator"].startswith("127.0.0.1:")
    ckpts = checkpoint.CheckpointDir(tmp_path / "multi" / "checkpoints", keep=3)
    assert ckpts.steps() == [10]
    assert_params_close(load_npz(ckpts.path(10)), load_npz(tmp_path / "single.npz"), atol=1e-5)
    # the eval metrics gather predictions from both processes
    assert summary["last"]["eval_examples"] == 300
    assert summary["last"]["eval_auc"] == pytest.approx(single_info["eval"]["eval_auc"],
                                                        abs=1e-6)
