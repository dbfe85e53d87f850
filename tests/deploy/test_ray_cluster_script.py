"""scripts/ray_cluster.py against a real local cluster of two nodes: the training part
of a pipeline submitted with `ray job submit`, its artifacts and their lineage."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import xgboost

from mlbatch import storage
from mlbatch.artifacts.base import read_manifest
from pipelines.lineage import LineageStore, lineage, record_step
from pipelines.ray_cluster import alive_nodes, load_cluster
from pipelines.remote import pinned_requirements, runtime_env
from scripts.ray_cluster import main
from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.cluster, pytest.mark.e2e]

PIPELINE = """pipeline: flights
steps:
  features:
    job: beam_jobs.features
    args: {schema: schemas/flights.yaml, input: data/flights}
    raw: [schema, input]
  xgboost:
    job: ray_jobs.xgboost
    args: {features: "${features}", num_boost_round: 3, num_actors: 2, cpus_per_actor: 1}
"""


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory):
    """A cluster started and stopped by the script (head + worker on 127.0.0.1)."""
    state = tmp_path_factory.mktemp("ray_state")
    assert main(["start", "--state-dir", str(state), "--head-cpus", "1",
                 "--worker-cpus", "2"]) == 0
    try:
        yield load_cluster(state), state
    finally:
        assert main(["stop", "--state-dir", str(state)]) == 0


@pytest.fixture(scope="module")
def trained(two_nodes, flights_features, tmp_path_factory):
    """RUN/features (recorded as the runner would) + RUN/xgboost submitted by the script."""
    cluster, state = two_nodes
    base = tmp_path_factory.mktemp("ray_run")
    run, spec = base / "run", base / "flights.yaml"
    spec.write_text(PIPELINE)
    shutil.copytree(flights_features, run / "features")
    with LineageStore(run / "lineage.sqlite") as store:
        record_step(store, f"flights:{run}", "features", "beam_jobs.features", "local", {},
                    None, [], str(run / "features"), None, None, "done",
                    pipeline="flights")
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "RAY_AUTH_TOKEN")}
    proc = subprocess.run([sys.executable, "-m", "scripts.ray_cluster", "submit", str(spec),
                           "--run-dir", str(run), "--state-dir", str(state)], env=env,
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return cluster, run, proc


def test_the_cluster_has_two_nodes(two_nodes):
    cluster, state = two_nodes
    assert alive_nodes(cluster) == 2
    assert cluster.gcs_address.startswith("127.0.0.1:")
    assert cluster.dashboard_url.startswith("http://127.0.0.1:")
    assert oct((state / "auth_token").stat().st_mode & 0o777) == "0o600"


def test_training_runs_as_a_ray_job_and_commits_the_model(trained):
    cluster, run, proc = trained
    assert "Job 'raysubmit_" in proc.stderr + proc.stdout
    model = read_manifest(run / "xgboost", "xgboost_model")
    features = read_manifest(run / "features", "features")
    assert model.input("features")["digest"] == features.digest
    assert 0.5 < model.metrics["auc"] < 1.0
    booster = xgboost.Booster(model_file=str(run / "xgboost" / "model.json"))
    assert booster.num_boosted_rounds() == 3


def test_the_lineage_goes_from_the_model_to_the_raw_files(trained, flights_slice):
    cluster, run, _ = trained
    with LineageStore(run / "lineage.sqlite") as store:
        tree = lineage(store, str(run / "xgboost"))
    step = tree["produced_by"]["execution"]
    assert (step["step"], step["state"], step["runs_on"]) == (
        "xgboost", "COMPLETE", f"ray:{cluster.dashboard_url}")
    assert step["params"] == {"features": "${features}", "num_boost_round": 3,
                              "num_actors": 2, "cpus_per_actor": 1}
    assert step["elapsed_s"] > 0
    feats, = tree["produced_by"]["inputs"]
    assert (feats["role"], feats["artifact"]["uri"]) == ("features", str(run / "features"))
    raw = {t["role"]: t["artifact"]["digest"] for t in feats["produced_by"]["inputs"]}
    flights_csv = str(flights_slice / "flights.csv")
    assert raw["raw:flights"] == f"sha256:{storage.sha256(flights_csv)}"


def test_bad_submissions_are_refused(two_nodes, tmp_path, capsys):
    _, state = two_nodes
    spec = tmp_path / "flights.yaml"
    spec.write_text(PIPELINE)
    assert main(["submit", str(spec), "--run-dir", str(tmp_path), "--steps", "features",
                 "--state-dir", str(state)]) == 2
    assert "'features' is not a Ray step of 'flights'" in capsys.readouterr().err
    assert main(["submit", str(spec), "--run-dir", str(tmp_path), "--address",
                 "127.0.0.1:6379"]) == 2
    assert "must be the Jobs API URL" in capsys.readouterr().err


def test_the_pip_runtime_env_pins_the_lock_file():
    env = runtime_env("pip")
    pins = env["pip"]["packages"]
    assert pins == pinned_requirements()
    assert "xgboost==3.2.0" in pins and not [p for p in pins if p.startswith("xgboost-ray")]
    assert not [p for p in pins if p.split("=")[0].split("[")[0] in ("ray", "mlbatch")]
    assert env["working_dir"] == str(REPO_ROOT) and ".venv" in env["excludes"]
    assert "pip" not in runtime_env("local")
