"""Pipeline options shared by every Beam job: runner choice, Dataflow checks, dry runs.

Jobs declare only their own flags; everything else (``--runner``, ``--project``,
``--temp_location``, ``--setup_file`` ...) passes through to Beam untouched. A flag that
neither the job nor Beam knows is an error naming it (Beam itself only logs a warning
and drops it), and ``--dry_run`` is a boolean: ``--dry_run``, ``--dry_run=true|false|1|0``
(Beam's own TestOptions take any string, so ``--dry_run=False`` would be a dry run).

Local default runner: Beam's in-process ``FnApiRunner``. ``DirectRunner`` in Beam 2.77
first tries the Prism runner, a Go binary it downloads at run time (impossible offline,
and a slower start), and falls back to the FnApiRunner anyway. Naming the FnApiRunner
skips that detour; ``--direct_num_workers`` / ``--direct_running_mode`` still apply.

``--direct_running_mode multi_processing`` starts worker processes that Beam 2.77 talks
to over unauthenticated gRPC servers bound to every interface (``[::]:0``, hard-coded in
``fn_api_runner/worker_handlers.py``; no option binds them to loopback): anyone who can
reach this machine could feed those workers. A job refuses that mode unless
``--allow_open_worker_ports`` says the machine is isolated (the flag is the job's, not
Beam's; ``in_memory`` and ``multi_threading`` open no port).
"""
from __future__ import annotations

import difflib
import hashlib
import json
import logging
import os
import signal
import sys
import threading
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

import apache_beam as beam
from apache_beam.options.pipeline_options import (DebugOptions, GoogleCloudOptions,
                                                  PipelineOptions, SetupOptions,
                                                  StandardOptions, TestOptions,
                                                  WorkerOptions)

from mlbatch.beam_flags import unknown_beam_flags
from mlbatch.errors import UsageError

LOGGER = logging.getLogger(__name__)

LOCAL_RUNNER = "apache_beam.runners.portability.fn_api_runner.FnApiRunner"
REPO_ROOT = Path(__file__).resolve().parents[2]
SETUP_FILE = REPO_ROOT / "setup.py"


class OptionsError(ValueError, UsageError):
    """A pipeline flag is missing or invalid; raised before anything runs."""


def quiet_logging(verbose: bool, extra: Sequence[str] = ()) -> None:
    """Log levels and TensorFlow's native logging of a Beam job, before TensorFlow is
    imported (``extra``: more library loggers to hold at WARNING, e.g. "jax").

    Unless --verbose: Beam's per-shard INFO lines go, and TF_CPP_MIN_LOG_LEVEL=3 keeps the
    C++ runtime's start-up lines out, among them the ERROR line of its CUDA probe on a
    machine without a GPU ("failed call to cuInit"); the job's own errors come back as
    Python exceptions either way. A value already in the environment is kept."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "3")
    quiet = {name: logging.WARNING
             for name in ("apache_beam.typehints", "tensorflow", "absl", *extra)}
    if not verbose:
        quiet.update({"apache_beam": logging.WARNING,
                      # a remote check's retries; the check's own error names the URI
                      "apache_beam.utils.retry": logging.ERROR})
    for name, level in quiet.items():
        logging.getLogger(name).setLevel(level)


def parse_job_args(parser, argv, *, at_least_one: Sequence[str] = (),
                   at_least_zero: Sequence[str] = ()):
    """``parser.parse_known_args(argv)`` for a Beam job: (the job's flags, Beam's).

    Each flag named in ``at_least_one`` / ``at_least_zero`` (dest names) is checked
    (``parser.error`` naming it), and ``job_flags`` (every option string of the job's
    parser) is set on the result for the unknown-flag check of ``pipeline_options``."""
    known, beam_args = parser.parse_known_args(argv)
    for dests, low in ((at_least_one, 1), (at_least_zero, 0)):
        for dest in dests:
            if getattr(known, dest) < low:
                parser.error(f"--{dest.replace('_', '-')} must be >= {low}")
    known.job_flags = [o for a in parser._actions for o in a.option_strings]
    return known, beam_args


def exit_now(code: int) -> None:
    """A job's ``__main__`` exit: flush logs and streams, then leave without the
    interpreter's teardown (TensorFlow's and Beam's threads can hang it)."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _is_dataflow(runner: str | None) -> bool:
    return bool(runner) and runner.rsplit(".", 1)[-1].lower() in ("dataflowrunner", "dataflow")


