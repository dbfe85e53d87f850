"""Ray Tune plug-in of the JAX job (interface: docs/DEVELOPING.md, "Tune").

A trial is one training run of the job with the sampled fields merged into the base
config (any ``JaxConfig`` field). Every epoch ends in one ``tune.report`` carrying the
eval metrics and a checkpoint (the job's portable npz: params, optimizer state, data
position), so ASHA can stop a trial after any epoch and a restored trial continues
exactly where its last checkpoint was. One worker trains inside the trial process; with
``num_workers > 1`` the trial starts its workers in its own placement group's bundles.
``make_trainable`` checks, when Ray is up, that the cluster can place one trial at all:
Tune itself would wait forever for a placement group that can never be placed.
"""
from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ray import tune

from mlbatch import storage
from ray_jobs.common import cluster
from ray_jobs.jax import driver, loop
from ray_jobs.jax.checkpoint import read_meta
from ray_jobs.jax.config import JaxConfig, from_dict
from ray_jobs.jax.metrics import metric_fields
from ray_jobs.jax.outputs import MODEL_DIR, TYPE, commit_model, export_model

SEARCH_SPACE_FILE = Path(__file__).with_name("search_space.yaml")
# Task-independent: the task's loss in the label's own units (logloss; RMSE in dollars for
# a log1p label), the XGBoost job's too (see metrics.eval_metrics).
METRIC = "eval_loss"
MODE = "min"
CHECKPOINT_FILE = "state.npz"


def trial_config(base_config: dict, sampled: dict | None = None) -> JaxConfig:
    """The trial's config; checkpoints are taken per epoch (the report), not mid-epoch."""
    return from_dict({**base_config, **(sampled or {}), "checkpoint_every_steps": 0})


def make_trainable(features_dir: str, base_config: dict) -> Callable[[dict], None]:
    """Validates the base config and the feature directory here, on the Tune driver."""
    features_dir = storage.locate(features_dir).uri
    driver.validate(trial_config(base_config), features_dir)
    check_trial_placement(base_config)
    base_config = dict(base_config)

    def jax_trial(sampled: dict) -> None:
        _run_trial(features_dir, trial_config(base_config, sampled))

    return jax_trial


class _TuneReporter:
    """The loop's sink inside a trial: one report (metrics + checkpoint) per epoch, with
    the layout the workers run on (``layout``: num_processes, num_devices)."""

    def __init__(self, layout: dict[str, int]):
        self.layout = layout

    def on_start(self, step: int) -> None:
        pass

    def on_train(self, result: dict[str, Any], curve: list) -> None:
        pass

    def on_checkpoint(self, step: int, blob: bytes) -> None:
        pass

    def on_epoch(self, record: dict[str, Any], blob: bytes, improved: bool) -> None:
        metrics = {**self.layout,
                   **{k: v for k, v in record.items() if isinstance(v, (int, float))}}
        with tempfile.TemporaryDirectory() as d:
            Path(d, CHECKPOINT_FILE).write_bytes(blob)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))

    def on_end(self, summary: dict[str, Any]) -> None:
        pass


def _run_trial(features_dir: str, cfg: JaxConfig) -> None:
    fs = driver.validate(cfg, features_dir)
    cfg = driver.sized_config(cfg, fs)
    resume = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:  # restored experiment or retried trial: continue
        with checkpoint.as_directory() as d:
            resume = Path(d, CHECKPOINT_FILE).read_bytes()
        driver.check_resumable(resume, cfg, fs)
    group = driver.start_group(cfg, features_dir, use_ray=cfg.num_workers > 1)
    try:
        info = group.call("describe")[0]
        layout = {k: info[k] for k in ("num_processes", "num_devices")}
        loop.fit(group, cfg, _TuneReporter(layout), resume)
    finally:
        group.close()


def trial_resources(base_config: dict) -> tune.PlacementGroupFactory:
    """One worker: the trial process trains (its bundle is the worker's). Several: an
    empty head bundle for the trial (it only drives) plus one bundle per worker."""
    cfg = trial_config(base_config)
    worker = cfg.worker_resources
    if cfg.num_workers == 1:
        return tune.PlacementGroupFactory([worker])
    return tune.PlacementGroupFactory([{}] + [dict(worker)] * cfg.num_workers,
                                      strategy=cfg.placement_strategy)


def check_trial_placement(base_config: dict) -> None:
    """Raises PlacementError when no trial of this config fits the connected cluster
    (ray_jobs.common.cluster's one check); a no-op without Ray."""
    import ray
    if not ray.is_initialized():
        return
    cfg = trial_config(base_config)
    cluster.check_placement(
        trial_resources(base_config).bundles,
        what=f"a trial (num_workers={cfg.num_workers} x worker_cpus={cfg.worker_cpus:g})",
        hint="Lower num_workers / worker_cpus or add nodes.")


def reported_metrics(features: str, base: dict[str, Any]) -> tuple[str, ...]:
    """The metrics every epoch's report carries for this feature set's task (what
    ``--metric`` may name): eval_loss (label units), objective_loss (the model's space)
    and the task's ``eval_<name>`` metrics."""
    from mlbatch.artifacts.features import load_feature_set
    from mlbatch.metrics import METRIC_NAMES
    task = load_feature_set(features, check_columns=False).task
    return (METRIC, "objective_loss", *(f"eval_{m}" for m in METRIC_NAMES[task]))


def max_iterations(base_config: dict) -> int:
    """Optional hook: reports per trial at most (one per epoch), ASHA's max_t."""
    return trial_config(base_config).epochs


def export_best(checkpoint: tune.Checkpoint, output_dir: str, *, features: str) -> str:
    """Commits the trial's checkpoint as a ``jax_model`` artifact in ``output_dir`` (any
    URI): ``model/`` (``exporting``: the portable predict function, params, description)
    with lineage to ``features``; returns its digest."""
    from mlbatch.artifacts import ArtifactWriter
    from mlbatch.artifacts.features import load_feature_set

    writer = ArtifactWriter(output_dir, TYPE, job="ray_jobs.tune[jax]")
    writer.claim(overwrite=True)
    fs = load_feature_set(writer.input_artifact("features", features, "features").root,
                          check_columns=False)
    with checkpoint.as_directory() as d:
        blob = Path(d, CHECKPOINT_FILE).read_bytes()
    meta = read_meta(blob)
    writer.config = meta["config"]
    writer.metrics.update(metric_fields(meta["loop"]["epochs"][-1])
                          if meta["loop"]["epochs"] else {})
    export_model(blob, storage.join(writer.root, MODEL_DIR))
    return commit_model(writer, fs).digest
