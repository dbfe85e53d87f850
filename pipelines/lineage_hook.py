"""The one place the runner writes to the lineage store (``mlbatch.lineage``, RUN/lineage.sqlite).

Recording is best effort: a step whose artifacts are committed stays done when the
store cannot be written (the failure is logged); the store can be rebuilt from run.json
and the artifacts' manifests.
"""
from __future__ import annotations

import logging
import os

from pipelines.spec import Pipeline, Step

LOGGER = logging.getLogger(__name__)
STORE_FILE = "lineage.sqlite"


def record(run_dir: str, pipeline: Pipeline, step: Step, state) -> int | None:
    """Records one finished (done or cached) step; returns its execution id (None: not
    recorded)."""
    try:
        from mlbatch.lineage import LineageStore
    except ImportError:  # the store is not on this branch yet
        return None
    inputs = [os.path.join(run_dir, name) for name in state.inputs]
    try:
        store = LineageStore(os.path.join(run_dir, STORE_FILE))
        return store.record_step(
            pipeline_run=f"{pipeline.name}:{os.path.basename(run_dir)}", step_name=step.name,
            job=step.job, runs_on=state.runs_on, params=dict(step.args),
            cache_key=state.cache_key, inputs=inputs, output=os.path.join(run_dir, step.name),
            started=state.started, ended=None, state=state.status)
    except Exception as e:  # noqa: BLE001 - the store must never fail a committed step
        LOGGER.warning("lineage of step %s not recorded: %s", step.name, e)
        return None
