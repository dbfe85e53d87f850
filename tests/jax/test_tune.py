"""The Tune plug-in: ASHA over the function trainable, and a trial that crashes and is
retried from its last epoch checkpoint, ending where an uninterrupted run ends."""
from pathlib import Path

import numpy as np
import pytest

from ray_jobs.jax import checkpoint, loop
from ray_jobs.jax.worker import LocalGroup, Trainer
from tests.jax.conftest import load_npz

# Ray (and so the plug-in) is imported inside the tests: importing ray.tune at collection
# time, before the cluster fixture sets RAY_AUTH_TOKEN, caches "no token" for the process.

pytestmark = pytest.mark.cluster

BASE = {"epochs": 2, "batch_size": 64, "eval_batch_size": 256, "vocab_pad_multiple": 32,
        "hidden_sizes": [8], "embedding_dim": 4, "patience": 0}


def run_tuner(trainable, base, space, tmp_path, name, **tune_kw):
    from ray import tune
    from ray_jobs.jax import tuning
    tuner = tune.Tuner(
        tune.with_resources(trainable, tuning.trial_resources(base)), param_space=space,
        tune_config=tune.TuneConfig(metric=tuning.METRIC, mode=tuning.MODE, **tune_kw),
        run_config=tune.RunConfig(name=name, storage_path=str(tmp_path), verbose=0,
                                  **({"failure_config": tune.FailureConfig(max_failures=1)}
                                     if name == "retry" else {})))
    return tuner.fit()


def test_asha_search_reports_every_epoch_and_exports_the_best(ray_connected, tiny_features,
                                                              tmp_path):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray_jobs.jax import tuning
    space = {"learning_rate": tune.loguniform(3e-3, 3e-2),
             "l2_wide": tune.loguniform(1e-6, 1e-3), "l2_deep": tune.loguniform(1e-6, 1e-3),
             "embedding_dim": tune.choice([2, 4]), "hidden_sizes": tune.choice([[8], [8, 4]]),
             "batch_size": tune.choice([32, 64])}
    asha = ASHAScheduler(max_t=tuning.max_iterations(BASE), grace_period=1, reduction_factor=2)
    results = run_tuner(tuning.make_trainable(str(tiny_features), BASE), BASE, space,
                        tmp_path, "asha", num_samples=3, scheduler=asha,
                        search_alg=tune.search.BasicVariantGenerator(random_state=0))
    assert results.errors == []
    assert len(results) == 3
    for r in results:
        df = r.metrics_dataframe
        assert list(df["epoch"]) == list(range(len(df)))  # one report per epoch
        assert np.isfinite(df["eval_loss"]).all() and (df["eval_auc"] > 0.5).all()
        assert r.checkpoint is not None
    assert max(len(r.metrics_dataframe) for r in results) == 2
    best = results.get_best_result()
    digest = tuning.export_best(best.checkpoint, str(tmp_path / "best"),
                                features=str(tiny_features))
    params = load_npz(tmp_path / "best" / "model" / "params.npz")
    assert params["params/deep/embed/cat_2"].shape == (320, best.config["embedding_dim"])
    from mlbatch.artifacts.jax_model import load_jax_model
    model = load_jax_model(tmp_path / "best")
    assert model.manifest.digest == digest
    assert model.manifest.body["epochs_completed"] == len(best.metrics_dataframe)
    assert model.metrics["eval_loss"] == pytest.approx(best.metrics["eval_loss"])
    assert model.predict(np.zeros((5, 4), np.float32), np.zeros((5, 3), np.int32)).shape == (5,)


def _crash_after_first_report(trainable, log: Path):
    """The trial, failing right after its first report on the first attempt; each attempt
    appends the epochs it reports to ``log`` (one line per report: attempt, epoch)."""
    def trial(config):
        import json

        from ray import tune
        real = tune.report
        resumed = tune.get_checkpoint() is not None

        def report(metrics, *a, **k):
            real(metrics, *a, **k)
            with open(log, "a") as f:
                f.write(json.dumps({"resumed": resumed, "epoch": metrics["epoch"]}) + "\n")
            if not resumed:  # first attempt: fail right after epoch 0
                raise RuntimeError("injected failure after epoch 0")
        tune.report = report
        try:
            trainable(config)
        finally:
            tune.report = real
    return trial


def test_retried_trial_resumes_from_its_checkpoint(ray_connected, tiny_features, tmp_path):
    import json

    from ray_jobs.jax import tuning
    sampled = {"learning_rate": 0.01, "l2_wide": 1e-4, "l2_deep": 1e-4}
    log = tmp_path / "reports.jsonl"
    trainable = _crash_after_first_report(tuning.make_trainable(str(tiny_features), BASE), log)
    results = run_tuner(trainable, BASE, sampled, tmp_path, "retry", num_samples=1)
    (r,) = list(results)
    assert r.error is None
    assert "injected failure" in (Path(r.path) / "error.txt").read_text()  # it did crash
    reports = [json.loads(line) for line in log.read_text().splitlines()]
    # the retry started from epoch 0's checkpoint: it trained and reported epoch 1 only
    assert reports == [{"resumed": False, "epoch": 0}, {"resumed": True, "epoch": 1}]
    # (Tune's own table can miss the failed attempt's last row on a loaded machine)
    assert list(r.metrics_dataframe["epoch"])[-1] == 1
    with r.checkpoint.as_directory() as d:
        tuned = load_npz(f"{d}/{tuning.CHECKPOINT_FILE}")
    # the same trial, uninterrupted, in this process
    cfg = tuning.trial_config(BASE, sampled)
    group = LocalGroup(Trainer(cfg, str(tiny_features)))

    class Last:
        blob = None
        on_start = on_train = on_checkpoint = on_end = staticmethod(lambda *a: None)

        def on_epoch(self, record, blob, improved):
            Last.blob = blob
    loop.fit(group, cfg, Last())
    straight = {k: v for k, v in checkpoint.decode(Last.blob)[0].items()
                if k.startswith("params/")}
    assert sorted(tuned) == sorted(straight)
    for k in tuned:
        np.testing.assert_array_equal(tuned[k], straight[k], err_msg=k)
