"""Where a step runs: the flags the runner adds to a job's command line for its ``runs_on``.

* ``local``: nothing (Beam's in-process runner; a Ray job starts its own local Ray);
* ``ray``: ``--address`` from ``RAY_ADDRESS``; ``ray:HOST:PORT``: ``--address HOST:PORT``;
* ``dataflow``: Beam's DataflowRunner flags from the environment, read and checked by
  ``pipelines.remote.CloudConfig`` (GOOGLE_CLOUD_PROJECT, REGION, BUCKET, optional
  SERVICE_ACCOUNT, DATAFLOW_OPTIONS ...), the same flags ``scripts/dataflow_submit.py``
  passes. A step whose raw inputs are local is refused (Dataflow's workers read gs://
  only); the job itself refuses a local --input or --output (beam_jobs.common.options).
"""
from __future__ import annotations

import os

from pipelines import remote
from pipelines.spec import Step
from mlbatch.errors import PlacementError


def where(step: Step, env: dict[str, str] | None = None) -> str:
    """run.json's ``runs_on``: local | ray:<address> | dataflow."""
    if step.runs_on == "ray":
        return f"ray:{_ray_address(step, env)}"
    if step.runs_on == "dataflow":
        local = remote.local_raw_inputs([step], None)
        if local:
            raise PlacementError(f"{local[0]}: runs_on: dataflow needs gs:// inputs "
                                 "(Dataflow workers cannot read this machine's files)")
    return step.runs_on


def _ray_address(step: Step, env: dict[str, str] | None) -> str:
    env = os.environ if env is None else env
    if step.runs_on.startswith("ray:"):
        return step.runs_on[len("ray:"):]
    address = env.get("RAY_ADDRESS")
    if not address:
        raise PlacementError(f"step {step.name!r}: runs_on: ray needs RAY_ADDRESS "
                             "(or write runs_on: ray:HOST:PORT)")
    return address


def placement_argv(step: Step, env: dict[str, str] | None = None,
                   pipeline: str = "pipeline") -> list[str]:
    """Flags for the step's placement (raises PlacementError)."""
    env = os.environ if env is None else env
    if step.runs_on.startswith("ray"):
        return ["--address", _ray_address(step, env)]
    if step.runs_on == "dataflow":
        try:
            cfg = remote.CloudConfig.from_env(env)
        except remote.RemoteConfigError as e:
            raise PlacementError(f"step {step.name!r}: runs_on: dataflow: {e}") from None
        return remote.dataflow_flags(cfg, remote.dataflow_job_name(pipeline, step.name))
    return []
