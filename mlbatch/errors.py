"""The two kinds of failure every job names, and the one place they become exit codes.

* ``UsageError``: what the user gave is wrong (a flag, a config or schema field, an input
  file, an output directory that is not ours to write): exit 2, the problem named on
  stderr, nothing written.
* ``JobError``: the job ran but its output cannot be trusted (left uncommitted, the reason
  recorded in its ``_PENDING.json``): exit 1, the reason logged.

A job's exception classes derive from one of the two (beside the built-in type they have
always had, so ``except ValueError`` still catches them); its ``main`` catches
``CAUGHT`` and returns ``exit_code(prog, error)``.
"""
from __future__ import annotations

import logging
import sys

LOGGER = logging.getLogger(__name__)

USAGE_EXIT = 2  # as argparse exits on a bad flag
JOB_EXIT = 1


class UsageError(Exception):
    """The user's flags, config, schema, inputs or output directory are wrong (exit 2)."""


class JobError(Exception):
    """The job ran, but its output cannot be trusted and is left uncommitted (exit 1)."""


# Failures of the same kind in several packages: one class each, raised by every one of them.
class ClusterError(RuntimeError, UsageError):
    """A Ray cluster cannot be reached, started, stopped or used as asked (the message
    says why): a job connecting (``ray_jobs.common.cluster``) and the pipeline's own
    cluster (``pipelines.ray_cluster``)."""


class PlacementError(ClusterError, ValueError):
    """What was asked cannot be placed where it was asked to run: a job's Ray bundles on
    its cluster (the message: asked vs. have), a pipeline step's ``runs_on`` (the step and
    what is missing)."""


class WorkerError(RuntimeError, JobError):
    """A worker failed and the job's output is not committed (the message carries its
    error): a JAX training worker, a co-occurrence helper process (failed or died, named
with its pid and exit code or traceback). ``lost``: the
    worker process or its node died, as opposed to an error its code raised; only a
    loss is worth a restart."""

    def __init__(self, message: str, lost: bool = False):
        super().__init__(message)
        self.lost = lost


class ThresholdError(ValueError, UsageError):
    """A threshold flag is malformed or names nothing it can be checked on (the message
    names the flag): the monitor's ``--threshold``, the blessing step's checks."""


# A missing file named by a flag is the user's to fix, whatever library raised it.
CAUGHT = (UsageError, JobError, FileNotFoundError)


def exit_code(prog: str | None, error: BaseException) -> int:
    """Names ``error`` (stderr for usage errors, the log for job errors) and returns its
    exit code; ``prog`` prefixes the message (``<prog>: error: ...``) where the job's
    command line always has. Anything else is not ours to map: it is raised again."""
    prefix = f"{prog}: error: " if prog else "error: "
    if isinstance(error, (UsageError, FileNotFoundError)):
        print(f"{prefix}{error}", file=sys.stderr)
        return USAGE_EXIT
    if isinstance(error, JobError):
        LOGGER.error("%s", error)
        print(f"{prefix}{error}", file=sys.stderr)
        return JOB_EXIT
    raise error
