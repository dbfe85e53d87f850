"""Compiles a pipeline file to a Kubeflow Pipelines v2 spec (the YAML Vertex AI Pipelines
runs): ``python -m pipelines.kfp_compile pipelines/flights.yaml --output flights.kfp.yaml
[--image IMAGE] [--ray-runtime-env local|pip] [--data-dir DIR] [--resources STEP=SPEC]
[Beam/Dataflow flags]``.

Every step becomes one container task of the image (this repository with its pinned
environment, built from requirements.lock) running ``pipelines.remote_task``, which
launches the step where it runs, waits, and is safe to retry and to cancel:

* Beam steps: the job itself with DataflowRunner flags (``pipelines.remote``): the task
  launches the Dataflow job and waits for it (a cancelled task cancels the job);
* Ray steps (training, Tune): a Ray job (``BASE-attempt-N``) on the ``ray_address``
  cluster (its Jobs API, http://HOST:8265; required when the pipeline has Ray steps),
  with the image's working directory as the job's working_dir;
* other steps (the run report): in the task's own container.

All of them run after ``preflight``, which checks the Dataflow options and the Ray
cluster (address, token) before any step.

Pipeline parameters: project, region, bucket (gs://), data_root (where the pipeline
file's relative raw data paths were uploaded, e.g. ``gsutil -m cp -r data gs://B/src``;
``schemas/`` ships in the image), ray_address, ray_auth_token_secret (a Secret Manager
version holding the Ray token, never the token), service_account, image (the Dataflow
workers' SDK container), dataflow_options (more Beam/Dataflow flags; default: the
compile-time ones). A task passes its output URI on as an output parameter; the tasks
reading it take it as an input, so the DAG is exactly the spec's references (``${RUN}``
readers run after every other task).

Caching is content-addressed: each step's key (``content_keys``: the job's code, its
arguments, the bytes of its raw inputs under --data-dir and of the shipped schemas, the
lock, its upstream steps' keys) is a task input, and the run directory is
``BUCKET/runs/<pipeline>/<key of all steps>``, so KFP's cache (inputs + component) hits
exactly when the content is the same. A raw input that cannot be read here (gs://, or
missing under --data-dir) has no key: caching is then off and the run directory is
``BUCKET/runs/<pipeline>/<pipeline job id>``.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import inspect
import json
import logging
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from mlbatch import logs
from mlbatch.config import load_yaml
from pipelines import cache, remote
from pipelines.periods import output_dir
from pipelines.registry import JOBS
from pipelines.spec import RUN_REF, Pipeline, SpecError, Step, load_pipeline

LOGGER = logging.getLogger(__name__)

DEFAULT_IMAGE = remote.default_image("PROJECT", "us-central1")
OUTPUT = "output_uri"
PARAMETERS = {  # name -> default (None: required); every one a string
    "project": None, "bucket": None, "data_root": None, "region": "us-central1",
    "ray_address": None, "ray_auth_token_secret": "", "service_account": "", "image": None,
    "dataflow_options": ""}
_KIND_PARAMETERS = {"beam": ("project", "region", "bucket", "data_root", "service_account",
                             "image", "dataflow_options"),
                    "ray": ("bucket", "data_root", "ray_address", "ray_auth_token_secret"),
                    "local": ("bucket", "data_root")}
_RUNS = {"beam": "Dataflow job", "ray": "Ray job (submit)", "local": "in the task"}
_SLOT = re.compile(r"@@([a-z_0-9]+)@@")
_OUTPUT_FILE = "\0output-file"  # the output parameter's file, in a component's args
RETRIES = 2  # each task; a retry finds a committed output done, or takes a new attempt id


@dataclasses.dataclass(frozen=True)
class Resources:
    """A task's container requests (= limits): CPUs, memory, an optional accelerator."""
    cpu: str
    memory: str
    accelerator: str | None = None  # e.g. NVIDIA_TESLA_T4
    accelerator_count: int = 1


# Launchers wait (Dataflow: the launcher also builds the graph, tf.Transform's included);
# in-task steps (the vectors' evaluation, the report) do the work themselves.
DEFAULT_RESOURCES = {"beam": Resources("2", "8G"), "ray": Resources("1", "2G"),
                     "local": Resources("4", "16G")}


