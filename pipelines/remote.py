"""Command lines that run a pipeline step where users outgrow one machine: the Beam steps
on Dataflow, the Ray steps as Ray jobs on a cluster (``ray job submit``).

The step's own command line is always ``Step.argv(run_dir)`` (pipelines/spec.py); this
module only adds where it runs. The Dataflow submission script, the Ray cluster script
and the Kubeflow / Vertex AI compiler all build their commands here, so a step runs with
the same flags whichever way it is launched.

Cloud settings come from the environment (``CloudConfig.from_env``), checked before
anything runs: GOOGLE_CLOUD_PROJECT, REGION (or GOOGLE_CLOUD_REGION), BUCKET (gs://...),
optional SERVICE_ACCOUNT, SDK_CONTAINER_IMAGE (default: this version's image in the
project's Artifact Registry, ``IMAGE_REPOSITORY``; ``sdist`` = none, Beam stages this
package instead), DATAFLOW_TEMP (default BUCKET/tmp) and DATAFLOW_OPTIONS (more Beam /
Dataflow flags, shell-quoted, checked by Beam's own option classes).
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path

from pipelines.registry import JOBS
from pipelines.spec import Pipeline, Step
from mlbatch.errors import UsageError

REPO_ROOT = Path(__file__).resolve().parents[1]
LOCK_FILE = REPO_ROOT / "requirements.lock"
# Not uploaded with the working directory (Ray also skips what .gitignore lists).
WORKING_DIR_EXCLUDES = [".venv", ".git", "data", "out", "bench_out", ".pytest_cache",
                        "**/__pycache__"]
# Installed on every Ray node already (the cluster's own Ray), or this package itself
# (shipped as the working directory).
_NOT_PIP_INSTALLED = re.compile(r"^(ray|mlbatch)(\[|=|$)")
_PROJECT = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_REGION = re.compile(r"^[a-z]+-[a-z]+\d+$")
_DATAFLOW_NAME = re.compile(r"[^a-z0-9-]+")
# Relative paths the repository (and so the task image) ships: they stay relative.
SHIPPED = ("schemas/",)
VERSION = "0.1.0"  # pyproject.toml's; the image tag
# The image `make image` builds and pushes (deploy/cloudbuild.yaml): the same name pattern.
IMAGE_REPOSITORY = "{region}-docker.pkg.dev/{project}/mlbatch/mlbatch"
IMAGE_WORKDIR = "/opt/mlbatch"  # the image's WORKDIR: this repository's root
SDIST = "sdist"  # SDK_CONTAINER_IMAGE=sdist: no image, Beam stages this package
# Dataflow flags the launchers set themselves (from the settings named here).
RESERVED_FLAGS = {"runner": "the launcher", "project": "GOOGLE_CLOUD_PROJECT",
                  "region": "REGION", "temp_location": "DATAFLOW_TEMP",
                  "staging_location": "BUCKET", "job_name": "the launcher",
                  "service_account_email": "SERVICE_ACCOUNT",
                  "sdk_container_image": "SDK_CONTAINER_IMAGE",
                  "setup_file": "SDK_CONTAINER_IMAGE=sdist", "dry_run": "--dry-run"}


class RemoteConfigError(ValueError, UsageError):
    """Cloud or cluster settings are missing or invalid (the message lists each problem)."""


@dataclasses.dataclass(frozen=True)
class CloudConfig:
    project: str
    region: str
    bucket: str  # gs://bucket[/prefix]
    service_account: str | None = None
    sdk_container_image: str | None = None  # None: default_image(); SDIST: none
    temp_location: str | None = None
    options: tuple[str, ...] = ()  # more Beam / Dataflow flags, passed through

    @property
    def image(self) -> str | None:
        """The workers' SDK container: this version's image unless set (None: sdist)."""
        if self.sdk_container_image == SDIST:
            return None
        return self.sdk_container_image or default_image(self.project, self.region)

    @property
    def temp(self) -> str:
        return self.temp_location or f"{self.bucket.rstrip('/')}/tmp"

    @property
    def staging(self) -> str:
        return f"{self.bucket.rstrip('/')}/staging"

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> "CloudConfig":
        """The settings from environment variables; every problem named at once."""
        get = lambda *names: next((env[n] for n in names if env.get(n)), None)  # noqa: E731
        cfg = cls(project=get("GOOGLE_CLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT") or "",
                  region=get("REGION", "GOOGLE_CLOUD_REGION") or "",
                  bucket=get("BUCKET") or "", service_account=get("SERVICE_ACCOUNT"),
                  sdk_container_image=get("SDK_CONTAINER_IMAGE"),
                  temp_location=get("DATAFLOW_TEMP"))
        try:
            cfg = dataclasses.replace(cfg, options=tuple(shlex.split(get("DATAFLOW_OPTIONS")
                                                                     or "")))
        except ValueError as e:
            raise RemoteConfigError(f"DATAFLOW_OPTIONS cannot be split: {e}") from None
        problems = cfg.problems()
        if problems:
            raise RemoteConfigError("cannot submit to Dataflow:\n  " + "\n  ".join(problems))
        return cfg

    def problems(self) -> list[str]:
        out = []
        if not self.project:
            out.append("GOOGLE_CLOUD_PROJECT is not set (the Google Cloud project id)")
        elif not _PROJECT.match(self.project):
            out.append(f"GOOGLE_CLOUD_PROJECT={self.project!r} is no project id (6-30 "
                       "lowercase letters, digits and hyphens, starting with a letter)")
        if not self.region:
            out.append("REGION is not set (a Dataflow region, e.g. us-central1)")
        elif not _REGION.match(self.region):
            out.append(f"REGION={self.region!r} is no region name (e.g. us-central1)")
        if not self.bucket:
            out.append("BUCKET is not set (gs://bucket[/prefix] for run outputs and temp files)")
        elif not self.bucket.startswith("gs://") or len(self.bucket) <= len("gs://"):
            out.append(f"BUCKET={self.bucket!r} must be a gs:// URI")
        if self.temp_location and not self.temp_location.startswith("gs://"):
            out.append(f"DATAFLOW_TEMP={self.temp_location!r} must be a gs:// URI")
        if self.service_account and "@" not in self.service_account:
            out.append(f"SERVICE_ACCOUNT={self.service_account!r} is no service account "
                       "e-mail (NAME@PROJECT.iam.gserviceaccount.com)")
        return out + [f"DATAFLOW_OPTIONS: {p}" for p in dataflow_option_problems(self.options)]


def default_image(project: str, region: str) -> str:
    """This version's image in the project's Artifact Registry (what `make image` pushes)."""
    return f"{IMAGE_REPOSITORY.format(project=project, region=region)}:{VERSION}"


def dataflow_option_problems(flags: Sequence[str]) -> list[str]:
    """What is wrong with Beam / Dataflow flags passed through (``--machine_type``,
    ``--max_num_workers``, ``--network``, ``--subnetwork``, ``--no_use_public_ips``,
    ``--dataflow_service_options`` ...), judged by Beam's own PipelineOptions classes:
    flags no class declares, values a class refuses, and flags the launcher sets itself."""
    from apache_beam.options.pipeline_options import PipelineOptions

    from mlbatch.beam_flags import unknown_beam_flags

    flags = list(flags)
    if flags and not flags[0].startswith("-"):
        return [f"{flags[0]!r} is a value, not a flag"]
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            PipelineOptions(flags).get_all_options()
            unknown = unknown_beam_flags(flags)
    except SystemExit:
        lines = [ln for ln in err.getvalue().splitlines() if "error:" in ln]
        return [lines[-1].split("error:", 1)[1].strip() if lines else "refused by Beam"]
    out = [f"{f} is unknown to Beam's pipeline options" for f in unknown]
    for flag in flags:
        name = flag.split("=", 1)[0].lstrip("-").replace("-", "_")
        if flag.startswith("--") and name in RESERVED_FLAGS:
            out.append(f"--{name} is set by the launcher (from {RESERVED_FLAGS[name]})")
    return out


def raw_values(step: Step) -> set[str]:
    """The values of the step's raw-input args (files, dirs, globs)."""
    return {str(v) for key in step.raw
            for v in (step.args[key] if isinstance(step.args[key], list) else [step.args[key]])}


