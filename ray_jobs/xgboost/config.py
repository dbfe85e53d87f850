"""Configuration of the distributed XGBoost job: frozen, validated, no side effects.

Two layers:

* ``Layout`` -- how many xgboost-ray actors and what each one asks of Ray.
* ``XGBoostConfig`` -- the job: feature directory, output, layout, rounds, booster params.

Booster parameters are validated against the parameters XGBoost knows (a typo such as
``max_dpeth`` is silently ignored by XGBoost itself; here it is an error naming it).
Objective and eval metrics follow the label task in the feature manifest, so they are
resolved by :meth:`XGBoostConfig.booster_params` once the task is known.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from mlbatch import config as config_files
from mlbatch.config import ConfigError
from mlbatch.metrics import EARLY_STOPPING_METRICS

__all__ = ["ConfigError", "Layout", "XGBoostConfig", "load_params_file", "normalize_params"]


# Defaults of the tuned hyperparameters (canonical names), shared with tuning.py.
DEFAULT_PARAMS: Mapping[str, Any] = MappingProxyType({
    "eta": 0.1, "max_depth": 6, "min_child_weight": 1.0, "subsample": 1.0,
    "colsample_bytree": 1.0, "lambda": 1.0, "alpha": 0.0, "max_bin": 256,
})

# Per task: objective default, allowed objectives, per-round eval metrics (the LAST one
# drives early stopping and is what Tune's ASHA compares), and its direction.
TASK_PARAMS: Mapping[str, Mapping[str, Any]] = MappingProxyType({
    "binary_classification": {
        "objective": "binary:logistic", "objectives": ("binary:logistic",),
        "eval_metric": ("auc", "error", "logloss"), "mode": "min"},
    "regression": {
        "objective": "reg:squarederror",
        "objectives": ("reg:squarederror", "reg:absoluteerror", "reg:pseudohubererror",
                       "reg:squaredlogerror", "reg:gamma", "reg:tweedie", "count:poisson"),
        "eval_metric": ("mae", "rmse"), "mode": "min"},
    "multiclass_classification": {
        "objective": "multi:softprob", "objectives": ("multi:softprob",),
        "eval_metric": ("merror", "mlogloss"), "mode": "min"},
})

ALIASES: Mapping[str, str] = MappingProxyType({
    "learning_rate": "eta", "reg_lambda": "lambda", "reg_alpha": "alpha",
    "min_split_loss": "gamma", "random_state": "seed"})

# Tree-booster and learning-task parameters of XGBoost 2.0 (doc/parameter.rst).
KNOWN_PARAMS = frozenset({
    "eta", "gamma", "max_depth", "min_child_weight", "max_delta_step", "subsample",
    "sampling_method", "colsample_bytree", "colsample_bylevel", "colsample_bynode",
    "lambda", "alpha", "tree_method", "scale_pos_weight", "grow_policy", "max_leaves",
    "max_bin", "num_parallel_tree", "monotone_constraints", "interaction_constraints",
    "multi_strategy", "max_cached_hist_node", "objective", "base_score", "seed",
    "seed_per_iteration", "verbosity", "booster", "max_cat_to_onehot", "max_cat_threshold",
    "tweedie_variance_power", "huber_slope", "rate_drop", "one_drop", "skip_drop",
    "sample_type", "normalize_type", "validate_parameters",
})
# Set by the job itself; a value in --params would fight it.
MANAGED_PARAMS: Mapping[str, str] = MappingProxyType({
    "nthread": "--cpus-per-actor", "n_jobs": "--cpus-per-actor",
    "device": "--gpus-per-actor", "gpu_id": "--gpus-per-actor",
    "eval_metric": "the label task (the feature artifact)",
    "num_class": "the label's classes (the feature artifact)",
    "num_boost_round": "--num-boost-round", "n_estimators": "--num-boost-round",
})
TREE_METHODS = ("hist", "approx")  # "exact" cannot train distributed


@dataclasses.dataclass(frozen=True)
class Layout:
    """xgboost-ray actors: ``num_actors`` x (``cpus_per_actor`` CPUs, ``gpus_per_actor`` GPUs)."""
    num_actors: int
    cpus_per_actor: int
    gpus_per_actor: int = 0

    def __post_init__(self):
        _require_int("num_actors", self.num_actors, minimum=1)
        _require_int("cpus_per_actor", self.cpus_per_actor, minimum=1)
        _require_int("gpus_per_actor", self.gpus_per_actor, minimum=0)

    @property
    def total_cpus(self) -> int:
        return self.num_actors * self.cpus_per_actor

    @property
    def total_gpus(self) -> int:
        return self.num_actors * self.gpus_per_actor

    def describe(self) -> str:
        gpus = f", {self.gpus_per_actor} GPU" if self.gpus_per_actor else ""
        return f"{self.num_actors} actor(s) x ({self.cpus_per_actor} CPU{gpus})"


@dataclasses.dataclass(frozen=True)
class XGBoostConfig:
    features: str
    output: str
    address: str | None = None
    # None: the default layout (see cluster.default_layout and docs/xgboost.md).
    num_actors: int | None = None
    cpus_per_actor: int | None = None
    gpus_per_actor: int = 0
    num_boost_round: int = 500
    early_stopping_rounds: int | None = 20
    early_stopping_metric: str = "eval_loss"  # or objective_loss (mlbatch.metrics)
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    max_actor_restarts: int = 2
    checkpoint_frequency: int = 5
    placement_timeout_s: float = 60.0
    check_data: bool = True  # full NaN/inf/label scan of the Parquet before training

    def __post_init__(self):
        if not self.features:
            raise ConfigError("features: a feature directory is required")
        if not self.output:
            raise ConfigError("output: an output directory is required")
        if self.num_actors is not None:
            _require_int("num_actors", self.num_actors, minimum=1)
        if self.cpus_per_actor is not None:
            _require_int("cpus_per_actor", self.cpus_per_actor, minimum=1)
        _require_int("gpus_per_actor", self.gpus_per_actor, minimum=0)
        _require_int("num_boost_round", self.num_boost_round, minimum=1)
        if self.early_stopping_rounds is not None:
            _require_int("early_stopping_rounds", self.early_stopping_rounds, minimum=1)
        if self.early_stopping_metric not in EARLY_STOPPING_METRICS:
            raise ConfigError(f"early_stopping_metric {self.early_stopping_metric!r}: expected "
                              f"one of {EARLY_STOPPING_METRICS}")
        _require_int("max_actor_restarts", self.max_actor_restarts, minimum=-1)
        _require_int("checkpoint_frequency", self.checkpoint_frequency, minimum=1)
        if not self.placement_timeout_s > 0:
            raise ConfigError(f"placement_timeout_s must be > 0, got {self.placement_timeout_s}")
        object.__setattr__(self, "params", MappingProxyType(normalize_params(self.params)))

    def booster_params(self, task: str, num_class: int = 0) -> dict[str, Any]:
        """XGBoost params for the label task: defaults < --params < task/device settings
        (``num_class``: the multiclass label's number of classes)."""
        if task not in TASK_PARAMS:
            raise ConfigError(f"label task {task!r} not in {tuple(TASK_PARAMS)}")
        if (task == "multiclass_classification") != (num_class >= 2):
            raise ConfigError(f"num_class {num_class}: a multiclass_classification label "
                              "(only) has >= 2 classes")
        spec = TASK_PARAMS[task]
        params = {**DEFAULT_PARAMS, "tree_method": "hist", "objective": spec["objective"],
                  **self.params}
        if params["objective"] not in spec["objectives"]:
            raise ConfigError(f"params.objective {params['objective']!r} does not fit the "
                              f"{task} label; use one of {spec['objectives']}")
        if params["tree_method"] not in TREE_METHODS:
            raise ConfigError(f"params.tree_method {params['tree_method']!r}: distributed "
                              f"training supports {TREE_METHODS}")
        params["eval_metric"] = list(spec["eval_metric"])
        if num_class:
            params["num_class"] = int(num_class)
        params["device"] = "cuda" if self.gpus_per_actor > 0 else "cpu"
        return params


def normalize_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Canonical names, known keys only, scalar values; raises ConfigError naming the key."""
    if not isinstance(params, Mapping):
        raise ConfigError(f"params must be a mapping of XGBoost parameters, got {type(params)}")
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = ALIASES.get(key, key)
        if key in MANAGED_PARAMS:
            raise ConfigError(f"params.{key} is set by the job from {MANAGED_PARAMS[key]}; "
                              "remove it from the params")
        if name not in KNOWN_PARAMS:
            raise ConfigError(f"params.{key}: unknown XGBoost parameter "
                              f"(known: {', '.join(sorted(KNOWN_PARAMS))})")
        if name in out:
            raise ConfigError(f"params.{key}: given twice (as {name!r} and an alias)")
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            if name not in ("monotone_constraints", "interaction_constraints"):
                raise ConfigError(f"params.{key}: expected a number or string, got {value!r}")
        out[name] = value
    _check_ranges(out)
    return out


_RANGES = {"eta": (0.0, None, False), "max_depth": (0, None, True),
           "min_child_weight": (0.0, None, True), "subsample": (0.0, 1.0, False),
           "colsample_bytree": (0.0, 1.0, False), "lambda": (0.0, None, True),
           "alpha": (0.0, None, True), "gamma": (0.0, None, True), "max_bin": (2, None, True)}


def _check_ranges(params: Mapping[str, Any]) -> None:
    for name, (lo, hi, lo_inclusive) in _RANGES.items():
        if name not in params:
            continue
        v = params[name]
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ConfigError(f"params.{name}: expected a number, got {v!r}")
        if (v < lo if lo_inclusive else v <= lo) or (hi is not None and v > hi):
            bound = f"{'[' if lo_inclusive else '('}{lo}, {hi if hi is not None else 'inf'}]"
            raise ConfigError(f"params.{name}={v} outside {bound}")


def load_params_file(path: str | Path) -> dict[str, Any]:
    """Reads booster params from a JSON or YAML mapping file (``mlbatch.config``)."""
    return config_files.load_file(path, flag="--params")


def _require_int(name: str, value: Any, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
