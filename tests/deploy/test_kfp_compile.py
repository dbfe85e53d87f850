"""The pipeline compiled to a Kubeflow Pipelines v2 / Vertex AI spec, checked offline
against the pipeline file: tasks, the DAG, parameters and each task's command."""
from __future__ import annotations

import pytest
import yaml

from pipelines.kfp_compile import compile_pipeline, main, task_list
from pipelines.registry import JOBS
from pipelines.spec import load_pipeline
from tests.conftest import REPO_ROOT

SPEC = REPO_ROOT / "pipelines" / "flights.yaml"
IMAGE = "europe-docker.pkg.dev/my-project/mlbatch/mlbatch:1.0"


def p(name: str) -> str:
    return "{{$.inputs.parameters['%s']}}" % name


def concat(*parts: str) -> str:
    return '{"Concat": [' + ", ".join(f'"{x}"' for x in parts) + "]}"


def kfp_name(step: str) -> str:
    return step.replace("_", "-")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    out = compile_pipeline(load_pipeline(SPEC), tmp_path_factory.mktemp("kfp") / "f.yaml",
                           image=IMAGE)
    return out, yaml.safe_load(out.read_text())


def args_of(doc, step):
    return doc["deploymentSpec"]["executors"][f"exec-{kfp_name(step)}"]["container"]["args"]


def test_tasks_and_dag_are_the_pipeline_files(compiled):
    out, doc = compiled
    pipeline = load_pipeline(SPEC)
    tasks = doc["root"]["dag"]["tasks"]
    assert set(tasks) == {kfp_name(n) for n in pipeline.steps}
    for name, step in pipeline.steps.items():
        task = tasks[kfp_name(name)]
        want = ({kfp_name(n) for n in pipeline.steps if n != name} if step.reads_run
                else {kfp_name(n) for n in step.upstream})
        assert set(task.get("dependentTasks", [])) == want, name
        assert task["taskInfo"]["name"] == name
        assert task["cachingOptions"] == {}  # KFP's URI/parameter cache is off
        for i, up in enumerate(step.upstream):  # data edges: the upstream's output URI
            edge = task["inputs"]["parameters"][f"upstream_{i}"]["taskOutputParameter"]
            assert edge == {"outputParameterKey": "output_uri", "producerTask": kfp_name(up)}
    assert [t["task"] for t in task_list(out)] == sorted(kfp_name(n) for n in pipeline.steps)
    assert doc["pipelineInfo"]["name"] == "flights"


def test_pipeline_parameters(compiled):
    _, doc = compiled
    params = doc["root"]["inputDefinitions"]["parameters"]
    assert {n for n, v in params.items() if not v.get("isOptional")} == {
        "project", "bucket", "data_root"}
    assert {n: v["defaultValue"] for n, v in params.items() if v.get("isOptional")} == {
        "region": "us-central1", "ray_address": "", "ray_auth_token": "",
        "service_account": "", "image": IMAGE}
    assert all(v["parameterType"] == "STRING" for v in params.values())


def test_beam_steps_launch_dataflow_jobs(compiled):
    _, doc = compiled
    run = concat(p("bucket"), "/runs/flights/", p("run_id"))
    out = concat(p("bucket"), "/runs/flights/", p("run_id"), "/features")
    assert args_of(doc, "features") == [
        "{{$.outputs.parameters['output_uri'].output_file}}", out, "",
        "python", "-m", "beam_jobs.features",
        "--schema", "schemas/flights.yaml",  # shipped in the image, read by the launcher
        "--input", concat(p("data_root"), "/data/flights"), "--output", out,
        "--runner", "DataflowRunner", "--project", p("project"), "--region", p("region"),
        "--temp_location", concat(p("bucket"), "/tmp"),
        "--staging_location", concat(p("bucket"), "/staging"),
        "--job_name", concat("flights-features-", p("run_id")),
        concat("--service_account_email=", p("service_account")),
        concat("--sdk_container_image=", p("image"))]
    score = args_of(doc, "score")
    assert score[score.index("--model") + 1] == concat(p("upstream_1"), "/best")
    assert run in args_of(doc, "report")  # the report reads the run directory
    evaluate = args_of(doc, "evaluate_vectors")  # runs in its task: no Dataflow flags
    assert evaluate[evaluate.index("--corpus") + 1] == concat(p("data_root"), "/data/sotu/*.txt")
    assert evaluate[evaluate.index("--vectors") + 1] == p("upstream_0")
    assert "DataflowRunner" not in evaluate
    for step in ("cooccurrence", "score", "monitor"):
        assert "DataflowRunner" in args_of(doc, step), step
    monitor = doc["deploymentSpec"]["executors"]["exec-monitor"]["container"]
    assert 'case " 0 3 " in' in monitor["command"][2]  # exit 3 (breach) is a committed run
    assert monitor["image"] == IMAGE


def test_ray_steps_submit_ray_jobs_to_the_address_parameter(compiled):
    _, doc = compiled
    pipeline = load_pipeline(SPEC)
    out = concat(p("bucket"), "/runs/flights/", p("run_id"), "/xgboost")
    args = args_of(doc, "xgboost")
    assert args[:4] == ["{{$.outputs.parameters['output_uri'].output_file}}", out,
                        p("ray_auth_token"), "ray"]
    assert args[4:7] == ["job", "submit", "--address"] and args[7] == p("ray_address")
    assert yaml.safe_load(args[args.index("--runtime-env-json") + 1])["working_dir"] == "."
    assert args[args.index("--submission-id") + 1] == concat("flights-xgboost-", p("run_id"))
    assert args[args.index("--") + 1:] == [
        "python", "-m", "ray_jobs.xgboost", "--features", p("upstream_0"),
        "--num-boost-round", "100", "--num-actors", "2", "--cpus-per-actor", "1",
        "--output", out]
    for name, step in pipeline.steps.items():
        if JOBS[step.job].kind == "ray":
            assert args_of(doc, name)[3:6] == ["ray", "job", "submit"], name


def test_cli_errors_name_the_problem(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("pipeline: x\nsteps:\n  a: {job: ray_jobs.xgboost, args: {features: "
                   "'${nope}'}}\n")
    assert main([str(bad), "--output", str(tmp_path / "o.yaml")]) == 2
    assert "reference to unknown step 'nope'" in capsys.readouterr().err
