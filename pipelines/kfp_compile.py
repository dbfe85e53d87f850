"""Compiles a pipeline file to a Kubeflow Pipelines v2 spec (the YAML Vertex AI Pipelines
runs): ``python -m pipelines.kfp_compile pipelines/flights.yaml --output flights.kfp.yaml
[--image IMAGE] [--ray-runtime-env local|pip]``.

Every step becomes one container task of the image (this repository with its pinned
environment, built from requirements.lock) whose command submits the step where it runs:

* Beam steps: the job itself with DataflowRunner flags (``pipelines.remote``): the task
  launches the Dataflow job and waits for it;
* Ray steps (training, Tune): ``ray job submit`` to the ``ray_address`` parameter (the
  cluster's Jobs API, http://HOST:8265), with the image's working directory as the job's
  working_dir;
* other steps (the run report): in the task's own container.

Pipeline parameters: project, region, bucket (gs://; run outputs go to
``BUCKET/runs/<pipeline>/<pipeline job id>/<step>``), data_root (where the pipeline
file's relative raw data paths were uploaded, e.g. ``gsutil -m cp -r data gs://B/src``;
``schemas/`` ships in the image), ray_address, ray_auth_token, service_account, image (the Dataflow
workers' SDK container). A task passes its output URI on as an output parameter; the
tasks reading it take it as an input, so the DAG is exactly the spec's references
(``${RUN}`` readers run after every other task). KFP's own cache is off: it keys on
parameters and URIs, not content (this project's runner caches by content).
"""
from __future__ import annotations

import argparse
import inspect
import logging
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from mlbatch.config import load_yaml
from pipelines import remote
from pipelines.registry import JOBS
from pipelines.spec import Pipeline, SpecError, Step, load_pipeline

LOGGER = logging.getLogger(__name__)

DEFAULT_IMAGE = "us-docker.pkg.dev/PROJECT/mlbatch/mlbatch:latest"
OUTPUT = "output_uri"
PARAMETERS = {  # name -> default (None: required); every one a string
    "project": None, "bucket": None, "data_root": None, "region": "us-central1",
    "ray_address": "", "ray_auth_token": "", "service_account": "", "image": None}
_KIND_PARAMETERS = {"beam": ("project", "region", "bucket", "data_root", "service_account",
                             "image"),
                    "ray": ("bucket", "data_root", "ray_address", "ray_auth_token"),
                    "local": ("bucket", "data_root")}
_RUNS = {"beam": "Dataflow job", "ray": "Ray job (submit)", "local": "in the task"}
_SLOT = re.compile(r"@@([a-z_0-9]+)@@")
# The task's shell: runs the command, drops "--flag=" options left empty by a parameter,
# accepts the job's committed exit statuses, then hands its output URI on.
_SCRIPT = """set -eu
out="$1"; uri="$2"; token="$3"; shift 3
if [ -n "$token" ]; then export RAY_AUTH_MODE=token RAY_AUTH_TOKEN="$token"; fi
for a do shift; case "$a" in --*=) ;; *) set -- "$@" "$a";; esac; done
rc=0; "$@" || rc=$?
case " {ok} " in *" $rc "*) ;; *) exit "$rc";; esac
mkdir -p "$(dirname "$out")"; printf '%s' "$uri" > "$out"
"""


def _slot(name: str) -> str:
    return f"@@{name}@@"


def _run_dir(pipeline: Pipeline) -> str:
    return f"{_slot('bucket')}/runs/{pipeline.name}/{_slot('run_id')}"


def _placeholder(token: str) -> Any:
    """A command token with @@name@@ slots as a v1 component argument."""
    pieces: list[Any] = []
    for i, part in enumerate(_SLOT.split(token)):
        if i % 2:
            pieces.append({"inputValue": part})
        elif part:
            pieces.append(part)
    if len(pieces) <= 1:
        return pieces[0] if pieces else ""
    return {"concat": pieces}


def _resolve_tokens(step: Step, tokens: list[str], run_dir: str) -> list[str]:
    """Upstream outputs as the upstream tasks' output parameters."""
    upstream = {name: f"upstream_{i}" for i, name in enumerate(step.upstream)}
    out = []
    for token in tokens:
        head, _, rest = token.removeprefix(run_dir + "/").partition("/")
        if token.startswith(run_dir + "/") and head in upstream:
            token = _slot(upstream[head]) + (f"/{rest}" if rest else "")
        out.append(token)
    return out


def _command(pipeline: Pipeline, step: Step, runtime_env: str) -> list[str]:
    kind = JOBS[step.job].kind
    run_dir = _run_dir(pipeline)
    if kind == "beam":
        cfg = remote.CloudConfig(project=_slot("project"), region=_slot("region"),
                                 bucket=_slot("bucket"))
        name = remote.dataflow_job_name(pipeline.name, step.name) + "-" + _slot("run_id")
        return [*remote.entrypoint(step, run_dir, data_root=_slot("data_root")),
                *remote.dataflow_flags(cfg, name),
                f"--service_account_email={_slot('service_account')}",
                f"--sdk_container_image={_slot('image')}"]
    if kind == "ray":
        env = remote.runtime_env(runtime_env, Path("."))
        return remote.ray_submit_argv("ray", _slot("ray_address"), step, run_dir, env,
                                      submission_id=f"{pipeline.name}-{step.name}-"
                                                    f"{_slot('run_id')}",
                                      data_root=_slot("data_root"))
    return remote.entrypoint(step, run_dir, data_root=_slot("data_root"))


