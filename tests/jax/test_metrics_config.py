"""Eval metrics and the config object: exact values and named errors."""
import itertools
import json

import numpy as np
import pytest

from mlbatch.metrics import auc
from ray_jobs.jax import metrics
from ray_jobs.jax.config import ConfigError, from_dict, load_file
from tests.jax.conftest import tiny_config


def brute_auc(s, y):
    pos, neg = s[y == 1], s[y == 0]
    pairs = [(1.0 if p > n else 0.5 if p == n else 0.0) for p, n in itertools.product(pos, neg)]
    return np.mean(pairs)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_matches_pair_counting_with_ties(seed):
    rng = np.random.default_rng(seed)
    s = rng.integers(0, 5, 60).astype(np.float32)  # many ties
    y = rng.integers(0, 2, 60)
    assert auc(y, s) == pytest.approx(brute_auc(s, y), abs=1e-12)


def test_auc_extremes_and_degenerate():
    assert auc(np.array([0, 1]), np.array([0.1, 0.9])) == 1.0
    assert auc(np.array([0, 1]), np.array([0.9, 0.1])) == 0.0
    assert np.isnan(auc(np.array([1, 1]), np.array([0.1, 0.9])))


def test_eval_metrics_drop_padding_rows():
    m = metrics.eval_metrics("binary_classification", pred=np.array([0.8, 0.2, 0.0]),
                             label=np.array([1.0, 0.0, 1.0]), weight=np.array([1.0, 1.0, 0.0]))
    loss = -np.log(0.8)  # both kept rows have probability 0.8 of their label
    assert m == {"eval_loss": pytest.approx(loss), "objective_loss": pytest.approx(loss),
                 "eval_examples": 2, "eval_logloss": pytest.approx(loss), "eval_auc": 1.0,
                 "eval_accuracy": 1.0}
    r = metrics.eval_metrics("regression", pred=np.array([2.0, -2.0, 9.0]),
                             label=np.zeros(3), weight=np.array([1.0, 1.0, 0.0]))
    assert r == {"eval_loss": 2.0, "objective_loss": 2.0, "eval_examples": 2, "eval_rmse": 2.0,
                 "eval_mae": 2.0}


def test_regression_metrics_are_in_the_labels_own_units():
    """Stored label log1p(y): RMSE/MAE (and eval_loss = RMSE) after expm1 of predictions
    and labels."""
    r = metrics.eval_metrics("regression", pred=np.log1p([3.0, 10.0]),
                             label=np.log1p([1.0, 10.0]), weight=np.ones(2),
                             label_transform={"kind": "log1p"})
    assert r["eval_rmse"] == pytest.approx(2 ** 0.5) and r["eval_mae"] == pytest.approx(1.0)
    assert r["eval_loss"] == pytest.approx(2 ** 0.5)
    # the model's own space: RMSE of log1p values, (log 4 - log 2) on one row of two
    assert r["objective_loss"] == pytest.approx(np.log(2.0) / 2 ** 0.5)


@pytest.mark.parametrize("raw, field", [
    ({"learning_rate": 0}, "learning_rate"),
    ({"l2_wide": -1e-3}, "l2_wide"),
    ({"optimizer": "lamb"}, "optimizer"),
    ({"early_stopping_metric": "eval_rmse"}, "early_stopping_metric"),
    ({"hidden_sizes": []}, "hidden_sizes"),
    ({"hidden_sizes": [8, "x"]}, "hidden_sizes[1]"),
    ({"batch_size": 64.5}, "batch_size"),
    ({"shard_embeddings": "yes"}, "shard_embeddings"),
    ({"batch_size": 100, "devices_per_worker": 8}, "batch_size"),
    ({"num_workers": 2, "data_shards": 3, "batch_size": 96}, "data_shards"),
    ({"shard_embeddings": True, "devices_per_worker": 3, "batch_size": 96,
      "eval_batch_size": 96, "vocab_pad_multiple": 64}, "vocab_pad_multiple"),
    ({"max_restarts": -1}, "max_restarts"),
    ({"min_steps_per_epoch": -1}, "min_steps_per_epoch"),
    ({"xla_cpu_threads": 0}, "xla_cpu_threads"),
    ({"platform": "tpu"}, "devices_per_worker"),
    ({"bogus": 1}, "bogus"),
])
def test_config_errors_name_the_field(raw, field):
    with pytest.raises(ConfigError) as e:
        from_dict(raw)
    assert str(e.value).startswith(f"{field}:")


