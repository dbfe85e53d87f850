"""Blessing steps run by the pipeline runner (subprocesses, exit 3 = refused and
committed), the registry in the run's lineage store, and the cache key of a step that
reads ``registry:NAME@ALIAS`` following the alias."""
from __future__ import annotations

import pytest

from mlbatch.artifacts.base import read_manifest
from mlbatch.artifacts.model_evaluation import load_model_evaluation
from pipelines import cache
from pipelines.__main__ import main as pipeline_main
from pipelines.lineage import LineageStore
from pipelines.lineage.queries import which_model
from pipelines.model_registry import ModelRegistry
from pipelines.run_file import read_run
from pipelines.spec import parse_pipeline


def test_blessing_steps_in_a_run(tmp_path, flights_features, flights_xgboost, flights_jax,
                                 monkeypatch):
    monkeypatch.delenv("MLBATCH_REGISTRY", raising=False)
    spec = tmp_path / "p.yaml"
    common = f"name: delay, features: {flights_features}, value: [auc>=0.5]"
    spec.write_text(f"""pipeline: reg
steps:
  first: {{job: pipelines.model_registry.bless, args: {{model: {flights_xgboost}, {common}}}}}
  worse: {{job: pipelines.model_registry.bless,
          args: {{model: {flights_jax}, {common}, change: [auc>=+0.5], after: "${{first}}"}}}}
""")
    run = tmp_path / "run"
    assert pipeline_main(["run", str(spec), "--output", str(run)]) == 0
    assert {s["name"]: s["status"] for s in read_run(str(run))["steps"]} == {
        "first": "done", "worse": "done"}
    assert load_model_evaluation(run / "first").decision == "blessed"
    worse = load_model_evaluation(run / "worse")
    assert worse.decision == "refused" and [f["text"] for f in worse.failed] == ["auc>=+0.5"]
    assert worse.results["registry"] == "../lineage.sqlite"  # relative: the run can move
    with LineageStore(run / "lineage.sqlite") as store:
        reg = ModelRegistry(store)
        assert reg.aliases("delay") == {"blessed": 1, "candidate": 2}
        steps = {e.properties.get("step") for e in store.get_executions()}
        blessings = [m["blessing"] for uri in (flights_xgboost, flights_jax)
                     for m in which_model(store, str(uri))["models"]]
    assert {"first", "worse"} <= steps  # the runner's lineage beside the registry
    assert blessings == [  # python -m pipelines.lineage which: the registry's answer
        {"name": "delay", "version": 1, "alias": "blessed", "decision": "blessed",
         "blessed_against": None},
        {"name": "delay", "version": 2, "alias": "candidate", "decision": "not blessed",
         "blessed_against": None}]


def test_a_moved_run_directory_keeps_its_registry(tmp_path, flights_features, flights_xgboost,
                                                   flights_jax, monkeypatch):
    """mv out/run out/run2 (models, blessings and the store inside it), then the blessing
    that follows the first one (--after) runs in the moved directory: the store and the
    blessed model it finds are the moved ones."""
    import shutil

    from mlbatch.artifacts.registry import resolve, store_path
    from pipelines.model_registry.bless import main as bless
    monkeypatch.delenv("MLBATCH_REGISTRY", raising=False)
    common = ["--name", "delay", "--features", str(flights_features), "--value", "auc>=0.5"]
    run = tmp_path / "run"
    for name, src in (("xgboost", flights_xgboost), ("jax", flights_jax)):
        shutil.copytree(src, run / name)
    assert bless(["--model", str(run / "xgboost"), "--output", str(run / "first"),
                  *common]) == 0
    moved = tmp_path / "run2"
    run.rename(moved)
    assert store_path(str(moved / "first")) == str(moved / "lineage.sqlite")
    assert resolve("registry:delay@blessed", str(moved / "first")).uri == str(
        moved / "xgboost")
    assert bless(["--model", str(moved / "jax"), "--output", str(moved / "second"),
                  "--after", str(moved / "first"), *common]) == 0
    second = load_model_evaluation(moved / "second").results
    assert second["baseline"]["uri"] == str(moved / "xgboost")  # the moved blessed model
    with LineageStore(moved / "lineage.sqlite") as store:
        reg = ModelRegistry(store)
        assert reg.aliases("delay") == {"blessed": 2, "candidate": 2}
        assert [v.uri for v in reg.versions("delay")] == [str(moved / "xgboost"),
                                                         str(moved / "jax")]
    other = tmp_path / "elsewhere"  # a store the first blessing did not write: refused
    assert bless(["--model", str(moved / "jax"), "--output", str(other / "third"),
                  "--after", str(moved / "first"), *common]) == 2
    assert not (other / "third" / "artifact.json").exists()


def test_cache_key_follows_the_alias(tmp_path, flights_xgboost, flights_jax):
    store = tmp_path / "registry.sqlite"
    with LineageStore(store) as s:
        reg = ModelRegistry(s)
        reg.register("delay", str(flights_xgboost))
        reg.register("delay", str(flights_jax))
        reg.set_alias("delay", "blessed", 1)
    step = parse_pipeline(f"""pipeline: t
steps:
  s: {{job: beam_jobs.score, args: {{features: f, model: "registry:delay@blessed",
       registry: {store}, input: i}}}}
""").steps["s"]
    xgb, jax = read_manifest(flights_xgboost).digest, read_manifest(flights_jax).digest
    assert cache.registered(step, str(tmp_path)) == {"registry:delay@blessed": f"delay/1@{xgb}"}
    with LineageStore(store) as s:
        ModelRegistry(s).set_alias("delay", "blessed", 2)
    assert cache.registered(step, str(tmp_path)) == {"registry:delay@blessed": f"delay/2@{jax}"}
    missing = parse_pipeline(f"""pipeline: t
steps:
  s: {{job: beam_jobs.score, args: {{features: f, model: "registry:delay@serving",
       registry: {store}, input: i}}}}
""").steps["s"]
    with pytest.raises(cache.CacheError, match="model 'delay' has no alias 'serving'"):
        cache.registered(missing, str(tmp_path))
