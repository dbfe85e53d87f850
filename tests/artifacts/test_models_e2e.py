"""Both trainers on the REAL feature-job output of the flights slice: from Cloud Storage
(the local emulator, tests/conftest.py) to Cloud Storage, from a moved directory, and the
model artifacts read back by their readers alone (lineage by URI and digest intact).

On gs:// the rows are read where the work is: by XGBoost's training actor (distributed
loading) and by the JAX job's Ray worker, both reaching the emulator through the
storage variables the driver passes as the Ray job's runtime_env (ray_jobs.common.cluster)."""
from __future__ import annotations

import io
import json
import math
import shutil
import subprocess
import sys

import numpy as np
import pytest

from mlbatch import storage
from mlbatch.artifacts import read_manifest, verify
from mlbatch.artifacts.features import load_feature_set
from mlbatch.artifacts.jax_model import load_jax_model
from mlbatch.artifacts.xgboost_model import load_xgboost_model
from tests.conftest import REPO_ROOT
from tests.jax.conftest import tiny_config
from tests.xgboost.helpers import connect_test_process

pytestmark = [pytest.mark.cluster, pytest.mark.e2e]

XGB = {"num_actors": 1, "cpus_per_actor": 1, "num_boost_round": 15,
       "early_stopping_rounds": 5, "max_actor_restarts": 0, "placement_timeout_s": 30.0}


@pytest.fixture(scope="module")
def connected(ray_cluster):
    connect_test_process(ray_cluster)
    return ray_cluster


def train_xgboost(features: str, output: str) -> dict:
    from ray_jobs.xgboost import driver
    from ray_jobs.xgboost.config import XGBoostConfig
    return driver.run(XGBoostConfig(features=features, output=output, **XGB))


def train_jax(features: str, output: str, address: str | None = None) -> dict:
    """In process; with ``address``, in one Ray worker (its own process)."""
    from ray_jobs.jax import driver
    return driver.run(tiny_config(epochs=2, batch_size=128), features, output, address=address)


@pytest.fixture(scope="module")
def gcs_models(gcs_emulator, flights_features, connected_gcs):
    """The feature job's flights output copied to gs://mlbatch-test/flights/features; both
    trainers read it there (XGBoost's actor and the JAX job's Ray worker themselves) and
    write their models next to it.

    (The feature job itself cannot write to the emulator: tf.Transform writes through
    TensorFlow's GCS file system, whose endpoint is fixed to www.googleapis.com.)"""
    features = gcs_emulator.uri("flights", "features")
    storage.copy_tree(str(flights_features), features)
    xgb_out, jax_out = gcs_emulator.uri("models", "xgboost"), gcs_emulator.uri("models", "jax")
    xgb = train_xgboost(features, xgb_out)
    return features, (xgb_out, xgb), (jax_out, train_jax(features, jax_out,
                                                        address=connected_gcs.gcs_address))


def assert_lineage(model_uri: str, model_type: str, features_uri: str) -> None:
    feats = read_manifest(features_uri, "features")
    m = read_manifest(model_uri, model_type)
    assert m.input("features") == {"role": "features", "kind": "artifact", "type": "features",
                                   "uri": features_uri, "digest": feats.digest}
    (node,) = m.doc["lineage"]
    assert node["digest"] == feats.digest and node["lineage"] == feats.doc["lineage"]
    raw = [n for n in node["lineage"] if n["role"] == "raw:flights"]
    assert len(raw) == 1 and raw[0]["sha256"]  # down to the raw file, by content hash
    assert verify(m) == []


def test_gcs_features_train_both_models_committed_on_gcs(gcs_models):
    features, (xgb_out, xgb_doc), (jax_out, jax_summary) = gcs_models
    assert_lineage(xgb_out, "xgboost_model", features)
    assert_lineage(jax_out, "jax_model", features)
    names = {f.relpath for f in storage.list_files(jax_out)}
    assert {"artifact.json", "model/predict.jaxexport", "model/params.npz", "model/model.json",
            "metrics.json", "curves.png", "config.json"} <= names
    assert any(n.startswith("checkpoints/ckpt-") for n in names)
    assert any(n.startswith("tensorboard/events.out.tfevents") for n in names)
    # the XGBoost reader (from gs://) reproduces the recorded eval metrics exactly
    from mlbatch.metrics import task_metrics
    model = load_xgboost_model(xgb_out)
    fs = load_feature_set(features)
    table = fs.read_table("eval")
    x = np.column_stack([table.column(n).to_numpy().astype(np.float32)
                         for n in model.feature_names])
    y = table.column(fs.label).to_numpy()
    assert model.feature_names == tuple(fs.names) and model.task == fs.task
    expected = task_metrics(fs.task, y, model.predict(x))
    assert model.metrics == pytest.approx({**expected, "objective_loss": expected["logloss"]},
                                          abs=1e-9)
    assert model.metrics == xgb_doc["eval"] and model.best_round == xgb_doc["best_round"]
    jax_m = read_manifest(jax_out, "jax_model")
    assert jax_m.metrics["eval_loss"] == jax_summary["best"]["eval_loss"]
    assert jax_m.body["best_epoch"] == jax_summary["best_epoch"]
    assert jax_m.body["epochs_completed"] == jax_summary["best_epoch"] + 1


