"""The pipeline file: parsing, the DAG from references, argv, and every SpecError."""
from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.registry import JOBS
from pipelines.spec import SpecError, load_pipeline, parse_pipeline

REPO = Path(__file__).resolve().parents[2]

BASE = """
pipeline: demo
steps:
  features:
    job: beam_jobs.features
    args: {schema: schemas/flights.yaml, input: data/flights}
    raw: [schema, input]
  xgboost:
    job: ray_jobs.xgboost
    args: {features: "${features}", num_boost_round: 5}
"""


def test_flights_pipeline_order_and_dag():
    p = load_pipeline(REPO / "pipelines" / "flights.yaml")
    assert p.name == "flights"
    months = ["2013-10", "2013-11", "2013-12"]
    assert p.order() == ["features", "cooccurrence", "evaluate_vectors", "xgboost", "jax",
                         "tune_xgboost", "tune_jax", "xgboost_weak", "drift[2013-11]",
                         "drift[2013-12]", "bless_xgboost", "bless_tune", "bless_weak",
                         *(f"{step}[{m}]" for step in ("score", "monitor", "evaluate")
                           for m in months), "report"]
    assert p.steps["score[2013-10]"].upstream == ["bless_weak", "features"]
    assert p.steps["evaluate[2013-11]"].upstream == ["score[2013-11]"]
    assert p.steps["cooccurrence"].upstream == []
    serving = {f"{step}[{m}]" for step in ("score", "monitor", "evaluate") for m in months}
    assert p.downstream("features") == {"xgboost", "jax", "tune_xgboost", "tune_jax",
                                        "report", "xgboost_weak", "bless_xgboost",
                                        "bless_tune", "bless_weak", "drift[2013-11]",
                                        "drift[2013-12]", *serving}
    assert p.downstream("cooccurrence") == {"evaluate_vectors", "report"}
    assert p.steps["evaluate_vectors"].upstream == ["cooccurrence"]
    assert p.digest.startswith("sha256:") and len(p.digest) == 71
    assert all(s.job in JOBS for s in p.steps.values())


def test_argv_flags_lists_bools_and_references():
    p = load_pipeline(REPO / "pipelines" / "flights.yaml")
    assert p.steps["cooccurrence"].argv("R") == [
        "--input", "data/sotu/*.txt", "--window", "10", "--min-count", "5", "--ppmi",
        "--svd-dim", "100", "--output", "R/cooccurrence"]
    assert p.steps["tune_jax"].argv("R") == [
        "--job", "jax", "--features", "R/features", "--num-samples", "2",
        "--max-concurrent", "1", "--set", "epochs=1", "--output", "R/tune_jax"]
    assert p.steps["score[2013-11]"].argv("R") == [
        "--features", "R/features", "--model", "registry:flights_delay@blessed",
        "--registry", "R/bless_weak", "--input", "data/flights_serve/period=2013-11",
        "--period", "2013-11", "--output", "R/score@2013-11"]
    assert p.steps["drift[2013-12]"].argv("R")[4:8] == [
        "--against", "data/flights_serve/period=2013-11", "--period", "2013-12"]
    assert p.steps["evaluate[2013-10]"].argv("R")[:2] == ["--predictions", "R/score@2013-10"]
    assert p.steps["evaluate_vectors"].argv("R") == [
        "--vectors", "R/cooccurrence", "--corpus", "data/sotu/*.txt",
        "--output", "R/evaluate_vectors"]
    assert p.steps["report"].argv("R") == ["R", "--output", "R/report"]


def test_order_is_stable_and_topological_not_file_order():
    p = parse_pipeline("""
pipeline: t
steps:
  b: {job: ray_jobs.xgboost, args: {features: "${a}"}}
  c: {job: ray_jobs.jax, args: {features: "${a}"}}
  a: {job: beam_jobs.features, args: {schema: s, input: i}}
""")
    assert p.order() == ["a", "b", "c"]


def test_runs_on_defaults_and_placement():
    p = parse_pipeline(BASE.replace("pipeline: demo", "pipeline: demo\ndefaults: {runs_on: ray}"))
    assert p.steps["xgboost"].runs_on == "ray"
    assert p.steps["features"].runs_on == "local"  # a Ray default does not move Beam steps
    p = parse_pipeline(BASE + "    runs_on: ray:127.0.0.1:6379\n")
    assert p.steps["xgboost"].runs_on == "ray:127.0.0.1:6379"


@pytest.mark.parametrize("text, message", [
    (BASE.replace('"${features}"', '"${featurez}"'),
     "step 'xgboost': field 'args.features': reference to unknown step 'featurez'"),
    (BASE.replace('"${features}"', '"out/${features}"'),
     "step 'xgboost': field 'args.features': bad reference 'out/${features}'"),
    (BASE.replace("ray_jobs.xgboost", "ray_jobs.xgbost"),
     "step 'xgboost': field 'job': unknown job 'ray_jobs.xgbost'"),
    (BASE.replace("num_boost_round", "num_boost_rounds"),
     "step 'xgboost': field 'args.num_boost_rounds': ray_jobs.xgboost has no flag "
     "--num-boost-rounds"),
    (BASE.replace("raw: [schema, input]", "raw: [schema, data]"),
     "step 'features': field 'raw': 'data' is not one of its args"),
    (BASE + "    runs_on: dataflow\n",
     "step 'xgboost': field 'runs_on': ray_jobs.xgboost is not a Beam job"),
    (BASE + "    runs_on: ray:nowhere\n",
     "step 'xgboost': field 'runs_on' must be local, ray, ray:HOST:PORT or dataflow"),
    (BASE + "    retries: 3\n", "step 'xgboost': unknown field 'retries'"),
    (BASE.replace('"${features}"', '"${xgboost}"'),
     "step 'xgboost': field 'args.features': a step cannot read its own output"),
    (BASE.replace("num_boost_round: 5", "num_boost_round: {a: 1}"),
     "step 'xgboost': field 'args.num_boost_round': values are scalars"),
])
def test_spec_errors_name_step_and_field(text, message):
    with pytest.raises(SpecError) as e:
        parse_pipeline(text)
    assert message in str(e.value)


def test_cycle_is_named():
    text = """
pipeline: t
steps:
  a: {job: ray_jobs.xgboost, args: {features: "${c}"}}
  b: {job: ray_jobs.jax, args: {features: "${a}"}}
  c: {job: ray_jobs.tune, args: {job: xgboost, features: "${b}"}}
"""
    with pytest.raises(SpecError) as e:
        parse_pipeline(text)
    message = str(e.value)
    assert "field 'args': references form a cycle: " in message
    for edge in ("a reads c", "c reads b", "b reads a"):
        assert edge in message


def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(SpecError, match="cannot read the pipeline file"):
        load_pipeline(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("pipeline: [unclosed")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_pipeline(bad)
    with pytest.raises(SpecError, match="field 'steps' must map step names"):
        parse_pipeline("pipeline: t\nsteps: {}\n")
