"""A lineage store holding the session's real artifacts: the feature job's output on the
flights slice and the XGBoost and JAX models trained on it, recorded as three steps of
one pipeline run (the way the pipeline runner records them)."""
from __future__ import annotations

from pathlib import Path

import pytest

from mlbatch.artifacts.base import ArtifactWriter
from pipelines.lineage import LineageStore, record_step

RUN = "flights-run-1"
TIMES = {"features": ("2026-12-02T01:00:00+00:00", "2026-12-02T01:01:30+00:00"),
         "xgboost": ("2026-12-02T01:01:30+00:00", "2026-12-02T01:01:42.5+00:00"),
         "jax": ("2026-12-02T01:01:30+00:00", "2026-12-02T01:02:00+00:00")}


def record(store: LineageStore, step: str, job: str, inputs: list[Path], output: Path,
           state: str = "done", run: str = RUN, **params) -> int:
    started, ended = TIMES.get(step, (None, None))
    return record_step(store, run, step, job, "local", params, f"sha256:key-{step}",
                       [str(p) for p in inputs], str(output), started, ended, state,
                       pipeline="flights")


@pytest.fixture(scope="session")
def recorded(flights_features, flights_xgboost, flights_jax, tmp_path_factory):
    """(store, {step: execution id}) with features -> {xgboost, jax} recorded."""
    store = LineageStore(tmp_path_factory.mktemp("lineage") / "lineage.sqlite")
    ids = {"features": record(store, "features", "beam_jobs.features", [], flights_features,
                              schema="schemas/flights.yaml"),
           "xgboost": record(store, "xgboost", "ray_jobs.xgboost", [flights_features],
                             flights_xgboost, num_boost_round=15),
           "jax": record(store, "jax", "ray_jobs.jax", [flights_features], flights_jax,
                         epochs=2)}
    yield store, ids
    store.close()


def write_artifact(root: Path, text: str, *, upstream: Path | None = None) -> Path:
    """A small committed run_report artifact holding one file (optionally with an input)."""
    w = ArtifactWriter(root, "run_report", job="tests.lineage", config={"text": text})
    w.claim(overwrite=True)
    if upstream is not None:
        w.input_artifact("upstream", str(upstream))
    (root / "report.md").write_text(text)
    w.commit(body={"index": "report.md"})
    return root