def _is_relative(value: str) -> bool:
    return not (value.startswith("/") or re.match(r"^[a-z][a-z0-9+.-]*://", value))


def _moves(value: str) -> bool:
    """Whether a raw path goes under the data root: relative, and not one of the files the
    checkout and the image carry (schemas/, read where the job is launched)."""
    return _is_relative(value) and not value.startswith(SHIPPED)


def entrypoint(step: Step, run_dir: str, *, data_root: str | None = None,
               python: str = "python") -> list[str]:
    """The step's own command: ``python -m <job> <its flags> --output RUN/<step>``, its
    relative raw paths under ``data_root`` when given."""
    raw = raw_values(step)
    argv = step.argv(run_dir)
    if data_root is not None:
        argv = [f"{data_root.rstrip('/')}/{t}" if t in raw and _moves(t) else t for t in argv]
    return [python, "-m", JOBS[step.job].module, *argv]


def local_raw_inputs(steps: list[Step], data_root: str | None) -> list[str]:
    """The raw inputs that would stay on this machine (Dataflow workers cannot read them);
    shipped files (schemas/) are read where the job is launched."""
    remote_root = data_root is not None and data_root.startswith("gs://")
    return [f"step {step.name!r}: raw input {value!r} is local" for step in steps
            for value in sorted(raw_values(step))
            if not (value.startswith(("gs://", *SHIPPED)) or (remote_root and _moves(value)))]