def parse_resources(spec: str) -> tuple[str, Resources]:
    """``STEP=cpu:4,memory:16G[,accelerator:NVIDIA_TESLA_T4[:2]]`` -> (step, Resources)."""
    step, _, fields = spec.partition("=")
    values: dict[str, Any] = {}
    for item in filter(None, fields.split(",")):
        key, _, value = item.partition(":")
        if key == "accelerator":
            kind, _, count = value.partition(":")
            values.update(accelerator=kind, accelerator_count=int(count or 1))
        elif key in ("cpu", "memory") and value:
            values[key] = value
        else:
            raise remote.RemoteConfigError(f"--resources {spec!r}: {item!r} is not cpu:N, "
                                           "memory:SIZE or accelerator:TYPE[:COUNT]")
    if not step or not {"cpu", "memory"} <= set(values):
        raise remote.RemoteConfigError(f"--resources {spec!r}: needs STEP=cpu:N,memory:SIZE")
    return step, Resources(**values)


# --- content keys ----------------------------------------------------------------------
def _file_digest(value: str, data_dir: Path) -> list[list[str]] | None:
    """The raw digest of a raw value read here (None: not readable here)."""
    if not remote._is_relative(value):
        return None
    base = remote.REPO_ROOT if value.startswith(remote.SHIPPED) else data_dir
    try:
        return cache.raw_digest(str(base / value))
    except cache.CacheError:
        return None


def _lock_digest() -> str:
    return hashlib.sha256(remote.LOCK_FILE.read_bytes()).hexdigest()


def content_keys(pipeline: Pipeline, data_dir: str | Path = ".") -> dict[str, str | None]:
    """Each step's content key (None: an input's content is unknown here, so is every
    downstream step's): its job's code, its arguments, its raw inputs' and shipped files'
    bytes, the lock, its upstream steps' keys."""
    data_dir, lock, keys = Path(data_dir).resolve(), _lock_digest(), {}
    for name in pipeline.order():
        step = pipeline.steps[name]
        ups = ([n for n in pipeline.steps if n != name] if step.reads_run
               else list(step.upstream))
        raw = {k: [_file_digest(str(v), data_dir) for v in
                   (step.args[k] if isinstance(step.args[k], list) else [step.args[k]])]
               for k in step.raw}
        if any(keys[u] is None for u in ups) or any(None in v for v in raw.values()):
            keys[name] = None
            continue
        params = {k: v for k, v in step.args.items()
                  if k not in step.raw and v != "${" + RUN_REF + "}"}
        parts = {"job": step.job, "code": cache.code_version(step.job), "params": params,
                 "raw": raw, "lock": lock, "upstream": {u: keys[u] for u in ups}}
        keys[name] = hashlib.sha256(cache.canonical(parts).encode()).hexdigest()
    return keys


def run_key(keys: dict[str, str | None]) -> str | None:
    """The run directory's name for these step keys (None: some content unknown)."""
    if any(k is None for k in keys.values()):
        return None
    return "c" + hashlib.sha256(cache.canonical(keys).encode()).hexdigest()[:20]


# --- components --------------------------------------------------------------------------
def _slot(name: str) -> str:
    return f"@@{name}@@"


def _run_dir(pipeline: Pipeline, key: str | None) -> str:
    return f"{_slot('bucket')}/runs/{pipeline.name}/{key or _slot('run_id')}"


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
    upstream = {output_dir(name): f"upstream_{i}" for i, name in enumerate(step.upstream)}
    out = []
    for token in tokens:
        head, _, rest = token.removeprefix(run_dir + "/").partition("/")
        if token.startswith(run_dir + "/") and head in upstream:
            token = _slot(upstream[head]) + (f"/{rest}" if rest else "")
        out.append(token)
    return out


def _job_command(pipeline: Pipeline, step: Step, run_dir: str, suffix: str) -> list[str]:
    """The step's own command; a Beam step's with its DataflowRunner flags."""
    command = remote.entrypoint(step, run_dir, data_root=_slot("data_root"))
    if JOBS[step.job].kind != "beam":
        return command
    cfg = remote.CloudConfig(project=_slot("project"), region=_slot("region"),
                             bucket=_slot("bucket"), sdk_container_image=remote.SDIST)
    return [*command, *remote.dataflow_flags(
        cfg, f"{remote.dataflow_job_name(pipeline.name, step.name)}-{suffix}"),
        f"--service_account_email={_slot('service_account')}",
        f"--sdk_container_image={_slot('image')}"]


