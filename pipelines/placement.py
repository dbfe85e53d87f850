"""Where a step runs: the flags the runner adds to a job's command line for its ``runs_on``.

* ``local``: nothing (Beam's in-process runner; a Ray job starts its own local Ray);
* ``ray``: ``--address`` from ``RAY_ADDRESS``; ``ray:HOST:PORT``: ``--address HOST:PORT``;
* ``dataflow``: Beam's DataflowRunner flags from the environment (``DATAFLOW_PROJECT``,
  ``DATAFLOW_REGION``, ``DATAFLOW_BUCKET``, optional ``DATAFLOW_SERVICE_ACCOUNT``); the
  submission itself (staging, checks) is the business of ``scripts/``.
"""
from __future__ import annotations

import os
import re

from pipelines.spec import Step

DATAFLOW_ENV = ("DATAFLOW_PROJECT", "DATAFLOW_REGION", "DATAFLOW_BUCKET")


class PlacementError(ValueError):
    """A step's ``runs_on`` cannot be met (the message names the step and what is missing)."""


def where(step: Step, env: dict[str, str] | None = None) -> str:
    """run.json's ``runs_on``: local | ray:<address> | dataflow."""
    if step.runs_on == "ray":
        return f"ray:{_ray_address(step, env)}"
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


def placement_argv(step: Step, env: dict[str, str] | None = None) -> list[str]:
    """Flags for the step's placement (raises PlacementError)."""
    env = os.environ if env is None else env
    if step.runs_on.startswith("ray"):
        return ["--address", _ray_address(step, env)]
    if step.runs_on == "dataflow":
        missing = [k for k in DATAFLOW_ENV if not env.get(k)]
        if missing:
            raise PlacementError(f"step {step.name!r}: runs_on: dataflow needs "
                                 f"{', '.join(missing)} in the environment")
        bucket = env["DATAFLOW_BUCKET"].removeprefix("gs://").rstrip("/")
        job_name = re.sub(r"[^a-z0-9-]", "-", f"mlbatch-{step.name}".lower())
        argv = ["--runner", "DataflowRunner", "--project", env["DATAFLOW_PROJECT"],
                "--region", env["DATAFLOW_REGION"],
                "--temp_location", f"gs://{bucket}/tmp",
                "--staging_location", f"gs://{bucket}/staging",
                "--job_name", job_name, "--setup_file", "./setup.py"]
        if env.get("DATAFLOW_SERVICE_ACCOUNT"):
            argv += ["--service_account_email", env["DATAFLOW_SERVICE_ACCOUNT"]]
        return argv
    return []