def remote_run_problems(beam_args: Sequence[str], paths: Mapping[str, object]) -> list[str]:
    """For a Dataflow run (not a dry run): every missing or invalid Dataflow option and
    every local path among ``paths`` (flag dest -> value or list of values); Dataflow's
    workers read and write gs:// only. Empty for any other runner."""
    rest, dry_run = _split_dry_run(list(beam_args))
    options = PipelineOptions(rest)
    if dry_run or not is_dataflow(options):
        return []
    local = [f"--{dest.replace('_', '-')} {value!r} is local: Dataflow workers read and "
             "write gs:// only" for dest, values in paths.items()
             for value in (values if isinstance(values, list) else [values])
             if value and not str(value).startswith("gs://")]
    return _dataflow_problems(options) + local


def refuse_local_paths(beam_args: Sequence[str], **paths: object) -> None:
    """``remote_run_problems`` as an OptionsError (for jobs that parse their own flags)."""
    problems = remote_run_problems(beam_args, paths)
    if problems:
        raise OptionsError("invalid Dataflow options:\n  " + "\n  ".join(problems))


def is_dataflow(options: PipelineOptions) -> bool:
    """Whether the options run the pipeline on Dataflow (its workers, not this machine)."""
    return _is_dataflow(options.view_as(StandardOptions).runner)


_TRUE, _FALSE = ("true", "1"), ("false", "0")


OPEN_PORTS_FLAG = "--allow_open_worker_ports"


def _split_open_ports(args: list[str]) -> tuple[list[str], bool]:
    rest = [a for a in args if a != OPEN_PORTS_FLAG]
    return rest, len(rest) != len(args)


def _check_running_mode(options: PipelineOptions, allowed: bool) -> None:
    from apache_beam.options.pipeline_options import DirectOptions

    mode = options.view_as(DirectOptions).direct_running_mode
    if mode == "multi_processing" and not allowed:
        raise OptionsError(
            "--direct_running_mode multi_processing opens unauthenticated gRPC worker ports "
            "on every network interface (Beam 2.77 cannot bind them to 127.0.0.1); use "
            f"multi_threading or in_memory, or pass {OPEN_PORTS_FLAG} on an isolated machine")


def _split_dry_run(args: list[str]) -> tuple[list[str], bool]:
    """``args`` without its ``--dry_run`` flags, and their boolean value (the last wins):
    ``--dry_run``, ``--dry_run=V`` or ``--dry_run V`` with V one of true/false/1/0."""
    rest, dry_run, i = [], False, 0
    while i < len(args):
        arg = args[i]
        name, eq, value = arg.partition("=")
        if name != "--dry_run":
            rest.append(arg)
            i += 1
            continue
        if not eq and i + 1 < len(args) and args[i + 1].lower() in _TRUE + _FALSE:
            value, i = args[i + 1], i + 1  # "--dry_run false", Beam's own spelling
        elif not eq:
            value = "true"
        if value.lower() not in _TRUE + _FALSE:
            raise OptionsError(f"--dry_run takes true/false/1/0, got {arg!r}")
        dry_run = value.lower() in _TRUE
        i += 1
    return rest, dry_run


def _suggest(flag: str, candidates: Sequence[str]) -> str:
    norm = flag.lstrip("-").replace("-", "_")
    same = [c for c in candidates if c.lstrip("-").replace("-", "_") == norm]
    close = same or difflib.get_close_matches(flag, candidates, n=1, cutoff=0.75)
    return f" (did you mean {close[0]}?)" if close else ""


