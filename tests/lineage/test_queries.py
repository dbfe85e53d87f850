"""``python -m pipelines.lineage which URI``: which model scored an output, trained on
which data (and blessed against which version, through the registry's hook), on a store
recording a small chain written here: raw train.csv -> features -> model, and the model
scoring a later period's serve.csv (two scoring runs, two periods)."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from mlbatch.artifacts.base import ArtifactWriter
from pipelines.lineage import LineageStore, record_step
from pipelines.lineage import __main__ as cli
from pipelines.lineage.queries import (register_blessing_lookup, unregister_blessing_lookup,
                                       which_model)

TRAIN_CSV = b"dep_delay,arr_delay\n1,2\n3,4\n"
SERVE_CSV = b"dep_delay\n5\n"


def _artifact(root: Path, type_: str, *, artifacts=(), files=(), body=None) -> Path:
    w = ArtifactWriter(root, type_, job=f"tests.{type_}", config={})
    w.claim(overwrite=True)
    for role, uri in artifacts:
        w.input_artifact(role, str(uri))
    for role, uri in files:
        w.input_file(role, str(uri))
    (root / "part.txt").write_text(type_)
    w.commit(body=body or {})
    return root


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("which")
    (root / "train.csv").write_bytes(TRAIN_CSV)
    (root / "serve.csv").write_bytes(SERVE_CSV)
    run = root / "run"
    features = _artifact(run / "features", "features", files=[("raw:flights",
                                                                root / "train.csv")])
    model = _artifact(run / "xgboost", "xgboost_model", artifacts=[("features", features)])
    scored = _artifact(run / "score_2013-10", "predictions", artifacts=[("model", model)],
                       files=[("raw:serve", root / "serve.csv")])
    store_path = run / "lineage.sqlite"
    with LineageStore(store_path) as store:
        for step, job, inputs, out, params in [
                ("features", "beam_jobs.features", [], features, {"periods": "2013-01..2013-09"}),
                ("xgboost", "ray_jobs.xgboost", [features], model, {"num_boost_round": 10}),
                ("score_2013-10", "beam_jobs.score", [model], scored, {"period": "2013-10"})]:
            record_step(store, "flights@t1", step, job, "local", params, f"sha256:{step}",
                        [str(p) for p in inputs], str(out), "2026-12-06T01:00:00+00:00",
                        "2026-12-06T01:00:01+00:00", "done", pipeline="flights")
    return {"root": root, "store": store_path, "features": features, "model": model,
            "scored": scored}


def _digest(root: Path) -> str:
    return json.loads((root / "artifact.json").read_text())["digest"]


def test_which_model_scored_an_output_and_on_which_data_it_was_trained(chain):
    with LineageStore(chain["store"]) as store:
        answer = which_model(store, str(chain["scored"]))
    assert answer["artifact"]["type"] == "predictions"
    assert answer["produced_by"]["step"] == "score_2013-10"
    assert answer["produced_by"]["periods"] == {"period": "2013-10"}
    assert [(f["uri"], f["role"], f["sha256"]) for f in answer["read"]] == [
        (str(chain["root"] / "serve.csv"), "raw:serve", hashlib.sha256(SERVE_CSV).hexdigest())]
    [model] = answer["models"]
    assert (model["model"]["uri"], model["model"]["digest"], model["model"]["role"]) == (
        str(chain["model"]), _digest(chain["model"]), "model")
    assert model["trained_by"]["step"] == "xgboost"
    assert model["trained_by"]["params"] == {"num_boost_round": 10}
    [trained_on] = model["trained_on"]
    assert trained_on["features"]["digest"] == _digest(chain["features"])
    assert trained_on["produced_by"]["periods"] == {"periods": "2013-01..2013-09"}
    assert [(f["uri"], f["sha256"]) for f in trained_on["raw"]] == [
        (str(chain["root"] / "train.csv"), hashlib.sha256(TRAIN_CSV).hexdigest())]
    assert model["blessing"] is None


def test_which_model_scored_a_period_through_the_registry_is_the_resolved_one(tmp_path):
    """A scoring step that reads registry:NAME@blessed reads the blessing record (which
    read every model it compared) and the resolved model: the answer is that model only,
    once, not the refused candidate nor the earlier versions the blessings compared."""
    (tmp_path / "train.csv").write_bytes(TRAIN_CSV)
    (tmp_path / "serve.csv").write_bytes(SERVE_CSV)
    run = tmp_path / "run"
    features = _artifact(run / "features", "features", files=[("raw:flights",
                                                                tmp_path / "train.csv")])
    good = _artifact(run / "tune_best", "xgboost_model", artifacts=[("features", features)])
    weak = _artifact(run / "weak", "xgboost_model", artifacts=[("features", features)])
    bless = _artifact(run / "bless_weak", "model_evaluation",
                      artifacts=[("candidate", weak), ("baseline", good)])
    scored = _artifact(run / "score@2013-11", "predictions",
                       artifacts=[("inputs/0", bless), ("model", good)],
                       files=[("raw:flights", tmp_path / "serve.csv")])
    evaluated = _artifact(run / "evaluate@2013-11", "evaluation",
                          artifacts=[("predictions", scored)])
    with LineageStore(run / "lineage.sqlite") as store:
        for step, inputs, out in [("features", [], features), ("tune", [features], good),
                                  ("weak", [features], weak), ("bless_weak", [good, weak], bless),
                                  ("score[2013-11]", [bless, good], scored),
                                  ("evaluate[2013-11]", [scored], evaluated)]:
            record_step(store, "flights@t1", step, f"jobs.{step}", "local", {}, f"sha256:{step}",
                        [str(p) for p in inputs], str(out), "2026-12-06T01:00:00+00:00",
                        "2026-12-06T01:00:01+00:00", "done", pipeline="flights")
        answer = which_model(store, str(evaluated))
    assert [m["model"]["uri"] for m in answer["models"]] == [str(good)]
    assert answer["models"][0]["trained_on"][0]["features"]["uri"] == str(features)


def test_which_model_asks_the_registry_hook_for_the_blessing(chain):
    seen = []

    def lookup(store, model):
        seen.append(model["uri"])
        return {"name": "flights", "version": 3, "blessed_against": 2}

    register_blessing_lookup(lookup)
    try:
        with LineageStore(chain["store"]) as store:
            answer = which_model(store, str(chain["model"]))  # a model: itself
    finally:
        unregister_blessing_lookup(lookup)
    assert seen == [str(chain["model"])]
    assert answer["models"][0]["blessing"] == {"name": "flights", "version": 3,
                                               "blessed_against": 2}
    assert answer["models"][0]["trained_on"][0]["features"]["uri"] == str(chain["features"])


def test_which_cli_prints_the_answer_and_refuses_an_unknown_artifact(chain, capsys):
    assert cli.main(["which", str(chain["scored"])]) == 0  # the store found above it
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"predictions {chain['scored']}  {_digest(chain['scored'])[:19]}"
    assert lines[1] == ("  made by step score_2013-10 (beam_jobs.score) of run flights@t1, "
                        "period 2013-10")
    assert f"  model xgboost_model {chain['model']}  {_digest(chain['model'])[:19]}" in lines
    assert ("      made by step features (beam_jobs.features) of run flights@t1, "
            "periods 2013-01..2013-09 from:") in lines
    train_sha = hashlib.sha256(TRAIN_CSV).hexdigest()[:12]
    assert f"        {chain['root'] / 'train.csv'}  sha256:{train_sha}  (raw:flights)" in lines
    assert lines[-1] == "    blessing: not recorded (no registry entry)"
    assert cli.main(["which", str(chain["root"] / "nothing"), "--store",
                     str(chain["store"])]) == 2
    assert "no artifact recorded at" in capsys.readouterr().err


def test_which_model_on_the_sessions_real_xgboost_model(recorded, flights_xgboost,
                                                         flights_features, flights_slice):
    """The real feature job's output on the flights slice and the model trained on it."""
    store, _ = recorded
    answer = which_model(store, str(flights_xgboost))
    [model] = answer["models"]
    assert model["model"]["type"] == "xgboost_model"
    assert model["trained_by"]["step"] == "xgboost"
    assert model["trained_by"]["params"] == {"num_boost_round": 15}
    [trained_on] = model["trained_on"]
    assert trained_on["features"]["uri"] == str(flights_features)
    raw = {Path(f["uri"]).name: f["sha256"] for f in trained_on["raw"]}
    assert {"flights.csv", "planes.csv", "weather.csv"} <= set(raw)
    csv = flights_slice / "flights.csv"
    assert raw["flights.csv"] == hashlib.sha256(csv.read_bytes()).hexdigest()
