"""Pipeline options shared by every Beam job: runner choice, Dataflow checks, dry runs.

Jobs declare only their own flags; everything else (``--runner``, ``--project``,
``--temp_location``, ``--setup_file`` ...) passes through to Beam untouched.

Local default runner: Beam's in-process ``FnApiRunner``. ``DirectRunner`` in Beam 2.77
first tries the Prism runner, a Go binary it downloads at run time (impossible offline,
and a slower start), and falls back to the FnApiRunner anyway. Naming the FnApiRunner
skips that detour; ``--direct_num_workers`` / ``--direct_running_mode`` still apply.
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import apache_beam as beam
from apache_beam.options.pipeline_options import (DebugOptions, GoogleCloudOptions,
                                                  PipelineOptions, SetupOptions,
                                                  StandardOptions, TestOptions,
                                                  WorkerOptions)

LOGGER = logging.getLogger(__name__)

LOCAL_RUNNER = "apache_beam.runners.portability.fn_api_runner.FnApiRunner"
REPO_ROOT = Path(__file__).resolve().parents[2]
SETUP_FILE = REPO_ROOT / "setup.py"


class OptionsError(ValueError):
    """A pipeline flag is missing or invalid; raised before anything runs."""


def _is_dataflow(runner: str | None) -> bool:
    return bool(runner) and runner.rsplit(".", 1)[-1].lower() in ("dataflowrunner", "dataflow")


def pipeline_options(pipeline_args: list[str], *, job_name: str,
                     save_main_session: bool = True) -> PipelineOptions:
    """Builds and validates PipelineOptions from the flags the job did not declare.

    Raises:
      OptionsError: naming every missing or invalid Dataflow option.
    """
    options = PipelineOptions(pipeline_args)
    standard = options.view_as(StandardOptions)
    if not standard.runner:
        standard.runner = LOCAL_RUNNER
    options.view_as(SetupOptions).save_main_session = save_main_session
    if _is_dataflow(standard.runner):
        _check_dataflow(options, job_name)
    return options


def _check_dataflow(options: PipelineOptions, job_name: str) -> None:
    gcp = options.view_as(GoogleCloudOptions)
    setup = options.view_as(SetupOptions)
    worker = options.view_as(WorkerOptions)
    problems = []
    if not gcp.project:
        problems.append("--project is required for DataflowRunner")
    if not gcp.region:
        problems.append("--region is required for DataflowRunner (e.g. us-central1)")
    if not gcp.temp_location:
        problems.append("--temp_location is required for DataflowRunner (a gs:// path)")
    elif not gcp.temp_location.startswith("gs://"):
        problems.append(f"--temp_location must be a gs:// path, got {gcp.temp_location!r}")
    if gcp.staging_location and not gcp.staging_location.startswith("gs://"):
        problems.append(f"--staging_location must be a gs:// path, got {gcp.staging_location!r}")
    if problems:
        raise OptionsError("invalid Dataflow options:\n  " + "\n  ".join(problems))
    if not gcp.job_name:
        gcp.job_name = job_name.replace("_", "-").lower()
    # Ship this package to the workers unless the user brings a container that has it.
    if not setup.setup_file and not worker.sdk_container_image:
        setup.setup_file = str(SETUP_FILE)


def run_pipeline(pipeline: beam.Pipeline, options: PipelineOptions) -> None:
    """Runs the built pipeline; on a Dataflow ``--dry_run`` writes the job description.

    The description goes to ``--dataflow_job_file`` if given (Beam's own flag), and is
    logged otherwise. Nothing is submitted or staged on a dry run.
    """
    if options.view_as(TestOptions).dry_run and _is_dataflow(
            options.view_as(StandardOptions).runner):
        result = pipeline.run()
        job_json = _describe_dry_run_job(result.job)
        job_file = options.view_as(DebugOptions).dataflow_job_file
        if job_file:
            Path(job_file).parent.mkdir(parents=True, exist_ok=True)
            Path(job_file).write_text(job_json)
            LOGGER.info("Dry run: Dataflow job description written to %s", job_file)
        else:
            LOGGER.info("Dry run: Dataflow job description:\n%s", job_json)
        return
    result = pipeline.run()
    result.wait_until_finish()


def _describe_dry_run_job(job) -> str:
    """The job description Dataflow would receive, built offline.

    Beam's dry run stops before the environment (options, staged packages) is filled
    in, since that step uploads to GCS. Fill it in here without uploading: the staged
    package list names what `--setup_file` / `--requirements_file` would ship.
    """
    from apache_beam.runners.dataflow.internal import apiclient
    from apache_beam.runners.internal import names

    staging = job.options.view_as(GoogleCloudOptions).staging_location
    setup = job.options.view_as(SetupOptions)
    packages = []
    if setup.setup_file:
        packages.append(f"{staging}/workflow.tar.gz (sdist of {setup.setup_file})")
    if setup.requirements_file:
        packages.append(f"{staging}/requirements.txt ({setup.requirements_file})")
    serialized = job.proto_pipeline.SerializeToString()
    job.proto.environment = apiclient.Environment(
        packages=[],
        options=job.options,
        environment_version=apiclient._FNAPI_ENVIRONMENT_MAJOR_VERSION,
        proto_pipeline_staged_url=f"{staging}/{names.STAGED_PIPELINE_FILENAME}",
        proto_pipeline=job.proto_pipeline,
        pipeline_proto_hash=hashlib.sha256(serialized).hexdigest()).proto
    description = json.loads(job.json())
    transforms = job.proto_pipeline.components.transforms
    description["pipelineTransforms"] = sorted(
        {t.unique_name for t in transforms.values() if t.unique_name})
    description["stagedPackages"] = packages
    return json.dumps(description, indent=1, sort_keys=True)


def dry_run_summary(job_file: str | Path) -> dict:
    """Transforms, staged packages and pipeline options of a dry-run job description."""
    job = json.loads(Path(job_file).read_text())
    sdk = job.get("environment", {}).get("sdkPipelineOptions", {})
    return {"name": job.get("name"), "transforms": job.get("pipelineTransforms", []),
            "packages": job.get("stagedPackages", []), "options": sdk.get("options", {})}
