"""Scoring the raw flights slice with the XGBoost model: the trainer's predictions, row by
row, and every output of the job; usage errors; the Dataflow dry run."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from beam_jobs.common.options import dry_run_summary
from beam_jobs.score.__main__ import main
from mlbatch import metrics, storage
from mlbatch.artifacts import read_manifest
from mlbatch.artifacts.features import load_feature_set
from mlbatch.artifacts.predictions import load_predictions
from mlbatch.artifacts.xgboost_model import load_xgboost_model
from tests.conftest import FLIGHTS_SLICE_ROWS
from tests.score.conftest import score


@pytest.fixture(scope="module")
def scored(flights_scored):
    return flights_scored


def _by_id(table, ids: list[str]) -> dict[str, np.ndarray]:
    index = {k: i for i, k in enumerate(table.column("example_id").to_pylist())}
    missing = [k for k in ids if k not in index]
    assert not missing, f"{len(missing)} eval rows not scored, e.g. {missing[:3]}"
    take = np.array([index[k] for k in ids])
    return {c: table.column(c).to_numpy(zero_copy_only=False)[take]
            for c in ("prediction", "label")}


def test_eval_rows_get_the_trainers_predictions_and_auc(scored, flights_features, flights_xgboost):
    evl = load_feature_set(flights_features).read_table("eval")
    model = load_xgboost_model(flights_xgboost)
    x = np.stack([evl.column(n).to_numpy() for n in model.feature_names], axis=1)
    got = _by_id(load_predictions(scored[0]).read_table(), evl.column("example_id").to_pylist())
    np.testing.assert_allclose(got["prediction"], model.predict(x), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(got["label"], evl.column("delayed").to_numpy())
    assert metrics.auc(got["label"], got["prediction"]) == pytest.approx(
        model.metrics["auc"], abs=1e-12)


def test_outputs_reconcile_and_agree(scored, flights_features, flights_xgboost):
    out, summary = scored
    preds = load_predictions(out)
    table = preds.read_table()
    m = preds.metrics
    assert (m["rows_read"], m["rows_scored"], m["rows_dead_letter"]) == (FLIGHTS_SLICE_ROWS,
                                                                         FLIGHTS_SLICE_ROWS, 0)
    assert summary["reconciled"] and all(summary["checks"].values())
    assert summary["stages"] == {"read": FLIGHTS_SLICE_ROWS, "scored": FLIGHTS_SLICE_ROWS,
                                 "dead_letter": 0}
    assert table.num_rows == preds.num_rows == FLIGHTS_SLICE_ROWS
    assert len(set(table.column("example_id").to_pylist())) == FLIGHTS_SLICE_ROWS
    # labelled rows: the flights with an arrival delay; metrics over exactly those
    labelled = table.filter(table.column("label").is_valid())
    assert m["rows_labelled"] == labelled.num_rows == 2960
    assert m["auc"] == metrics.auc(labelled.column("label").to_numpy(),
                                   labelled.column("prediction").to_numpy())
    # lineage: the model, the features and every raw file
    assert preds.model_digest == read_manifest(flights_xgboost).digest
    assert preds.features_digest == read_manifest(flights_features).digest
    assert set(table.column("model_digest").to_pylist()) == {preds.model_digest}
    assert set(table.column("transform_digest").to_pylist()) == {preds.body["transform_digest"]}
    roles = sorted(i["role"] for i in preds.manifest.inputs)
    assert roles == ["features", "model", "raw:flights", "raw:planes", "raw:weather"]
    # Vertex AI's JSON lines carry the same predictions
    lines = [json.loads(line) for f in sorted((out / "vertex").iterdir())
             for line in f.read_text().splitlines()]
    assert sorted(f.name for f in (out / "vertex").iterdir()) == [
        "prediction.results-00000-of-00001"]
    assert {d["key"]: d["prediction"] for d in lines} == dict(zip(
        table.column("example_id").to_pylist(), table.column("prediction").to_pylist()))


@pytest.mark.parametrize("case, message", [
    ("committed output", "--overwrite"),
    ("model is a feature dir", "a model is one of"),
    ("other features", "was trained on features"),
    ("no input files", "input files not found"),
    ("period without rows", "period 2013-10: input tables without data"),
    ("unknown flag", "--num_shardz"),
    ("local paths on Dataflow", "DataflowRunner workers cannot read local paths"),
])
def test_usage_errors_exit_2(case, message, scored, flights_slice, flights_features,
                             flights_xgboost, synthetic_features, tmp_path, capsys):
    args = {"--features": flights_features, "--model": flights_xgboost,
            "--input": flights_slice, "--output": tmp_path / "out"}
    extra: list[str] = []
    if case == "committed output":
        args["--output"] = scored[0]
    elif case == "model is a feature dir":
        args["--model"] = flights_features
    elif case == "other features":
        args["--features"] = synthetic_features
    elif case == "no input files":
        args["--input"] = tmp_path
    elif case == "period without rows":  # its flights file holds the header only
        args["--input"] = folder = tmp_path / "period=2013-10"
        shutil.copytree(flights_slice, folder)
        header = (folder / "flights.csv").read_text().splitlines()[0]
        (folder / "flights.csv").write_text(header + "\n")
        extra = ["--period", "2013-10"]
    elif case == "unknown flag":
        extra = ["--num_shardz", "2"]
    else:
        extra = ["--runner", "DataflowRunner", "--project", "my-project", "--region",
                 "us-central1", "--temp_location", "gs://bucket/tmp"]
    argv = [str(a) for kv in args.items() for a in kv] + extra
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    if case != "committed output":
        assert not (tmp_path / "out" / "artifact.json").exists()


def test_dataflow_dry_run_writes_job_description(flights_slice, flights_features,
                                                 flights_xgboost, gcs_emulator, tmp_path):
    """Offline: every path on gs:// (the local Cloud Storage emulator)."""
    uris = {}
    for name, src in (("raw", flights_slice), ("features", flights_features),
                      ("model", flights_xgboost)):
        uris[name] = gcs_emulator.uri("score", name)
        storage.copy_tree(str(src), uris[name])
    job_file = tmp_path / "job.json"
    out = gcs_emulator.uri("score", "predictions")
    assert score(uris["features"], uris["model"], uris["raw"], out,
                 "--runner", "DataflowRunner", "--project", "my-project", "--region",
                 "us-central1", "--temp_location", gcs_emulator.uri("tmp"), "--dry_run",
                 f"--dataflow_job_file={job_file}") is None
    assert not storage.exists(gcs_emulator.uri("score", "predictions", "artifact.json"))
    job = dry_run_summary(job_file)
    assert job["name"] == "score-flights"
    for step in ("ReadExamples", "TransformFeatures", "KeyByExamples", "Predict",
                 "WritePredictions", "WriteVertex", "WriteDeadLetters"):
        assert step in job["transforms"], step
    assert any("ValidateFlights" in t for t in job["transforms"])
    assert job["options"]["project"] == "my-project"
    assert any("workflow.tar.gz" in p for p in job["packages"])
