"""The one place the runner writes to the lineage store (``pipelines.lineage``, RUN/lineage.sqlite).

Each run is one ``pipeline_run`` context (``<pipeline>@<started>``); each step that is
done, cached or failed is one execution of it.

Remote runs (Vertex AI tasks, ``pipelines.remote_task``) write each step's record to
``RUN/_lineage/<step>.json`` instead; ``import_run`` loads them into a local store
(``python -m pipelines import-lineage RUN``).

Recording is best effort: a step whose artifacts are committed stays done when the
store cannot be written (the failure is logged); the store can be rebuilt from run.json
and the artifacts' manifests.
"""
from __future__ import annotations

import datetime
import logging
import os

from pipelines.spec import Pipeline, Step

LOGGER = logging.getLogger(__name__)


def record(run_dir: str, run_id: str, pipeline: Pipeline, step: Step, state) -> int | None:
    """Records one finished step (done, cached or failed); returns its execution id (None:
    not recorded)."""
    from pipelines.lineage import STORE_NAME, LineageStore, record_step

    ended = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    output = os.path.join(run_dir, step.out)
    inputs = [os.path.join(run_dir, pipeline.steps[name].out) for name in state.inputs]
    try:
        with LineageStore(os.path.join(run_dir, STORE_NAME)) as store:
            return record_step(
                store, pipeline_run=run_id, step_name=step.name, job=step.job, runs_on=state.runs_on,
                params=dict(step.args), cache_key=state.cache_key, inputs=inputs,
                output=output if state.status != "failed" else None,
                started=state.started or ended, ended=ended, state=state.status,
                pipeline=pipeline.name, error=state.error)
    except Exception as e:  # noqa: BLE001 - the store must never fail a committed step
        LOGGER.warning("lineage of step %s not recorded: %s", step.name, e)
        return None


LINEAGE_RECORDS = "_lineage"


def import_run(run_dir: str, store: str | None = None) -> tuple[str, int]:
    """Imports RUN/_lineage/*.json (a remote run's step records) into ``store`` (default
    RUN/lineage.sqlite for a local run directory); returns (store path, steps imported).
    Raises LineageError naming a bad record."""
    from mlbatch import storage
    from pipelines.lineage import STORE_NAME, LineageError, LineageStore
    from pipelines.lineage.imports import import_step_records

    if store is None:
        if storage.is_remote(run_dir):
            raise LineageError(f"{run_dir} is remote: name a local --store")
        store = os.path.join(run_dir, STORE_NAME)
    records = storage.join(run_dir, LINEAGE_RECORDS)
    if not storage.is_dir(records):
        raise LineageError(f"{records} does not exist: no step of this run recorded lineage")
    with LineageStore(store) as lineage:
        return store, len(import_step_records(lineage, records))