def test_gcs_rows_are_read_by_the_training_actors(gcs_models):
    """XGBoost's training workers load their own Parquet files from the bucket
    (distributed loading; the driver reads no rows), through the emulator's file system."""
    from ray_jobs.xgboost import data
    fs = load_feature_set(gcs_models[0])
    files, n = fs.files("train"), fs.num_rows("train")
    assert all(u.startswith("gs://") for u in files)
    assert data.worker_shard(fs, "train", 0, len(files)) == (files[:1], None)
    # Fewer files than workers: each reads the split and keeps its share of the rows.
    assert data.worker_shard(fs, "train", 1, len(files) + 1)[1] == slice(
        n // (len(files) + 1), 2 * n // (len(files) + 1))
    matrix = data.worker_dmatrix(fs, "train", 0, 1)
    assert matrix.num_row() == n and matrix.feature_names == fs.names


def test_gcs_run_is_refused_when_the_workers_would_not_see_the_emulator(gcs_models,
                                                                        monkeypatch):
    from ray_jobs.common import cluster
    features = gcs_models[0]
    cluster.check_worker_env([features])  # this connection passes the emulator on
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", "http://127.0.0.1:9")
    cluster.check_worker_env(["/local/features"])  # nothing remote: nothing to pass
    with pytest.raises(cluster.ClusterError, match=r"\['STORAGE_EMULATOR_HOST'\] set, but "
                                                   r"its Ray job does not pass them"):
        cluster.check_worker_env([features, "/local/out"])


SCORE_SCRIPT = r"""
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("beam_jobs", "ray_jobs", "tests"):
            raise ImportError(f"{name} must not be needed to apply a model")
sys.meta_path.insert(0, Block())
import numpy as np
from mlbatch.artifacts.features import load_feature_set
from mlbatch.artifacts.jax_model import load_jax_model
model, fs = load_jax_model(sys.argv[1]), load_feature_set(sys.argv[2])
t = fs.read_table("eval")
numeric = np.column_stack([t.column(n).to_numpy() for n in model.numeric]).astype(np.float32)
ids = np.column_stack([t.column(n).to_numpy() for n in model.categorical]).astype(np.int32)
np.save(sys.argv[3], model.predict(numeric, ids))
"""


def test_jax_model_applies_from_gcs_without_training_code(gcs_models, tmp_path):
    from ray_jobs.jax import data, exporting, model
    features, _, (jax_out, summary) = gcs_models
    proc = subprocess.run([sys.executable, "-c", SCORE_SCRIPT, jax_out, features,
                           str(tmp_path / "p.npy")], capture_output=True, text=True,
                          timeout=300, cwd=REPO_ROOT, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    served = np.load(tmp_path / "p.npy")
    # the trainer's eval predictions: its own predict on the best epoch's parameters
    fs = load_feature_set(features)
    cols = data.read_rows(fs, "eval", 0, fs.num_rows("eval"))
    with np.load(io.BytesIO(storage.read_bytes(f"{jax_out}/model/params.npz"))) as z:
        params = exporting.nest({k: z[k] for k in z.files if k.startswith("params/")})
    batch = {"numeric": cols.numeric,
             "categorical": {f.name: cols.ids[:, i] for i, f in enumerate(fs.categorical)}}
    want = np.asarray(model.predict(params, batch, fs.task))
    assert served.shape == (fs.num_rows("eval"),)
    np.testing.assert_allclose(served, want, rtol=0, atol=1e-5)
    y = cols.label.astype(np.float64)
    p = np.clip(served.astype(np.float64), 1e-12, 1 - 1e-12)
    logloss = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    assert logloss == pytest.approx(summary["best"]["eval_logloss"], abs=1e-4)
    reader = load_jax_model(jax_out)
    assert reader.task == "binary_classification" and reader.numeric == [f.name for f in fs.numeric]
    assert not math.isnan(reader.metrics["eval_auc"])


def test_moved_feature_directory_trains_both_models(flights_features, connected, tmp_path):
    moved = str(shutil.copytree(flights_features, tmp_path / "elsewhere" / "features"))
    xgb_out, jax_out = str(tmp_path / "xgb"), str(tmp_path / "jax")
    train_xgboost(moved, xgb_out)
    train_jax(moved, jax_out)
    original = read_manifest(flights_features, "features").digest
    for out, kind in ((xgb_out, "xgboost_model"), (jax_out, "jax_model")):
        assert read_manifest(out, kind).input("features")["uri"] == moved
        assert read_manifest(out, kind).input("features")["digest"] == original
    assert load_jax_model(jax_out).predict(np.zeros((3, len(load_feature_set(moved).numeric)),
                                                    np.float32),
                                           np.zeros((3, len(load_feature_set(moved).categorical)),
                                                    np.int32)).shape == (3,)


@pytest.mark.parametrize("job", ["ray_jobs.xgboost", "ray_jobs.jax"])
def test_unknown_major_format_version_is_refused_with_exit_2(synthetic_features, tmp_path, job):
    features = shutil.copytree(synthetic_features, tmp_path / "features")
    doc = json.loads((features / "artifact.json").read_text())
    (features / "artifact.json").write_text(json.dumps({**doc, "format_version": "99.0"}))
    proc = subprocess.run([sys.executable, "-m", job, "--features", str(features), "--output",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=300,
                          cwd=REPO_ROOT, check=False)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "features format_version 99.0 is not readable" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()
