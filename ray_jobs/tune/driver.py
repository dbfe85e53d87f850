"""Builds and runs a Ray Tune experiment for one job's plug-in (``ray_jobs.<job>.tuning``).

Output layout (``--output``)::

    <name>/                 Tune experiment: state, per-trial results, checkpoints and
                            TensorBoard event files (tensorboard --logdir <output>/<name>)
    settings.json           what the experiment was started with (used by --resume)
    results.parquet/.csv    one row per trial: status, end reason, failures, params, metrics
    best_params.json        the best trial's sampled hyperparameters and metric
    best/                   the best trial's model, written by the plug-in's export_best:
                            itself a committed model artifact (xgboost_model, jax_model)
    artifact.json           the commit marker of the ``tune_run`` artifact (read with
                            ``mlbatch.artifacts.tune_run``): lineage to the features,
                            settings, best trial; the experiment directory is outside
                            its digest (Tune's state and event files are not deterministic)

``--output`` may be a ``gs://`` URI: Tune then stores the experiment there itself
(``RunConfig.storage_filesystem`` = ``mlbatch.storage``'s pyarrow file system, so an
emulator named by STORAGE_EMULATOR_HOST is honoured), and everything else is written
through ``mlbatch.storage``. The driver's own per-trial logs (failures, scheduler stops)
are appended to locally and copied into the experiment after the run (objects cannot be
appended to).
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import logging
import os
import re
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

from ray import tune

from mlbatch import storage
from mlbatch.artifacts import ArtifactWriter, write_json
from ray_jobs.common import cluster
from ray_jobs.tune import report
from ray_jobs.tune.report import FAILURES_FILE, STOPS_FILE
from ray_jobs.tune.space import load_space
from mlbatch.errors import UsageError

logger = logging.getLogger(__name__)

JOBS = ("xgboost", "jax")
SEARCHERS = ("random", "optuna")
SCHEDULERS = ("asha", "fifo")
PLUGIN_ATTRS = ("SEARCH_SPACE_FILE", "METRIC", "MODE", "make_trainable", "trial_resources",
                "export_best")
SETTINGS_FILE = "settings.json"
__all__ = ["FAILURES_FILE", "STOPS_FILE", "TuneSettings", "TuneSetupError", "run"]


class TuneSetupError(ValueError, UsageError):
    """The experiment cannot start or resume as asked (the message says why)."""


@dataclasses.dataclass(frozen=True)
class TuneSettings:
    job: str
    features: str
    output: str
    num_samples: int = 10
    search: str = "random"
    scheduler: str = "asha"
    max_concurrent: int | None = None
    resume: bool = False
    search_space: str | None = None  # None: the plug-in's SEARCH_SPACE_FILE
    name: str | None = None  # None: "<job>_tune"
    max_failures: int = 2
    seed: int = 0
    grace_period: int = 5
    reduction_factor: int = 3
    max_t: int | None = None  # None: plug-in's max_iterations(base_config), else 1000
    base_config: dict = dataclasses.field(default_factory=dict)
    address: str | None = None
    metric: str | None = None  # None: the plug-in's METRIC (checked against its reports)
    mode: str | None = None  # "min" | "max"; None: the plug-in's MODE for its METRIC

    def __post_init__(self):
        for field, value, allowed in (("job", self.job, JOBS), ("search", self.search, SEARCHERS),
                                      ("scheduler", self.scheduler, SCHEDULERS)):
            if value not in allowed:
                raise TuneSetupError(f"--{field} {value!r}: expected one of {allowed}")
        for field, minimum in (("num_samples", 1), ("max_failures", 0), ("grace_period", 1),
                               ("reduction_factor", 2)):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise TuneSetupError(f"{field} must be an integer >= {minimum}, got {value!r}")
        for field in ("max_concurrent", "max_t"):
            value = getattr(self, field)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise TuneSetupError(f"{field} must be an integer >= 1, got {value!r}")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", self.run_name):
            raise TuneSetupError(f"--name {self.run_name!r}: use letters, digits, _ . -")
        if self.mode not in (None, "min", "max"):
            raise TuneSetupError(f"--mode {self.mode!r}: expected 'min' or 'max'")
        if not isinstance(self.base_config, dict):
            raise TuneSetupError(f"base_config must be a mapping, got {self.base_config!r}")

    @property
    def run_name(self) -> str:
        return self.name or f"{self.job}_tune"

    @property
    def output_uri(self) -> str:
        return storage.locate(self.output).uri

    @property
    def experiment_uri(self) -> str:
        return storage.join(self.output_uri, self.run_name)

    @property
    def experiment_dir(self) -> Path:
        """The experiment of a local --output."""
        return Path(self.experiment_uri)


def load_plugin(job: str) -> ModuleType:
    module = importlib.import_module(f"ray_jobs.{job}.tuning")
    missing = [a for a in PLUGIN_ATTRS if not hasattr(module, a)]
    if missing:
        raise TuneSetupError(f"ray_jobs.{job}.tuning lacks {missing} (see docs/DEVELOPING.md)")
    if module.MODE not in ("min", "max"):
        raise TuneSetupError(f"ray_jobs.{job}.tuning.MODE must be 'min' or 'max'")
    return module


class FailureLogCallback(tune.Callback):
    """Logs every failed trial attempt (retried or final) to ``trial_failures.jsonl``."""

    def __init__(self, path: Path):
        self._path = path

    def _log(self, trial, retried: bool) -> None:
        error = ""
        if trial.error_file and os.path.isfile(trial.error_file):
            error = Path(trial.error_file).read_text().strip().splitlines()[-1][:500]
        rec = {"trial_id": trial.trial_id, "num_failures": trial.num_failures,
               "retried": retried, "error": error}
        logger.warning("trial %s failed (failure %d, %s): %s", trial.trial_id,
                       trial.num_failures, "retrying" if retried else "giving up", error)
        with self._path.open("a") as f:
            f.write(json.dumps(rec) + "\n")

    def on_trial_recover(self, iteration, trials, trial, **info):
        self._log(trial, retried=True)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._log(trial, retried=False)


def _make_scheduler(s: TuneSettings, plugin: ModuleType, stops_path: Path):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, TrialScheduler

    if s.scheduler == "fifo":
        return FIFOScheduler()
    max_t = s.max_t
    if max_t is None:
        hook = getattr(plugin, "max_iterations", None)
        max_t = int(hook(s.base_config)) if hook else 1000

    # The plug-in's clock (e.g. boosting rounds when a trial reports every k rounds).
    time_attr = getattr(plugin, "TIME_ATTR", "training_iteration")

    class RecordingASHA(ASHAScheduler):
        """ASHA that writes down which trials it stopped (for the results table)."""

        def on_trial_result(self, tune_controller, trial, result):
            decision = super().on_trial_result(tune_controller, trial, result)
            if decision == TrialScheduler.STOP and result.get(time_attr, 0) < self._max_t:
                with stops_path.open("a") as f:
                    f.write(json.dumps({"trial_id": trial.trial_id,
                                        "iteration": result.get(time_attr)}) + "\n")
            return decision

    return RecordingASHA(time_attr=time_attr, max_t=max_t,
                         grace_period=min(s.grace_period, max_t),
                         reduction_factor=s.reduction_factor)


def _max_concurrent_trials(s: TuneSettings, plugin: ModuleType) -> int | None:
    """--max-concurrent, bounded by the plug-in's ``max_concurrent_trials`` hook (trials
    whose workers fit the cluster at once) where it has one; needs a connected Ray."""
    hook = getattr(plugin, "max_concurrent_trials", None)
    if hook is None:
        return s.max_concurrent
    fits = int(hook(dict(s.base_config)))
    return min(fits, s.max_concurrent) if s.max_concurrent else fits


def _make_search(s: TuneSettings, max_concurrent: int | None):
    """The searcher, limited to ``max_concurrent`` running trials (None: no limit)."""
    from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter

    if s.search == "random":
        return BasicVariantGenerator(random_state=s.seed, max_concurrent=max_concurrent or 0)
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    searcher = OptunaSearch(sampler=optuna.samplers.TPESampler(seed=s.seed))
    return ConcurrencyLimiter(searcher, max_concurrent) if max_concurrent else searcher


def _check_resources(resources) -> None:
    """Fail fast when one trial can never fit (Tune would wait forever)."""
    pgf = (resources if isinstance(resources, tune.PlacementGroupFactory)
           else tune.PlacementGroupFactory([resources]))
    cluster.check_placement(pgf.bundles, what=f"one trial (bundles {pgf.bundles})",
                            hint="Lower the trial's resources (--set ...) or add nodes.")


def _storage(uri: str) -> tuple[str, Any]:
    """(storage_path, storage_filesystem) for Tune: a local path as it is; a gs:// URI as
    the path in mlbatch.storage's file system."""
    if not storage.is_remote(uri):
        return uri, None
    loc = storage.locate(uri)
    return loc.path, loc.fs