def component_spec(pipeline: Pipeline, step: Step, image: str, runtime_env: str) -> dict:
    """The step's container component (KFP's component YAML format)."""
    info = JOBS[step.job]
    run_dir = _run_dir(pipeline)
    inputs = [*_KIND_PARAMETERS[info.kind], "run_id",
              *(f"upstream_{i}" for i in range(len(step.upstream)))]
    tokens = _resolve_tokens(step, _command(pipeline, step, runtime_env), run_dir)
    token = _slot("ray_auth_token") if info.kind == "ray" else ""
    ok = " ".join(str(c) for c in sorted(info.ok_exits))
    return {
        "name": step.name,
        "description": f"{step.job} ({info.kind}) -> {info.artifact_type}",
        "inputs": [{"name": n, "type": "String"} for n in inputs],
        "outputs": [{"name": OUTPUT, "type": "String"}],
        "implementation": {"container": {
            "image": image,
            "command": ["sh", "-c", _SCRIPT.replace("{ok}", ok), "mlbatch-step"],
            "args": [{"outputPath": OUTPUT}, _placeholder(f"{run_dir}/{step.name}"),
                     _placeholder(token), *(_placeholder(t) for t in tokens)]}}}


def _pipeline_function(pipeline: Pipeline, image: str, runtime_env: str):
    from kfp import components, dsl

    comps = {name: components.load_component_from_text(yaml.safe_dump(
        component_spec(pipeline, step, image, runtime_env), sort_keys=False))
        for name, step in pipeline.steps.items()}

    defaults = dict(PARAMETERS, image=image)
    names = sorted(defaults, key=lambda n: defaults[n] is not None)  # required ones first

    def body(*values: Any) -> None:  # KFP passes the parameters in signature order
        params = dict(zip(names, values))
        tasks: dict[str, Any] = {}
        for name in pipeline.order():
            step = pipeline.steps[name]
            kwargs = {k: params[k] for k in _KIND_PARAMETERS[JOBS[step.job].kind]}
            kwargs["run_id"] = dsl.PIPELINE_JOB_ID_PLACEHOLDER
            for i, up in enumerate(step.upstream):
                kwargs[f"upstream_{i}"] = tasks[up].outputs[OUTPUT]
            task = comps[name](**kwargs)
            if step.reads_run:
                task.after(*tasks.values())
            task.set_caching_options(False)
            task.set_display_name(name)
            tasks[name] = task

    # KFP reads the pipeline's parameters from the function's signature.
    body.__signature__ = inspect.Signature([inspect.Parameter(
        n, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=str,
        default=inspect.Parameter.empty if defaults[n] is None else defaults[n])
        for n in names])
    body.__annotations__ = {n: str for n in defaults}
    body.__name__ = pipeline.name.replace("-", "_")
    return dsl.pipeline(name=pipeline.name, description=(
        f"{pipeline.name} from {pipeline.path} ({pipeline.digest})"))(body)


def compile_pipeline(pipeline: Pipeline, output: str | Path, *, image: str = DEFAULT_IMAGE,
                     runtime_env: str = "local") -> Path:
    """Writes the KFP v2 pipeline spec YAML of ``pipeline`` to ``output``."""
    from kfp import compiler

    if runtime_env not in ("local", "pip"):
        raise remote.RemoteConfigError(f"--ray-runtime-env must be local or pip, got "
                                       f"{runtime_env!r}")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(_pipeline_function(pipeline, image, runtime_env),
                                package_path=str(output))
    LOGGER.info("compiled %s (%d tasks) to %s", pipeline.path, len(pipeline.steps), output)
    return output


def task_list(spec_yaml: str | Path) -> list[dict]:
    """(task, component, depends on) of a compiled spec, in the spec's order."""
    doc = load_yaml(Path(spec_yaml).read_text(), str(spec_yaml))
    tasks = doc["root"]["dag"]["tasks"]
    return [{"task": name, "display": t.get("taskInfo", {}).get("name"),
             "component": t["componentRef"]["name"],
             "after": sorted(t.get("dependentTasks", []))} for name, t in tasks.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipelines.kfp_compile",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("pipeline", help="the pipeline file (YAML)")
    parser.add_argument("--output", required=True, help="the KFP / Vertex AI spec to write")
    parser.add_argument("--image", default=DEFAULT_IMAGE,
                        help="container image of the tasks (and default Dataflow SDK image)")
    parser.add_argument("--ray-runtime-env", default="local", choices=("local", "pip"),
                        help="Ray jobs' runtime_env: local = working dir only (the cluster "
                             "image has the pinned deps), pip = also requirements.lock")
    args = parser.parse_args(argv)
    try:
        pipeline = load_pipeline(args.pipeline)
        out = compile_pipeline(pipeline, args.output, image=args.image,
                               runtime_env=args.ray_runtime_env)
    except (SpecError, remote.RemoteConfigError) as e:
        sys.stderr.write(f"error: {e}\n")
        return 2
    tasks = task_list(out)
    wt = max(len(t["task"]) for t in tasks)
    wj = max(len(pipeline.steps[t["display"]].job) for t in tasks)
    for t in tasks:
        step = pipeline.steps[t["display"]]
        sys.stdout.write(f"{t['task']:<{wt}}  {step.job:<{wj}}  {_RUNS[JOBS[step.job].kind]:<16}  "
                         f"after {', '.join(t['after']) or '-'}\n")
    sys.stdout.write(f"wrote {out}\n")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    sys.exit(main())