def test_config_file_yaml_and_json(tmp_path):
    (tmp_path / "c.yaml").write_text("learning_rate: 1e-3\nhidden_sizes: [32, 16]\n")
    cfg = from_dict(load_file(tmp_path / "c.yaml"))
    assert cfg.learning_rate == 1e-3 and cfg.hidden_sizes == (32, 16)
    (tmp_path / "c.json").write_text(json.dumps({"epochs": "three"}))
    with pytest.raises(ConfigError, match="^epochs: expected an integer"):
        from_dict(load_file(tmp_path / "c.json"))
    with pytest.raises(ConfigError, match="no such file"):
        load_file(tmp_path / "missing.yaml")


def test_config_round_trips_through_a_dict():
    cfg = tiny_config(shard_embeddings=True, data_shards=2)
    assert from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    # operational fields do not change what a run computes; hyperparameters do
    assert cfg.replace(num_workers=2, shard_embeddings=False).result_fields() == \
        cfg.result_fields()
    assert cfg.replace(l2_deep=0.5).result_fields() != cfg.result_fields()


def test_worker_env_carries_the_xla_thread_flags():
    from ray_jobs.jax.driver import worker_env
    assert worker_env(tiny_config(num_workers=2), base="") == {"MLBATCH_JAX_WORKER": "1"}
    assert worker_env(tiny_config(num_workers=2, xla_cpu_threads=1, platform="cpu"),
                      base="--xla_dump_to=/tmp/x") == {
        "MLBATCH_JAX_WORKER": "1", "JAX_PLATFORMS": "cpu",
        "XLA_FLAGS": "--xla_dump_to=/tmp/x --xla_cpu_multi_thread_eigen=false "
                     "intra_op_parallelism_threads=1"}
    assert worker_env(tiny_config(num_workers=2, xla_cpu_threads=2), base="")["XLA_FLAGS"] \
        == "intra_op_parallelism_threads=2"
    assert "XLA_FLAGS" not in worker_env(tiny_config(xla_cpu_threads=1, platform="gpu"))
    # operational: a checkpoint written with other values resumes
    assert tiny_config(max_restarts=0, xla_cpu_threads=1).result_fields() == \
        tiny_config().result_fields()


@pytest.mark.parametrize("overrides, bundle", [
    ({}, {"CPU": 1}),
    ({"platform": "cpu", "devices_per_worker": 2}, {"CPU": 1}),
    ({"platform": "gpu"}, {"CPU": 1, "GPU": 1}),
    ({"platform": "gpu", "devices_per_worker": 2}, {"CPU": 1, "GPU": 2}),
    ({"platform": "tpu", "devices_per_worker": 4}, {"CPU": 1, "TPU": 4}),
])
def test_workers_ask_ray_for_their_accelerators(overrides, bundle):
    """A GPU worker reserves its GPUs; a TPU worker its chips as Ray's "TPU" resource, in the
    job's placement group and in a Tune trial's (one bundle per worker)."""
    from ray_jobs.jax.driver import worker_bundle
    from ray_jobs.jax.tuning import trial_resources
    cfg = tiny_config(**overrides)
    assert worker_bundle(cfg) == {**bundle, "CPU": cfg.worker_cpus}
    trial = trial_resources(cfg.to_dict()).bundles
    assert trial == [{**bundle, "CPU": cfg.worker_cpus}]


def test_a_checkpoint_from_before_early_stopping_metric_resumes_under_eval_loss(
        tiny_features):
    """Such a checkpoint stopped on eval_loss (label units) already: it resumes under the
    default and is refused under objective_loss, naming the field."""
    from mlbatch.artifacts.features import load_feature_set
    from ray_jobs.jax import checkpoint
    from ray_jobs.jax.driver import check_resumable
    from ray_jobs.jax.worker import manifest_digest
    from tests.jax.conftest import tiny_config

    fs = load_feature_set(tiny_features)
    fields = tiny_config().result_fields()
    del fields["early_stopping_metric"]
    blob = checkpoint.encode({"step": np.asarray(0)}, {
        "manifest_digest": manifest_digest(fs), "result_fields": fields})
    check_resumable(blob, tiny_config(), fs)
    with pytest.raises(checkpoint.CheckpointError,
                       match="config field 'early_stopping_metric' is 'objective_loss', the "
                             "checkpoint was written with 'eval_loss'"):
        check_resumable(blob, tiny_config(early_stopping_metric="objective_loss"), fs)