def _settings_for_run(s: TuneSettings) -> TuneSettings:
    """On --resume the saved settings win (features, space, base config ...)."""
    path = storage.join(s.output_uri, SETTINGS_FILE)
    exp = s.experiment_uri
    if s.resume:
        exp_path, exp_fs = _storage(exp)
        if not tune.Tuner.can_restore(exp_path, storage_filesystem=exp_fs):
            raise TuneSetupError(f"--resume: no experiment to restore at {exp}")
        saved = json.loads(storage.read_text(path)) if storage.is_file(path) else {}
        if saved.get("job", s.job) != s.job:
            raise TuneSetupError(f"--resume: {exp} is a {saved['job']!r} experiment")
        return dataclasses.replace(s, **{k: v for k, v in saved.items()
                                         if k not in ("resume", "output", "address")})
    if storage.list_files(exp, limit=1):
        raise TuneSetupError(f"{exp} already holds an experiment: pass --resume to continue "
                             "it, or a new --name / --output")
    return s


def run(settings: TuneSettings, *, plugin: ModuleType | None = None) -> dict[str, Any]:
    """Runs (or resumes) the experiment; returns the best trial's summary."""
    s = _settings_for_run(settings)
    writer = ArtifactWriter(s.output_uri, "tune_run", job="ray_jobs.tune",
                            config=json.loads(json.dumps(dataclasses.asdict(s), default=str)))
    writer.claim(resume=s.resume)  # the output guard (a resumed run keeps its files)
    if not s.resume:
        write_json(storage.join(writer.root, SETTINGS_FILE), writer.config)
    with writer:  # an exception marks the output failed
        return _run(s, plugin, writer)


