"""The blessing step on real models (XGBoost and JAX trained on the flights slice): the
first model blessed on value thresholds alone, then a pass, a fail on value, a fail on
change and a fail on one slice, each with the exact numbers, the alias where it belongs."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from mlbatch.artifacts.features import load_feature_set, read_vocabulary
from mlbatch.artifacts.model_evaluation import load_model_evaluation
from mlbatch.artifacts.models import load_model
from mlbatch.metrics import auc
from pipelines.lineage import LineageStore
from pipelines.model_registry import ModelRegistry, blessed_against
from pipelines.model_registry.bless import main

SLICE = "carrier_id"


def bless(tmp_path, out: str, model, features, *flags: str) -> int:
    return main(["--model", str(model), "--name", "delay", "--features", str(features),
                 "--registry", str(tmp_path / "registry.sqlite"),
                 "--output", str(tmp_path / out), *flags])


def aliases(tmp_path) -> dict[str, int]:
    with LineageStore(tmp_path / "registry.sqlite") as store:
        return ModelRegistry(store).aliases("delay")


def eval_auc(model_dir, features, mask=None) -> float:
    """The oracle: AUC of the model on the eval split (or the rows in ``mask``)."""
    t = load_feature_set(features).read_table("eval")
    labels = t.column("delayed").to_numpy().astype(float)
    scores = load_model(model_dir).predict(t)
    return auc(labels, scores) if mask is None else auc(labels[mask], scores[mask])


@pytest.fixture()
def blessed_xgboost(tmp_path, flights_xgboost, flights_features):
    """The first model of the name, blessed on its value threshold alone."""
    assert bless(tmp_path, "b1", flights_xgboost, flights_features, "--value", "auc>=0.5",
                 "--change", "auc>=+0.9") == 0  # no baseline: change thresholds do not apply
    return tmp_path


def test_first_model_is_blessed_on_value_thresholds_only(blessed_xgboost, flights_xgboost,
                                                         flights_features):
    ev = load_model_evaluation(blessed_xgboost / "b1")
    assert ev.decision == "blessed" and ev.results["baseline"] is None
    assert [(c["kind"], c["text"], c["passed"]) for c in ev.checks] == [
        ("value", "auc>=0.5", True)]
    assert ev.checks[0]["candidate"] == eval_auc(flights_xgboost, flights_features)
    assert ev.results["eval_rows"] == load_feature_set(flights_features).num_rows("eval")
    assert aliases(blessed_xgboost) == {"blessed": 1, "candidate": 1}
    with LineageStore(blessed_xgboost / "registry.sqlite") as store:
        assert blessed_against(store, "delay", 1) is None


def test_pass_moves_the_alias_and_records_the_baseline(blessed_xgboost, flights_jax,
                                                       flights_xgboost, flights_features):
    assert bless(blessed_xgboost, "b2", flights_jax, flights_features, "--value", "auc>=0.5",
                 "--change", "auc>=-0.5", "--change", "logloss<=+100%",
                 "--after", str(blessed_xgboost / "b1")) == 0
    ev = load_model_evaluation(blessed_xgboost / "b2")
    assert ev.decision == "blessed" and ev.failed == []
    assert ev.results["baseline"]["version"] == 1 and ev.results["candidate"]["version"] == 2
    change = next(c for c in ev.checks if c["text"] == "auc>=-0.5")
    jax_auc, xgb_auc = (eval_auc(m, flights_features) for m in (flights_jax, flights_xgboost))
    assert (change["candidate"], change["baseline"]) == (jax_auc, xgb_auc)
    assert change["change"] == jax_auc - xgb_auc
    assert aliases(blessed_xgboost) == {"blessed": 2, "candidate": 2}
    with LineageStore(blessed_xgboost / "registry.sqlite") as store:
        assert blessed_against(store, "delay", 2) == 1
    assert ev.manifest.input("baseline")["digest"] == load_model(flights_xgboost).digest


def test_fail_on_value_keeps_the_blessed_version(blessed_xgboost, flights_jax,
                                                 flights_features, capsys):
    assert bless(blessed_xgboost, "b2", flights_jax, flights_features,
                 "--value", "auc>=0.99") == 3
    ev = load_model_evaluation(blessed_xgboost / "b2")
    jax_auc = eval_auc(flights_jax, flights_features)
    assert ev.decision == "refused"
    assert [(f["kind"], f["text"], f["slice"], f["candidate"]) for f in ev.failed] == [
        ("value", "auc>=0.99", None, jax_auc)]
    assert f"overall: candidate auc = {jax_auc:.6g} fails value threshold auc>=0.99" in (
        capsys.readouterr().err)
    assert aliases(blessed_xgboost) == {"blessed": 1, "candidate": 2}


def test_fail_on_change_names_both_numbers(blessed_xgboost, flights_jax, flights_xgboost,
                                           flights_features, capsys):
    assert bless(blessed_xgboost, "b2", flights_jax, flights_features, "--value", "auc>=0.5",
                 "--change", "auc>=+0.5") == 3  # 0.5 better than a blessed AUC > 0.5: never
    ev = load_model_evaluation(blessed_xgboost / "b2")
    jax_auc, xgb_auc = (eval_auc(m, flights_features) for m in (flights_jax, flights_xgboost))
    assert [(f["kind"], f["candidate"], f["baseline"], f["change"]) for f in ev.failed] == [
        ("change", jax_auc, xgb_auc, jax_auc - xgb_auc)]
    assert (f"overall: candidate {jax_auc:.6g} vs blessed {xgb_auc:.6g}, change "
            f"{jax_auc - xgb_auc:.6g} fails change threshold auc>=+0.5") in capsys.readouterr().err
    assert aliases(blessed_xgboost) == {"blessed": 1, "candidate": 2}


def test_fail_on_the_worst_slice(tmp_path, flights_xgboost, flights_features, flights_slice):
    fs = load_feature_set(flights_features)
    t = fs.read_table("eval")
    vocab = read_vocabulary(fs, next(f for f in fs.categorical if f.name == SLICE))
    carriers = np.array([vocab[i] for i in t.column(SLICE).to_numpy()])  # ids -> codes
    labels = t.column("delayed").to_numpy()
    checked = [c for c in np.unique(carriers) if (carriers == c).sum() >= 30
               and len(set(labels[carriers == c])) == 2]
    slice_aucs = {str(c): eval_auc(flights_xgboost, flights_features, carriers == c)
                  for c in checked}
    worst = min(slice_aucs, key=slice_aucs.get)
    overall = eval_auc(flights_xgboost, flights_features)
    assert slice_aucs[worst] < overall  # the case this test is about
    floor = f"auc>={(slice_aucs[worst] + overall) / 2:.6f}"
    assert bless(tmp_path, "whole", flights_xgboost, flights_features, "--value", floor) == 0
    (tmp_path / "s").mkdir()  # the same model, slices declared, in a registry of its own
    assert bless(tmp_path / "s", "sliced", flights_xgboost, flights_features, "--value", floor,
                 "--slice", SLICE) == 3
    ev = load_model_evaluation(tmp_path / "s" / "sliced")
    failed = {f["slice"]: f["candidate"] for f in ev.failed}
    assert worst in failed and failed[worst] == slice_aucs[worst]
    assert failed == {c: a for c, a in slice_aucs.items() if a < float(floor[5:])}
    skipped = [s["slice"] for s in ev.results["skipped_slices"]]
    assert sorted(skipped) == sorted(str(c) for c in np.unique(carriers) if c not in slice_aucs)
    with open(flights_slice / "flights.csv", newline="") as f:  # the raw file's codes
        raw = {r["carrier"] for r in csv.DictReader(f)}
    assert set(slice_aucs) | set(skipped) <= raw and "UA" in slice_aucs
    assert "blessed" not in aliases(tmp_path / "s")


def test_refusals_before_anything_is_written(tmp_path, flights_xgboost, flights_features,
                                             capsys):
    cases = [(["--value", "rmse<=3"], "a binary_classification model has no metric 'rmse'"),
             ([], "--value: give at least one value threshold"),
             (["--value", "auc>=0.5", "--slice", "nope"], "--slice 'nope': no such column"),
             (["--value", "auc>0.5"], "write METRIC>=NUMBER")]
    for flags, message in cases:
        assert bless(tmp_path, "e", flights_xgboost, flights_features, *flags) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "registry.sqlite").exists() and not (tmp_path / "e").exists()