def _task_flags(pipeline: Pipeline, step: Step, run_dir: str, rkey: str | None,
                runtime_env: str, suffix: str) -> list[str]:
    """pipelines.remote_task's own flags for the step."""
    info = JOBS[step.job]
    flags = [f"--step={step.name}", f"--kind={info.kind}", f"--output={run_dir}/{step.out}",
             f"--ok-exits={' '.join(str(c) for c in sorted(info.ok_exits))}",
             f"--lineage-dir={run_dir}/_lineage", f"--pipeline={pipeline.name}",
             f"--run={pipeline.name}@{rkey or _slot('run_id')}", f"--job={step.job}",
             f"--cache-key={_slot('cache_key')}",
             f"--params-json={json.dumps(step.args, sort_keys=True)}",
             *(f"--input={_slot(f'upstream_{i}')}" for i in range(len(step.upstream)))]
    if info.kind == "beam":
        flags.append(f"--dataflow-options={_slot('dataflow_options')}")
    elif info.kind == "ray":
        env = remote.runtime_env(runtime_env, Path("."))
        flags += [f"--ray-address={_slot('ray_address')}",
                  f"--submission-id={pipeline.name}-{step.name}-{suffix}",
                  f"--runtime-env-json={json.dumps(env, sort_keys=True)}",
                  f"--ray-token-secret={_slot('ray_auth_token_secret')}"]
    return flags


def component_spec(pipeline: Pipeline, step: Step, image: str, runtime_env: str,
                   keys: dict[str, str | None]) -> dict:
    """The step's container component (KFP's component YAML format)."""
    info = JOBS[step.job]
    rkey = run_key(keys)
    run_dir = _run_dir(pipeline, rkey)
    suffix = (keys[step.name] or "")[:12] if rkey else _slot("run_id")
    inputs = [*_KIND_PARAMETERS[info.kind], *(() if rkey else ("run_id",)), "cache_key",
              *(f"upstream_{i}" for i in range(len(step.upstream)))]
    tokens = _resolve_tokens(step, [
        "python", "-m", "pipelines.remote_task",
        *_task_flags(pipeline, step, run_dir, rkey, runtime_env, suffix),
        "--output-uri-file", _OUTPUT_FILE, "--",
        *_job_command(pipeline, step, run_dir, suffix)], run_dir)
    args = [{"outputPath": OUTPUT} if t == _OUTPUT_FILE else _placeholder(t) for t in tokens]
    return {
        "name": step.name,
        "description": f"{step.job} ({info.kind}) -> {info.artifact_type}",
        "inputs": [{"name": n, "type": "String"} for n in inputs],
        "outputs": [{"name": OUTPUT, "type": "String"}],
        "implementation": {"container": {"image": image, "command": args[:3],
                                         "args": args[3:]}}}


PREFLIGHT = "preflight"


def preflight_spec(image: str) -> dict:
    """The run's first task: the Dataflow options and the Ray cluster (address, token)
    checked before any step (``pipelines.remote_task preflight``)."""
    names = ("ray_address", "ray_auth_token_secret", "dataflow_options")
    return {"name": PREFLIGHT, "description": "checks the run's settings before any step",
            "inputs": [{"name": n, "type": "String"} for n in names],
            "implementation": {"container": {
                "image": image, "command": ["python", "-m", "pipelines.remote_task"],
                "args": [PREFLIGHT, *(_placeholder(f"--{n.replace('_', '-')}={_slot(n)}")
                                      for n in ("ray_address", "dataflow_options")),
                         _placeholder(f"--ray-token-secret={_slot('ray_auth_token_secret')}")]}}}


def _configure(task: Any, key: str | None, resources: Resources) -> None:
    """Caching (on when the content key is known), retries and resource requests."""
    task.set_caching_options(key is not None)
    task.set_retry(num_retries=RETRIES, backoff_duration="60s", backoff_factor=2.0)
    task.set_cpu_request(resources.cpu).set_cpu_limit(resources.cpu)
    task.set_memory_request(resources.memory).set_memory_limit(resources.memory)
    if resources.accelerator:
        task.set_accelerator_type(resources.accelerator)
        task.set_accelerator_limit(resources.accelerator_count)