def _driver_logs(s: TuneSettings) -> Path:
    """Where the driver appends its per-trial logs: the experiment directory itself for a
    local --output; for gs:// a local staging directory named after the experiment URI
    (a restored experiment's scheduler and callbacks keep their paths), seeded on
    --resume with the logs the earlier run copied into the experiment."""
    if not storage.is_remote(s.experiment_uri):
        s.experiment_dir.mkdir(parents=True, exist_ok=True)
        return s.experiment_dir
    key = hashlib.sha256(s.experiment_uri.encode()).hexdigest()[:16]
    staging = Path(tempfile.gettempdir(), "mlbatch_tune_logs", key)
    staging.mkdir(parents=True, exist_ok=True)
    for name in (FAILURES_FILE, STOPS_FILE):
        (staging / name).unlink(missing_ok=True)
        uri = storage.join(s.experiment_uri, name)
        if s.resume and storage.is_file(uri):
            (staging / name).write_bytes(storage.read_bytes(uri))
    return staging


def _publish_logs(s: TuneSettings, logs: Path) -> None:
    """Copies the staged driver logs of a gs:// run into its experiment."""
    if storage.is_remote(s.experiment_uri):
        for f in logs.iterdir():
            storage.write_bytes(storage.join(s.experiment_uri, f.name), f.read_bytes())