def dataflow_command(pipeline: Pipeline, step: Step, cfg: CloudConfig, run_dir: str, *,
                     data_root: str | None = None, job_suffix: str = "",
                     dry_run_file: str | None = None, python: str = "python") -> list[str]:
    """One Beam step as a Dataflow job (a dry run writes its job description instead)."""
    name = dataflow_job_name(pipeline.name, step.name, job_suffix)
    argv = [*entrypoint(step, run_dir, data_root=data_root, python=python),
            *dataflow_flags(cfg, name)]
    if dry_run_file:
        argv += ["--dry_run", f"--dataflow_job_file={dry_run_file}"]
    return argv


def dataflow_job_name(pipeline: str, step: str, suffix: str = "") -> str:
    """A Dataflow job name ([a-z]([-a-z0-9]*[a-z0-9])?) for a step of a pipeline."""
    name = _DATAFLOW_NAME.sub("-", f"{pipeline}-{step}{suffix}".lower()).strip("-")
    return name if name[:1].isalpha() else f"p-{name}"


def dataflow_flags(cfg: CloudConfig, job_name: str) -> list[str]:
    """Beam's DataflowRunner flags for one job."""
    flags = ["--runner", "DataflowRunner", "--project", cfg.project, "--region", cfg.region,
             "--temp_location", cfg.temp, "--staging_location", cfg.staging,
             "--job_name", job_name]
    if cfg.service_account:
        flags += ["--service_account_email", cfg.service_account]
    if cfg.image:
        flags += ["--sdk_container_image", cfg.image]
    return [*flags, *cfg.options]


def beam_steps(pipeline: Pipeline, only: list[str] | None = None) -> list[Step]:
    """The pipeline's Beam steps in run order (``only``: just these, checked)."""
    beam = [pipeline.steps[n] for n in pipeline.order() if JOBS[pipeline.steps[n].job].kind
            == "beam"]
    return _select(pipeline, beam, only, "Beam")


def ray_steps(pipeline: Pipeline, only: list[str] | None = None) -> list[Step]:
    """The pipeline's Ray steps (training, Tune) in run order."""
    ray = [pipeline.steps[n] for n in pipeline.order() if JOBS[pipeline.steps[n].job].kind
           == "ray"]
    return _select(pipeline, ray, only, "Ray")


def _select(pipeline: Pipeline, steps: list[Step], only: list[str] | None,
            kind: str) -> list[Step]:
    if not only:
        return steps
    names = {s.name for s in steps}
    wrong = [n for n in only if n not in names]
    if wrong:
        raise RemoteConfigError(f"{pipeline.path}: {', '.join(map(repr, wrong))} "
                                f"{'is' if len(wrong) == 1 else 'are'} not a {kind} step of "
                                f"{pipeline.name!r} ({kind} steps: {sorted(names)})")
    return [s for s in steps if s.name in only]


# --- Ray jobs ------------------------------------------------------------------------------
def pinned_requirements(lock_file: Path = LOCK_FILE) -> list[str]:
    """The pins of requirements.lock a Ray node must pip-install (not Ray, not mlbatch)."""
    pins = []
    for line in lock_file.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-") and not _NOT_PIP_INSTALLED.match(line):
            pins.append(line)
    return pins


def runtime_env(mode: str, working_dir: Path = REPO_ROOT) -> dict:
    """The Ray runtime_env of a submitted step.

    ``local``: the working directory only; the nodes run the Python of the environment
    they were started from (a local cluster started from this checkout's .venv, or a
    cluster image built from requirements.lock). ``pip``: also every pin of
    requirements.lock, installed by Ray on each node into a cached virtualenv.
    """
    env: dict = {"working_dir": str(working_dir), "excludes": list(WORKING_DIR_EXCLUDES)}
    if mode == "pip":
        env["pip"] = {"packages": pinned_requirements(), "pip_check": False}
    elif mode != "local":
        raise RemoteConfigError(f"runtime env mode must be local or pip, got {mode!r}")
    return env


def ray_submit_argv(ray_bin: str, address: str, step: Step, run_dir: str, env: dict, *,
                    submission_id: str | None = None,
                    data_root: str | None = None) -> list[str]:
    """``ray job submit`` of one step to the Jobs API at ``address`` (http://HOST:PORT)."""
    argv = [ray_bin, "job", "submit", "--address", address, "--runtime-env-json",
            json.dumps(env, sort_keys=True)]
    if submission_id:
        argv += ["--submission-id", submission_id]
    return [*argv, "--", *entrypoint(step, run_dir, data_root=data_root)]