def _pipeline_function(pipeline: Pipeline, image: str, runtime_env: str,
                       keys: dict[str, str | None], resources: dict[str, Resources],
                       dataflow_options: str):
    from kfp import components, dsl

    comps = {name: components.load_component_from_text(yaml.safe_dump(
        component_spec(pipeline, step, image, runtime_env, keys), sort_keys=False))
        for name, step in pipeline.steps.items()}
    rkey = run_key(keys)
    has_ray = any(JOBS[s.job].kind == "ray" for s in pipeline.steps.values())
    defaults = dict(PARAMETERS, image=image, dataflow_options=dataflow_options,
                    ray_address=None if has_ray else "")
    names = sorted(defaults, key=lambda n: defaults[n] is not None)  # required ones first

    check = components.load_component_from_text(yaml.safe_dump(preflight_spec(image),
                                                                sort_keys=False))

    def body(*values: Any) -> None:  # KFP passes the parameters in signature order
        params = dict(zip(names, values))
        first = check(**{k: params[k] for k in ("ray_address", "ray_auth_token_secret",
                                                "dataflow_options")})
        first.set_caching_options(False)  # the cluster and the token are checked each run
        first.set_display_name(PREFLIGHT)
        tasks: dict[str, Any] = {}
        for name in pipeline.order():
            step = pipeline.steps[name]
            kind = JOBS[step.job].kind
            kwargs = {k: params[k] for k in _KIND_PARAMETERS[kind]}
            kwargs["cache_key"] = keys[name] if rkey else ""
            if not rkey:
                kwargs["run_id"] = dsl.PIPELINE_JOB_ID_PLACEHOLDER
            for i, up in enumerate(step.upstream):
                kwargs[f"upstream_{i}"] = tasks[up].outputs[OUTPUT]
            task = comps[name](**kwargs)
            task.after(first, *(tasks.values() if step.reads_run else ()))
            _configure(task, keys[name] if rkey else None,
                       resources.get(name, DEFAULT_RESOURCES[kind]))
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
                     runtime_env: str = "local", data_dir: str | Path = ".",
                     resources: dict[str, Resources] | None = None,
                     dataflow_options: list[str] | None = None) -> Path:
    """Writes the KFP v2 pipeline spec YAML of ``pipeline`` to ``output``."""
    from kfp import compiler

    if runtime_env not in ("local", "pip"):
        raise remote.RemoteConfigError(f"--ray-runtime-env must be local or pip, got "
                                       f"{runtime_env!r}")
    unknown = sorted(set(resources or {}) - set(pipeline.steps))
    if unknown:
        raise remote.RemoteConfigError(f"--resources names no step of {pipeline.name!r}: "
                                       f"{', '.join(unknown)}")
    problems = remote.dataflow_option_problems(dataflow_options or [])
    if problems:
        raise remote.RemoteConfigError("Dataflow options: " + "; ".join(problems))
    keys = content_keys(pipeline, data_dir)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(_pipeline_function(
        pipeline, image, runtime_env, keys, resources or {},
        " ".join(dataflow_options or [])), package_path=str(output))
    LOGGER.info("compiled %s (%d tasks, caching %s) to %s", pipeline.path,
                len(pipeline.steps), "on" if run_key(keys) else "off", output)
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
    parser.add_argument("--data-dir", default=".",
                        help="where the pipeline file's relative raw paths are read for the "
                             "content keys (the data uploaded to data_root)")
    parser.add_argument("--resources", action="append", default=[], metavar="STEP=SPEC",
                        help="a task's requests: cpu:N,memory:SIZE[,accelerator:TYPE[:N]]")
    args, dataflow_options = parser.parse_known_args(argv)
    try:
        pipeline = load_pipeline(args.pipeline)
        out = compile_pipeline(pipeline, args.output, image=args.image,
                               runtime_env=args.ray_runtime_env, data_dir=args.data_dir,
                               resources=dict(map(parse_resources, args.resources)),
                               dataflow_options=dataflow_options)
    except (SpecError, remote.RemoteConfigError) as e:
        sys.stderr.write(f"error: {e}\n")
        return 2
    tasks = [t for t in task_list(out) if t["display"] in pipeline.steps]
    wt = max(len(t["task"]) for t in tasks)
    wj = max(len(pipeline.steps[t["display"]].job) for t in tasks)
    for t in tasks:
        step = pipeline.steps[t["display"]]
        sys.stdout.write(f"{t['task']:<{wt}}  {step.job:<{wj}}  {_RUNS[JOBS[step.job].kind]:<16}  "
                         f"after {', '.join(a for a in t['after'] if a != PREFLIGHT) or '-'}\n")
    keys = content_keys(pipeline, args.data_dir)
    sys.stdout.write(f"caching: {'on, run directory ' + run_key(keys) if run_key(keys) else 'off'}"
                     f" ({', '.join(n for n, k in keys.items() if k is None) or 'every key known'}"
                     f"{' without a content key' if None in keys.values() else ''})\n")
    sys.stdout.write(f"wrote {out}\n")
    return 0


if __name__ == "__main__":
    logs.setup()
    sys.exit(main())
