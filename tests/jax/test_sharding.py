"""Same results on 1 device, 4 data-parallel devices, and 4 devices with sharded tables.

Each run is a fresh process: the fake CPU device count must be set before JAX's first
use, and this pytest process may have used JAX already.
"""
import pytest
from jax.sharding import PartitionSpec as P

from tests.jax.conftest import (assert_params_close, finish, load_npz, run_trainer_subprocess,
                                tiny_config)

STEPS = 12  # > one epoch (10 steps of 64 rows): crosses an epoch boundary


@pytest.fixture(scope="module")
def runs(tiny_features, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sharding")
    configs = {"one": tiny_config(devices_per_worker=1),
               "dp4": tiny_config(devices_per_worker=4),
               "fsdp4": tiny_config(devices_per_worker=4, shard_embeddings=True)}
    procs = {k: run_trainer_subprocess(c, tiny_features, tmp / f"{k}.npz", steps=STEPS,
                                       wait=False) for k, c in configs.items()}
    info = {k: finish(p) for k, p in procs.items()}  # the three run concurrently
    return {k: (info[k], load_npz(tmp / f"{k}.npz")) for k in configs}


def test_data_parallel_on_4_devices_equals_1_device(runs):
    (one_info, one), (dp_info, dp) = runs["one"], runs["dp4"]
    assert (one_info["num_devices"], dp_info["num_devices"]) == (1, 4)
    assert dp_info["sharded"] == {}  # parameters replicated
    assert_params_close(one, dp, atol=1e-5)
    assert dp_info["eval"]["eval_auc"] == pytest.approx(one_info["eval"]["eval_auc"], abs=1e-6)


def test_sharded_embedding_tables_equal_replicated(runs):
    (dp_info, dp), (fs_info, fsdp) = runs["dp4"], runs["fsdp4"]
    # only the table above shard_min_rows (cat_2: 300 ids -> 320 rows) is sharded
    assert fs_info["sharded"] == {"wide/categorical/cat_2": str(P("data")),
                                  "deep/embed/cat_2": str(P("data", None))}
    assert_params_close(dp, fsdp, atol=1e-5)
    assert fs_info["eval"]["eval_loss"] == pytest.approx(dp_info["eval"]["eval_loss"], abs=1e-6)
