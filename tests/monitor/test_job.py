"""The monitor job end to end on the flights slice: the training data's own raw files
(skew: nothing breaches, the saved transform reproduces the written features, exit 0),
then a perturbed copy in drift mode against that first output (exit 3, the perturbed
features named), and usage errors (exit 2)."""
from __future__ import annotations


import pyarrow.parquet as pq
import pytest
from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import anomalies_pb2

from beam_jobs.monitor.__main__ import main
from mlbatch.artifacts import read_manifest, verify
from mlbatch.artifacts.monitor import load_monitor


@pytest.fixture(scope="module")
def skew_run(flights_monitor_skew):
    return flights_monitor_skew


@pytest.fixture(scope="module")
def drift_run(flights_monitor_drift):
    return flights_monitor_drift


def test_training_data_against_itself_is_ok(skew_run, flights_features):
    code, out = skew_run
    assert code == 0
    result = load_monitor(out)
    doc = result.drift
    assert (doc["mode"], doc["verdict"], result.breached) == ("skew", "ok", [])
    assert doc["baseline_digest"] == read_manifest(flights_features).digest
    names = {(f["stage"], f["name"]) for f in doc["features"]}
    assert {("raw", "distance"), ("raw", "carrier"), ("transformed", "distance_z"),
            ("transformed", "carrier_id")} <= names
    counts = doc["counts"]
    assert counts["flights_read"] == 3000 == counts["prepared"] + counts.get("flights_dead_letter", 0)
    for f in doc["features"]:
        assert f["distance"] <= f["threshold"] and f["n_current"] >= f["n_reference"] > 0
    skew = doc["transform_skew"]
    assert skew["sampled"] > 500 and skew["mismatches"] == 0 and skew["missing"] == 0
    assert doc["prediction_drift"]["metric"] == "js" and not doc["prediction_drift"]["breach"]
    assert doc["label_drift"]["kind"] == "categorical"
    m = read_manifest(out, "monitor")
    assert m.metrics["verdict"] == "ok" and m.metrics["features_breached"] == 0
    assert m.metrics["features_checked"] == len(doc["features"]) and verify(m) == []
    assert {e["role"] for e in m.inputs} >= {"baseline", "model", "raw:flights"}


def test_histograms_count_both_sides(skew_run):
    hist = load_monitor(skew_run[1]).histograms
    d = hist["raw/distance"]
    assert d["kind"] == "numeric" and len(d["reference"]) == len(d["edges"]) + 1 == 12
    assert d["reference"][0] == d["reference"][-1] == 0  # nothing outside the training range
    c = hist["raw/carrier"]
    assert sum(c["current"]) == 3000 and len(c["values"]) == len(c["reference"])


def test_perturbed_window_breaches_naming_the_features(drift_run, skew_run):
    code, out = drift_run
    assert code == 3
    result = load_monitor(out)
    doc = result.drift
    assert (doc["mode"], doc["verdict"], doc["against"]) == ("drift", "breach", str(skew_run[1]))
    breached = set(result.breached)
    assert {"distance", "carrier", "distance_z", "carrier_id", "distance_bucket"} <= breached
    assert not breached & {"wx_temp", "origin", "wx_temp_z"}
    carrier = next(f for f in doc["features"] if f["name"] == "carrier")
    assert carrier["distance"] == pytest.approx(1 / 3, abs=0.01)  # "ZZ": 0 -> a third
    # distance x4 puts some flights past the schema's maximum of 10000: dead letters,
    # written with their reason, and the counts still reconcile
    counts = doc["counts"]
    assert counts["flights_dead_letter"] > 0
    assert counts["flights_read"] == 3000 == counts["prepared"] + counts["flights_dead_letter"]
    dead = pq.read_table(out / "dead_letter").to_pylist()
    assert len(dead) == counts["flights_dead_letter"]
    assert all("distance" in d["reason"] and "above maximum" in d["reason"] for d in dead)
    anomalies = text_format.Parse((out / "anomalies.pbtxt").read_text(), anomalies_pb2.Anomalies())
    assert "raw/carrier" in anomalies.anomaly_info and "raw/wx_temp" not in anomalies.anomaly_info
    assert len(anomalies.drift_skew_info) == len(doc["features"]) + 1  # and the label
    assert all(i.drift_measurements and not i.skew_measurements
               for i in anomalies.drift_skew_info)
    assert read_manifest(out, "monitor").metrics["verdict"] == "breach"


def test_usage_errors_exit_2(skew_run, flights_features, flights_slice, tmp_path, capsys):
    assert main(["--baseline", str(tmp_path / "nothing"), "--input", str(flights_slice),
                 "--output", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["--baseline", str(skew_run[1]), "--input", str(flights_slice),
                 "--output", str(tmp_path / "o2")]) == 2
    assert "'monitor' artifact, not 'features'" in capsys.readouterr().err
    assert main(["--baseline", str(flights_features), "--input", str(flights_slice),
                 "--output", str(tmp_path / "o3"), "--model", str(skew_run[1])]) == 2
    assert (f"{skew_run[1]} is a 'monitor' artifact; a model is one of ('xgboost_model', "
            "'jax_model')") in capsys.readouterr().err
    assert not (tmp_path / "o3").exists()


def test_dataflow_needs_gs_paths(flights_features, flights_slice, tmp_path, capsys):
    assert main(["--baseline", str(flights_features), "--input", str(flights_slice),
                 "--output", str(tmp_path / "o"), "--runner", "DataflowRunner", "--project",
                 "p", "--region", "us-central1", "--temp_location", "gs://b/tmp"]) == 2
    err = capsys.readouterr().err
    assert "DataflowRunner workers cannot read local paths" in err
    assert f"--baseline {flights_features}" in err and "baseline raw file" in err
    assert not (tmp_path / "o").exists()
