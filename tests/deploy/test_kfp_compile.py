"""The pipeline compiled to a Kubeflow Pipelines v2 / Vertex AI spec, checked offline
against the pipeline file: tasks, the DAG, parameters, each task's command, content-keyed
caching, retries and resources; parsed by kfp's own PipelineSpec proto and accepted by
the Vertex AI SDK's PipelineJob."""
from __future__ import annotations

import json
import re
import shutil

import pytest
import yaml

from pipelines.kfp_compile import (DEFAULT_RESOURCES, compile_pipeline, content_keys, main,
                                   parse_resources, run_key, task_list)
from pipelines.registry import JOBS
from pipelines.spec import load_pipeline
from tests.conftest import REPO_ROOT

SPEC = REPO_ROOT / "pipelines" / "flights.yaml"
IMAGE = "europe-docker.pkg.dev/my-project/mlbatch/mlbatch:1.0"
OUT_FILE = "{{$.outputs.parameters['output_uri'].output_file}}"


def p(name: str) -> str:
    return "{{$.inputs.parameters['%s']}}" % name


def concat(*parts: str) -> str:
    return '{"Concat": [' + ", ".join(f'"{x}"' for x in parts) + "]}"


def kfp_name(step: str) -> str:
    """KFP's task name: ``tune_xgboost`` -> ``tune-xgboost``, ``score[2013-10]`` ->
    ``score-2013-10`` (the display name keeps the step's)."""
    return re.sub(r"[^a-z0-9]+", "-", step.lower()).strip("-")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """Compiled where the raw data is not readable: no content keys, caching off."""
    tmp = tmp_path_factory.mktemp("kfp")
    out = compile_pipeline(load_pipeline(SPEC), tmp / "f.yaml", image=IMAGE,
                           data_dir=tmp / "no-data")
    return out, yaml.safe_load(out.read_text())


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A copy of the raw data the pipeline file names (small stand-ins: keys hash bytes)."""
    root = tmp_path_factory.mktemp("data_root")
    (root / "data" / "sotu").mkdir(parents=True)
    folders = [("flights_months", "period=2013-01"), *((f, f"period=2013-{m}")
               for f in ("flights_serve", "flights_labels") for m in (10, 11, 12))]
    for folder, period in folders:
        (root / "data" / folder / period).mkdir(parents=True)
        for name in ("flights.csv", "weather.csv", "planes.csv"):
            (root / "data" / folder / period / name).write_text(f"{period} {name}\n1\n")
    for i in range(2):
        (root / "data" / "sotu" / f"s{i}.txt").write_text(f"speech {i}\n")
    return root


def executor(doc, step):
    return doc["deploymentSpec"]["executors"][f"exec-{kfp_name(step)}"]["container"]


def args_of(doc, step):
    return executor(doc, step)["args"]


def job_args(doc, step):
    args = args_of(doc, step)
    return args[args.index("--") + 1:]


def test_tasks_and_dag_are_the_pipeline_files(compiled):
    out, doc = compiled
    pipeline = load_pipeline(SPEC)
    tasks = doc["root"]["dag"]["tasks"]
    assert set(tasks) == {kfp_name(n) for n in pipeline.steps} | {"preflight"}
    for name, step in pipeline.steps.items():
        task = tasks[kfp_name(name)]
        want = ({kfp_name(n) for n in pipeline.steps if n != name} if step.reads_run
                else {kfp_name(n) for n in step.upstream}) | {"preflight"}  # checks first
        assert set(task.get("dependentTasks", [])) == want, name
        assert task["taskInfo"]["name"] == name
        assert task["cachingOptions"] == {}  # no content key here: KFP's cache stays off
        assert task["retryPolicy"]["maxRetryCount"] == 2
        for i, up in enumerate(step.upstream):  # data edges: the upstream's output URI
            edge = task["inputs"]["parameters"][f"upstream_{i}"]["taskOutputParameter"]
            assert edge == {"outputParameterKey": "output_uri", "producerTask": kfp_name(up)}
        assert executor(doc, name)["command"] == ["python", "-m", "pipelines.remote_task"]
    assert [t["task"] for t in task_list(out)] == sorted(
        [*(kfp_name(n) for n in pipeline.steps), "preflight"])
    assert doc["pipelineInfo"]["name"] == "flights"
    assert tasks["preflight"].get("dependentTasks") is None
    assert tasks["preflight"]["cachingOptions"] == {}  # the cluster is checked every run
    assert executor(doc, "preflight")["args"] == [
        "preflight", concat("--ray-address=", p("ray_address")),
        concat("--dataflow-options=", p("dataflow_options")),
        concat("--ray-token-secret=", p("ray_auth_token_secret"))]


def test_pipeline_parameters_and_no_token_anywhere(compiled):
    out, doc = compiled
    params = doc["root"]["inputDefinitions"]["parameters"]
    # ray_address is required: a run cannot start without it (it used to fail at its
    # first Ray task, after the Dataflow work)
    assert {n for n, v in params.items() if not v.get("isOptional")} == {
        "project", "bucket", "data_root", "ray_address"}
    assert {n: v["defaultValue"] for n, v in params.items() if v.get("isOptional")} == {
        "region": "us-central1", "ray_auth_token_secret": "", "service_account": "",
        "image": IMAGE, "dataflow_options": ""}
    assert all(v["parameterType"] == "STRING" for v in params.values())
    assert "RAY_AUTH_TOKEN" not in out.read_text() and "ray_auth_token'" not in out.read_text()


def test_beam_steps_launch_dataflow_jobs(compiled):
    _, doc = compiled
    run = concat(p("bucket"), "/runs/flights/", p("run_id"))
    out = concat(p("bucket"), "/runs/flights/", p("run_id"), "/features")
    args = args_of(doc, "features")
    assert args[:args.index("--")] == [
        "--step=features", "--kind=beam",
        concat("--output=", p("bucket"), "/runs/flights/", p("run_id"), "/features"),
        "--ok-exits=0",
        concat("--lineage-dir=", p("bucket"), "/runs/flights/", p("run_id"), "/_lineage"),
        "--pipeline=flights", concat("--run=flights@", p("run_id")),
        "--job=beam_jobs.features", concat("--cache-key=", p("cache_key")),
        '--params-json={"input": "data/flights_months", "periods": "2013-01..2013-09", '
        '"schema": "schemas/flights.yaml"}',
        concat("--dataflow-options=", p("dataflow_options")),
        "--output-uri-file", OUT_FILE]
    assert job_args(doc, "features") == [
        "python", "-m", "beam_jobs.features",
        "--schema", "schemas/flights.yaml",  # shipped in the image, read by the launcher
        "--input", concat(p("data_root"), "/data/flights_months"),
        "--periods", "2013-01..2013-09", "--output", out,
        "--runner", "DataflowRunner", "--project", p("project"), "--region", p("region"),
        "--temp_location", concat(p("bucket"), "/tmp"),
        "--staging_location", concat(p("bucket"), "/staging"),
        "--job_name", concat("flights-features-", p("run_id")),
        concat("--service_account_email=", p("service_account")),
        concat("--sdk_container_image=", p("image"))]
    score = job_args(doc, "score[2013-11]")
    assert score[score.index("--input") + 1] == concat(p("data_root"),
                                                       "/data/flights_serve/period=2013-11")
    assert score[score.index("--registry") + 1] == p("upstream_0")  # bless_weak's store
    assert job_args(doc, "evaluate[2013-12]")[3:5] == ["--predictions", p("upstream_0")]
    assert run in job_args(doc, "report")  # the report reads the run directory
    evaluate = job_args(doc, "evaluate_vectors")  # runs in its task: no Dataflow flags
    assert evaluate[evaluate.index("--corpus") + 1] == concat(p("data_root"),
                                                              "/data/sotu/*.txt")
    assert evaluate[evaluate.index("--vectors") + 1] == p("upstream_0")
    assert "DataflowRunner" not in evaluate
    for step in ("cooccurrence", "score[2013-10]", "monitor[2013-10]", "drift[2013-12]"):
        assert "DataflowRunner" in job_args(doc, step), step
    # exit 3 (breach) is a committed run
    assert "--ok-exits=0 3" in args_of(doc, "monitor[2013-10]")
    assert executor(doc, "monitor[2013-10]")["image"] == IMAGE


def test_ray_steps_are_ray_jobs_with_attempt_ids_and_a_secret_reference(compiled):
    _, doc = compiled
    pipeline = load_pipeline(SPEC)
    out = concat(p("bucket"), "/runs/flights/", p("run_id"), "/xgboost")
    args = args_of(doc, "xgboost")
    flags = args[:args.index("--")]
    assert flags[1] == "--kind=ray"
    assert concat("--ray-address=", p("ray_address")) in flags
    assert concat("--submission-id=flights-xgboost-", p("run_id")) in flags  # + -attempt-N
    assert concat("--ray-token-secret=", p("ray_auth_token_secret")) in flags
    env = next(f for f in flags if f.startswith("--runtime-env-json="))
    assert json.loads(env.split("=", 1)[1])["working_dir"] == "."
    assert job_args(doc, "xgboost") == [
        "python", "-m", "ray_jobs.xgboost", "--features", p("upstream_0"),
        "--num-boost-round", "100", "--num-actors", "2", "--cpus-per-actor", "1",
        "--output", out]
    for name, step in pipeline.steps.items():
        if JOBS[step.job].kind == "ray":
            assert "--kind=ray" in args_of(doc, name), name


def test_resources_per_task_and_overrides(tmp_path):
    step, res = parse_resources("report=cpu:8,memory:32G,accelerator:NVIDIA_TESLA_T4:2")
    out = compile_pipeline(load_pipeline(SPEC), tmp_path / "f.yaml", image=IMAGE,
                           resources={step: res})
    doc = yaml.safe_load(out.read_text())
    assert executor(doc, "features")["resources"]["resourceMemoryRequest"] == (
        DEFAULT_RESOURCES["beam"].memory)
    report = executor(doc, "report")["resources"]
    assert (report["resourceCpuLimit"], report["resourceMemoryLimit"]) == ("8", "32G")
    assert report["accelerator"]["resourceType"] == "NVIDIA_TESLA_T4"
    assert report["accelerator"]["resourceCount"] == "2"


def _keys_of(doc):
    tasks = doc["root"]["dag"]["tasks"]
    return {n: t["inputs"]["parameters"]["cache_key"]["runtimeValue"]["constant"]
            for n, t in tasks.items() if n != "preflight"}


def test_caching_is_keyed_by_content(data_dir, tmp_path):
    pipeline = load_pipeline(SPEC)
    first = compile_pipeline(pipeline, tmp_path / "1.yaml", data_dir=data_dir)
    copy = shutil.copytree(data_dir, tmp_path / "elsewhere")  # same bytes, other place
    second = compile_pipeline(pipeline, tmp_path / "2.yaml", data_dir=copy)
    assert first.read_text() == second.read_text()  # same content -> same spec, same keys
    doc = yaml.safe_load(first.read_text())
    keys = _keys_of(doc)
    assert all(len(k) == 64 for k in keys.values())
    assert len(set(keys.values())) == len(keys)  # one per step
    assert all(t["cachingOptions"] == {"enableCache": True}
               for n, t in doc["root"]["dag"]["tasks"].items() if n != "preflight")
    rkey = run_key(content_keys(pipeline, data_dir))
    assert concat("--output=", p("bucket"), f"/runs/flights/{rkey}/features") in (
        args_of(doc, "features"))  # the run directory is content-addressed too
    assert "run_id" not in doc["root"]["dag"]["tasks"]["features"]["inputs"]["parameters"]

    (copy / "data" / "sotu" / "s1.txt").write_text("speech one, edited\n")
    changed = _keys_of(yaml.safe_load(compile_pipeline(
        pipeline, tmp_path / "3.yaml", data_dir=copy).read_text()))
    assert {n for n in keys if keys[n] != changed[n]} == {
        "cooccurrence", "evaluate-vectors", "report"}  # the edited corpus and downstream
    (copy / "data" / "sotu" / "s1.txt").unlink()
    (copy / "data" / "sotu" / "s0.txt").unlink()  # nothing matches: no key, caching off
    assert content_keys(pipeline, copy)["cooccurrence"] is None
    assert content_keys(pipeline, copy)["features"] == content_keys(pipeline, data_dir)[
        "features"]
    assert run_key(content_keys(pipeline, copy)) is None


def test_the_spec_is_kfps_proto_and_vertex_accepts_it(compiled):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2
    out, doc = compiled
    spec = json_format.ParseDict(doc, pipeline_spec_pb2.PipelineSpec())
    assert sorted(spec.root.dag.tasks) == sorted(
        [*(kfp_name(n) for n in load_pipeline(SPEC).steps), "preflight"])
    values = {"project": "my-project", "bucket": "gs://b", "data_root": "gs://b/src",
              "ray_address": "http://10.0.0.2:8265"}
    job = aiplatform.PipelineJob(display_name="flights", template_path=str(out),
                                 pipeline_root="gs://b/root", parameter_values=values,
                                 project="my-project", location="us-central1",
                                 credentials=AnonymousCredentials())
    assert dict(job._gca_resource.runtime_config.parameter_values)["ray_address"] == (
        "http://10.0.0.2:8265")


@pytest.mark.parametrize("extra, message", [
    (["--resources", "nope=cpu:1,memory:1G"], "--resources names no step of 'flights': nope"),
    (["--resources", "report=cpu:1"], "needs STEP=cpu:N,memory:SIZE"),
    (["--max_num_workers", "x"], "invalid int value: 'x'"),
    (["--region", "us-east1"], "--region is set by the launcher"),
])
def test_cli_errors_name_the_problem(tmp_path, capsys, extra, message):
    assert main([str(SPEC), "--output", str(tmp_path / "o.yaml"), *extra]) == 2
    assert message in capsys.readouterr().err


def test_cli_bad_pipeline(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("pipeline: x\nsteps:\n  a: {job: ray_jobs.xgboost, args: {features: "
                   "'${nope}'}}\n")
    assert main([str(bad), "--output", str(tmp_path / "o.yaml")]) == 2
    assert "reference to unknown step 'nope'" in capsys.readouterr().err