def _check_unknown(args: list[str], job_flags: Sequence[str]) -> None:
    unknown = unknown_beam_flags(args)
    if not unknown:
        return
    beam_flags = [f"--{d}" for d in PipelineOptions([]).get_all_options()]
    candidates = [*job_flags, *beam_flags]
    raise OptionsError("unknown flag(s), neither this job's nor Beam's:\n  " + "\n  ".join(
        f + _suggest(f, candidates) for f in unknown))


def pipeline_options(pipeline_args: list[str], *, job_name: str,
                     save_main_session: bool = True,
                     job_flags: Sequence[str] = ()) -> PipelineOptions:
    """Builds and validates PipelineOptions from the flags the job did not declare.

    ``job_flags``: the job's own flags (e.g. "--num-shards"), suggested when a flag is
    unknown.

    Raises:
      OptionsError: naming every unknown flag (with the close match), a ``--dry_run``
        that is no boolean, every missing or invalid Dataflow option, the
        ``multi_processing`` running mode without ``--allow_open_worker_ports``.
    """
    pipeline_args, dry_run = _split_dry_run(list(pipeline_args))
    pipeline_args, open_ports = _split_open_ports(pipeline_args)
    _check_unknown(pipeline_args, [*job_flags, OPEN_PORTS_FLAG])
    options = PipelineOptions(pipeline_args)
    _check_running_mode(options, open_ports)
    options.view_as(TestOptions).dry_run = dry_run
    standard = options.view_as(StandardOptions)
    if not standard.runner:
        standard.runner = LOCAL_RUNNER
    options.view_as(SetupOptions).save_main_session = save_main_session
    if _is_dataflow(standard.runner):
        _check_dataflow(options, job_name)
    _own_temp_location(options, job_name)
    return options


def _own_temp_location(options: PipelineOptions, job_name: str) -> None:
    """Gives the run a temp location of its own, ``<temp_location>/<job>-<8 hex>``: jobs
    keep scratch files there (tf.Transform's ``tft_tmp``) and delete them afterwards, so
    two runs given the same --temp_location must not share a directory."""
    gcp = options.view_as(GoogleCloudOptions)
    if gcp.temp_location:
        name = (gcp.job_name or job_name).replace("_", "-").lower()
        gcp.temp_location = f"{gcp.temp_location.rstrip('/')}/{name}-{uuid.uuid4().hex[:8]}"


def _dataflow_problems(options: PipelineOptions) -> list[str]:
    gcp = options.view_as(GoogleCloudOptions)
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
    return problems


def _check_dataflow(options: PipelineOptions, job_name: str) -> None:
    gcp = options.view_as(GoogleCloudOptions)
    setup = options.view_as(SetupOptions)
    worker = options.view_as(WorkerOptions)
    problems = _dataflow_problems(options)
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
    logged otherwise. Nothing is submitted or staged on a dry run, and on a local runner
    (which would ignore the flag) nothing runs: the graph was built and that is all.
    """
    dry_run = options.view_as(TestOptions).dry_run
    if dry_run and not _is_dataflow(options.view_as(StandardOptions).runner):
        LOGGER.info("Dry run: pipeline built, %d transforms; nothing run",
                    len(pipeline.to_runner_api().components.transforms))
        return
    if dry_run:
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
    _wait_or_cancel(result)


def _wait_or_cancel(result) -> None:
    """Waits for a launched job; SIGTERM or SIGINT of the launcher (a cancelled pipeline
    task) cancels it (a remote runner's job would run on without its launcher)."""
    def _interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    if threading.current_thread() is not threading.main_thread():
        result.wait_until_finish()  # signal handlers belong to the main thread
        return
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        result.wait_until_finish()
    except KeyboardInterrupt:
        LOGGER.warning("interrupted: cancelling the job")
        result.cancel()
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)


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
