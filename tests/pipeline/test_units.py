"""Selection, placement and the cache's pieces, without running a job."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipelines import cache, placement
from pipelines.runner import RunOptions, selected_steps
from pipelines.spec import load_pipeline, parse_pipeline

REPO = Path(__file__).resolve().parents[2]
FLIGHTS = load_pipeline(REPO / "pipelines" / "flights.yaml")


def test_only_and_from_select_steps():
    assert selected_steps(FLIGHTS, RunOptions(only=("jax",))) == {"jax"}
    months = ("2013-10", "2013-11", "2013-12")
    assert selected_steps(FLIGHTS, RunOptions(start="tune_xgboost")) == {
        "tune_xgboost", "report", "bless_tune", "bless_weak",
        *(f"{step}[{m}]" for step in ("score", "monitor", "evaluate") for m in months)}
    assert selected_steps(FLIGHTS, RunOptions(only=("drift",))) == {
        "drift[2013-11]", "drift[2013-12]"}
    assert selected_steps(FLIGHTS, RunOptions()) == set(FLIGHTS.steps)


def test_placement_flags():
    p = parse_pipeline("""
pipeline: t
steps:
  f: {job: beam_jobs.features, args: {schema: s, input: i}, runs_on: dataflow}
  x: {job: ray_jobs.xgboost, args: {features: "${f}"}, runs_on: ray}
  y: {job: ray_jobs.jax, args: {features: "${f}"}, runs_on: "ray:10.0.0.1:6379"}
""")
    env = {"GOOGLE_CLOUD_PROJECT": "my-proj", "REGION": "europe-west1", "BUCKET": "gs://bkt",
           "RAY_ADDRESS": "127.0.0.1:6380"}
    assert placement.placement_argv(p.steps["f"], env, pipeline="t") == [
        "--runner", "DataflowRunner", "--project", "my-proj", "--region", "europe-west1",
        "--temp_location", "gs://bkt/tmp", "--staging_location", "gs://bkt/staging",
        "--job_name", "t-f", "--sdk_container_image",
        "europe-west1-docker.pkg.dev/my-proj/mlbatch/mlbatch:0.1.0"]  # the image by default
    assert placement.placement_argv(p.steps["x"], env) == ["--address", "127.0.0.1:6380"]
    assert placement.where(p.steps["x"], env) == "ray:127.0.0.1:6380"
    assert placement.placement_argv(p.steps["y"], {}) == ["--address", "10.0.0.1:6379"]
    with pytest.raises(placement.PlacementError,
                       match=r"(?s)step .f.: runs_on: dataflow: .*REGION is not set"):
        placement.placement_argv(p.steps["f"], {"GOOGLE_CLOUD_PROJECT": "my-proj",
                                                "BUCKET": "gs://b"})
    with pytest.raises(placement.PlacementError, match="step 'x': runs_on: ray needs RAY_ADDRESS"):
        placement.placement_argv(p.steps["x"], {})


def test_raw_digest_is_content_not_place(tmp_path):
    a = tmp_path / "a"
    (a / "sub").mkdir(parents=True)
    (a / "one.txt").write_text("1")
    (a / "sub" / "two.txt").write_text("2")
    shutil.copytree(a, tmp_path / "b")
    digest = cache.raw_digest(str(a))
    assert [name for name, _ in digest] == ["0:one.txt", "0:sub/two.txt"]
    assert cache.raw_digest(str(tmp_path / "b")) == digest
    assert cache.raw_digest(str(tmp_path / "b" / "*.txt")) == digest[:1]
    (tmp_path / "b" / "sub" / "two.txt").write_text("3")
    assert cache.raw_digest(str(tmp_path / "b")) != digest
    with pytest.raises(cache.CacheError, match="names no file"):
        cache.raw_digest(str(tmp_path / "nothing" / "*.csv"))


def test_step_key_needs_committed_upstream_and_names_it(tmp_path):
    with pytest.raises(cache.CacheError, match="upstream step 'features' has no committed"):
        cache.step_key(FLIGHTS, FLIGHTS.steps["xgboost"], str(tmp_path))


def test_code_version_covers_the_job_and_shared_folders():
    assert cache.code_version("ray_jobs.xgboost") == cache.code_version("ray_jobs.xgboost")
    assert cache.code_version("ray_jobs.xgboost") != cache.code_version("ray_jobs.jax")
    files = {f for folder in ("ray_jobs/xgboost", "ray_jobs/common", "mlbatch")
             for f, _ in cache._folder_files(folder)}
    assert "ray_jobs/xgboost/driver.py" in files and "mlbatch/storage.py" in files


def test_progress_lines_keep_their_columns_for_any_step_name():
    import io

    from pipelines.progress import Progress
    from pipelines.runner import StepState
    states = [StepState(n, "j", "local", [], status=s, elapsed_s=e, key_figures=k)
              for n, s, e, k in (("features", "done", 17.0, {"rows": 327346}),
                                 ("evaluate_vectors", "running", 178.0, {}))]
    out = io.StringIO()
    Progress(states, out, live=False).start("run")
    lines = out.getvalue().splitlines()[1:]
    assert lines[0].startswith("features         done ")  # padded to the longest name
    assert lines[1].startswith("evaluate_vectors running ")
    assert lines[0].index("done") == lines[1].index("running")
    assert "2:58" in lines[1] and "327,346 rows" in lines[0]
