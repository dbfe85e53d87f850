"""One pipeline or two passes (analyze, then stream through the saved transform_fn):
the same outputs; and --output straight into a gs:// bucket (the storage emulator)."""
import json
from pathlib import Path

import pytest

from beam_jobs.features.__main__ import parse_args, runs_locally
from beam_jobs.common.options import pipeline_options
from mlbatch import storage
from mlbatch.artifacts import read_manifest
from mlbatch.artifacts.features import load_feature_set
from tests.conftest import run_feature_job

OUTPUTS = ("train", "eval", "excluded", "dead_letter")


def _files(root: Path, sub: str) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((root / sub).iterdir())}


@pytest.mark.parametrize("runner, local", [
    ([], True), (["--runner", "DirectRunner"], True),
    (["--runner", "apache_beam.runners.portability.fn_api_runner.FnApiRunner"], True),
    (["--runner", "DataflowRunner", "--project", "p", "--region", "r",
      "--temp_location", "gs://b/tmp"], False)])
def test_two_passes_by_default_only_on_local_runners(runner, local):
    args, beam_args = parse_args(["--schema", "s", "--input", "i", "--output", "o", *runner])
    assert args.passes == "auto"
    assert runs_locally(pipeline_options(beam_args, job_name="features-x")) is local


def test_one_pipeline_and_two_passes_write_identical_outputs(flights_features, flights_slice,
                                                             tmp_path):
    """flights_features ran with the default (two passes on the local runner)."""
    one = tmp_path / "one_pass"
    proc = run_feature_job(flights_slice, one, "--passes", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = flights_features
    assert json.loads((two / "artifact.json").read_text())["config"]["passes"] == "auto"
    for sub in OUTPUTS:  # Parquet bytes, file names (shards) included
        assert _files(one, sub) == _files(two, sub), sub
    assert (one / "summary.json").read_bytes() == (two / "summary.json").read_bytes()
    assert _files(one / "transform_fn", "assets") == _files(two / "transform_fn", "assets")
    for sub in ("transformed_metadata", "metadata"):
        assert _files(one, sub) == _files(two, sub), sub
    m1, m2 = (json.loads((d / "artifact.json").read_text()) for d in (one, two))
    assert m1["features"] == m2["features"]
    assert m1["outputs"]["rows"] == m2["outputs"]["rows"]
    assert m1["metrics"]["stages"] == m2["metrics"]["stages"]


@pytest.fixture(scope="module")
def gcs_features(flights_slice, gcs_emulator):
    uri = gcs_emulator.uri("direct", "features")
    proc = run_feature_job(flights_slice, uri)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return uri


def test_output_straight_to_gcs_commits_what_a_local_run_writes(gcs_features, flights_features):
    names = {f.relpath for f in storage.list_files(gcs_features)}
    local = {str(p.relative_to(flights_features)) for p in flights_features.rglob("*")
             if p.is_file()}
    assert names == local  # nothing staged is left behind, nothing is missing
    assert not any(n.startswith("tft_tmp") for n in names)
    for sub in ("train/", "eval/", "excluded/", "dead_letter/", "transform_fn/assets/",
                "summary.json"):
        for n in sorted(n for n in names if n.startswith(sub)):
            assert storage.read_bytes(storage.join(gcs_features, n)) == \
                (flights_features / n).read_bytes(), n
    manifest = read_manifest(gcs_features, "features")
    assert manifest.body["features"] == read_manifest(str(flights_features), "features").body[
        "features"]


def test_xgboost_trains_on_features_written_to_gcs(gcs_features, connected_gcs, tmp_path):
    from ray_jobs.xgboost import driver
    from ray_jobs.xgboost.config import XGBoostConfig

    out = tmp_path / "model"
    doc = driver.run(XGBoostConfig(features=gcs_features, output=str(out), num_actors=1,
                                   cpus_per_actor=1, num_boost_round=5, early_stopping_rounds=5,
                                   max_actor_restarts=0, placement_timeout_s=30.0))
    fs = load_feature_set(gcs_features)
    model = read_manifest(str(out), "xgboost_model")
    assert model.input("features") == {"role": "features", "kind": "artifact",
                                       "type": "features", "uri": gcs_features,
                                       "digest": fs.digest}
    assert 0.5 < doc["eval"]["auc"] <= 1.0