class _Objective:
    """The plug-in, with the experiment's metric and mode in place of its own."""

    def __init__(self, plugin: ModuleType, metric: str, mode: str):
        self._plugin, self.METRIC, self.MODE = plugin, metric, mode

    def __getattr__(self, name: str) -> Any:
        return getattr(self._plugin, name)


def objective(s: TuneSettings, plugin: ModuleType) -> Any:
    """--metric/--mode checked on the driver, before any trial: the metric must be one
    the plug-in's trials report (``reported_metrics``) for these features, and a metric
    other than the plug-in's own needs its --mode."""
    if s.metric is None or s.metric == plugin.METRIC:
        return _Objective(plugin, plugin.METRIC, s.mode or plugin.MODE)
    hook = getattr(plugin, "reported_metrics", None)
    valid = tuple(hook(s.features, dict(s.base_config))) if hook else (plugin.METRIC,)
    if s.metric not in valid:
        raise TuneSetupError(f"--metric {s.metric!r}: the {s.job} trials on these features "
                             f"report {list(valid)}")
    if s.mode is None:
        raise TuneSetupError(f"--metric {s.metric!r} needs --mode min or --mode max")
    return _Objective(plugin, s.metric, s.mode)


def _run(s: TuneSettings, plugin: ModuleType | None, writer: ArtifactWriter) -> dict[str, Any]:
    plugin = plugin or load_plugin(s.job)
    space = load_space(s.search_space or plugin.SEARCH_SPACE_FILE)
    trainable = plugin.make_trainable(s.features, dict(s.base_config))  # validates first
    plugin = objective(s, plugin)
    cluster.connect(s.address)
    cluster.check_worker_env([s.features, s.output])
    resources = plugin.trial_resources(dict(s.base_config))
    _check_resources(resources)
    trainable = tune.with_resources(trainable, resources)
    exp, logs = s.experiment_uri, _driver_logs(s)
    # Save the experiment state at least every second, so that a killed driver loses at
    # most the last second of trial bookkeeping (trial progress itself is checkpointed).
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "1")
    # Per-round checkpoints with num_to_keep force snapshots by design (that keeps the
    # snapshot consistent with the kept checkpoints); Tune's warning about it is noise.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if s.resume:
        logger.info("resuming %s", exp)
        exp_path, exp_fs = _storage(exp)
        tuner = tune.Tuner.restore(exp_path, trainable=trainable, resume_unfinished=True,
                                   resume_errored=True, storage_filesystem=exp_fs)
    else:
        max_concurrent = _max_concurrent_trials(s, plugin)
        tuner = tune.Tuner(
            trainable, param_space=space,
            tune_config=tune.TuneConfig(
                metric=plugin.METRIC, mode=plugin.MODE, num_samples=s.num_samples,
                search_alg=_make_search(s, max_concurrent),
                scheduler=_make_scheduler(s, plugin, logs / STOPS_FILE),
                # A finished trial's process (Ray Tune + the job's imports loaded) runs
                # the next trial: saves seconds of worker start-up per trial; a plug-in
                # whose trials own other actors (a Ray Train run) turns it off.
                reuse_actors=getattr(plugin, "REUSE_ACTORS", True),
                trial_dirname_creator=lambda trial: f"trial_{trial.trial_id}"),
            run_config=_run_config(s, logs))
    results = tuner.fit()
    _publish_logs(s, logs)
    features = writer.input_artifact("features", s.features, "features")
    summary = report.write(results, plugin, writer.root, exp, logs, features=features.root)
    report.commit(writer, summary, plugin, s.job, s.run_name)
    return summary


def _run_config(s: TuneSettings, logs: Path) -> tune.RunConfig:
    from ray.tune.logger import TBXLoggerCallback

    storage_path, storage_filesystem = _storage(s.output_uri)
    return tune.RunConfig(
        name=s.run_name, storage_path=storage_path, storage_filesystem=storage_filesystem,
        failure_config=tune.FailureConfig(max_failures=s.max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
        callbacks=[TBXLoggerCallback(), FailureLogCallback(logs / FAILURES_FILE)],
        verbose=1)
