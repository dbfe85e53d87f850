"""The JAX wide-and-deep job's one configuration object.

Hyperparameters, sharding options and run options live side by side in one frozen
dataclass, validated in ``__post_init__`` (errors name the field). It is built from
defaults, an optional YAML/JSON ``--config`` file and command-line flags; it travels to
Ray workers and Tune trials as a plain dict (``to_dict``) and is rebuilt first thing there.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from pathlib import Path
from typing import Any

from mlbatch import config as config_files
from mlbatch.config import ConfigError
from mlbatch.metrics import EARLY_STOPPING_METRICS

__all__ = ["ConfigError", "JaxConfig", "fit_batch", "from_dict", "load_file"]

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "warmup_cosine", "exponential")
PLATFORMS = ("cpu", "gpu", "tpu")

# Fields that may change between a checkpoint and its resumption without changing the
# result: where and how often things run, not what is computed.
OPERATIONAL_FIELDS = frozenset({
    "checkpoint_every_steps", "keep_checkpoints", "log_every_steps",
    "num_workers", "devices_per_worker", "shard_embeddings", "shard_min_rows",
    "worker_cpus", "platform", "placement_strategy", "coordinator_host", "inflight_steps",
    "steps_per_dispatch",
    "coordinator_port", "fuse_gradients", "max_restarts", "xla_cpu_threads"})

# Result fields added after checkpoints were written, at the value those checkpoints ran
# with (a checkpoint without the field resumes under it; driver.check_resumable).
ADDED_RESULT_FIELDS = {"early_stopping_metric": "eval_loss", "min_steps_per_epoch": 0}


@dataclasses.dataclass(frozen=True)
class JaxConfig:
    # --- run -------------------------------------------------------------------------
    seed: int = 0
    epochs: int = 10
    # global: over all workers and devices. 2048 (with learning rate 4e-3) rather than 512
    # (1e-3): the same eval AUC or better on the flights features, and a quarter of the
    # per-step costs that several processes pay (dispatch, the gradient all-reduce); see
    # docs/jax.md "Default batch size".
    batch_size: int = 2048
    # Small tables: the batch is capped so an epoch has at least this many steps, and the
    # learning rate scaled by the same factor (``fit_batch``; 0: no cap).
    min_steps_per_epoch: int = 8
    eval_batch_size: int = 4096  # global
    # --- model -----------------------------------------------------------------------
    embedding_dim: int = 16
    hidden_sizes: tuple[int, ...] = (256, 128)
    # --- L2 penalty lambda * ||w||^2, separately for the wide and the deep part ---------
    # (defaults: the best of a few hand-tried values on the flights features)
    l2_wide: float = 1e-4
    l2_deep: float = 1e-4
    # --- optimizer and learning-rate schedule --------------------------------------------
    optimizer: str = "adam"  # adam | adamw | sgd (with momentum)
    learning_rate: float = 4e-3  # for batch 2048; fit_batch scales it with a capped batch
    momentum: float = 0.9  # sgd only
    weight_decay: float = 1e-4  # adamw only (decoupled; biases excluded)
    schedule: str = "warmup_cosine"  # constant | warmup_cosine | exponential
    warmup_steps: int = 0
    decay_rate: float = 0.5  # exponential: factor per epoch
    grad_clip_norm: float = 0.0  # 0: no clipping
    # --- early stopping on eval loss -----------------------------------------------------
    patience: int = 3  # epochs without improvement before stopping; 0 disables
    min_delta: float = 0.0  # in the metric's units (eval_loss: the label's own)
    # eval_loss (label units, as the XGBoost job) or objective_loss (the model's space)
    early_stopping_metric: str = "eval_loss"
    # --- sharding and distribution -------------------------------------------------------
    num_workers: int = 1  # JAX processes (one Ray worker per host)
    devices_per_worker: int | None = None  # None: CPU 1, accelerators all visible
    platform: str | None = None  # cpu | gpu | tpu; None: JAX's default
    shard_embeddings: bool = False  # FSDP-style: shard large tables' rows over devices
    shard_min_rows: int = 1024  # tables with fewer (padded) rows stay replicated
    # Data parallel: all gradients + loss in ONE all-reduce per step (steps.py); False:
    # XLA's own reduction (one buffer per parameter leaf; each a gloo round trip on CPU).
    fuse_gradients: bool = True
    vocab_pad_multiple: int = 64  # table rows padded to this multiple (shardable)
    data_shards: int | None = None  # data order unit; None: num_workers
    worker_cpus: float = 1.0
    placement_strategy: str = "SPREAD"  # Ray placement group strategy for workers
    coordinator_host: str | None = None  # None: rank 0's node IP
    # Steps dispatched ahead of the oldest unfinished one: enough to overlap host-side
    # batch preparation with compute; an unbounded queue holds a batch per queued step and,
    # with several CPU devices on few cores, can starve XLA's collective rendezvous.
    inflight_steps: int = 2
    # Train steps per dispatch (a lax.scan over that many batches, steps.make_train_step):
    # the host's per-step work (Python, dispatch, transfers, the processes' lockstep with
    # their host) is paid once per this many steps; an epoch's remainder goes one by one.
    steps_per_dispatch: int = 4
    coordinator_port: int | None = None  # None: rank 0 picks a free port
    # Ray workers on CPU: XLA intra-op threads per process (1: no Eigen pool at all);
    # None: XLA's default, a pool as wide as the machine in every process.
    xla_cpu_threads: int | None = None
    # --- checkpoints and logs ------------------------------------------------------------
    checkpoint_every_steps: int = 0  # 0: at the end of each epoch only
    keep_checkpoints: int = 3
    log_every_steps: int = 20
    # Ray workers: restarts of the whole worker group from the newest checkpoint after a
    # worker or its node is lost (an application error in a worker is not retried).
    max_restarts: int = 2

    def __post_init__(self):
        _positive(self, "epochs", "batch_size", "eval_batch_size", "embedding_dim",
                  "num_workers", "vocab_pad_multiple", "keep_checkpoints", "log_every_steps",
                  "inflight_steps", "steps_per_dispatch")
        _non_negative(self, "seed", "warmup_steps", "patience", "checkpoint_every_steps",
                      "max_restarts", "shard_min_rows", "min_steps_per_epoch")
        _non_negative_float(self, "l2_wide", "l2_deep", "weight_decay", "min_delta",
                            "grad_clip_norm")
        if not self.hidden_sizes or any(h < 1 for h in self.hidden_sizes):
            raise ConfigError(f"hidden_sizes: need at least one layer, all >= 1, got "
                              f"{self.hidden_sizes!r}")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise ConfigError(f"learning_rate: must be > 0, got {self.learning_rate!r}")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"momentum: must be in [0, 1), got {self.momentum!r}")
        if not 0 < self.decay_rate <= 1:
            raise ConfigError(f"decay_rate: must be in (0, 1], got {self.decay_rate!r}")
        if self.worker_cpus <= 0:
            raise ConfigError(f"worker_cpus: must be > 0, got {self.worker_cpus!r}")
        _one_of(self, "optimizer", OPTIMIZERS)
        _one_of(self, "early_stopping_metric", EARLY_STOPPING_METRICS)
        _one_of(self, "schedule", SCHEDULES)
        _one_of(self, "placement_strategy", ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"))
        if self.platform is not None:
            _one_of(self, "platform", PLATFORMS)
        if self.platform == "tpu" and self.devices_per_worker is None:
            raise ConfigError("devices_per_worker: required with platform 'tpu' (the TPU chips "
                              "each worker holds, asked of Ray as its 'TPU' resource)")
        for name in ("devices_per_worker", "data_shards", "xla_cpu_threads"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise ConfigError(f"{name}: must be >= 1 or null, got {v!r}")
        if self.coordinator_port is not None and not 0 < self.coordinator_port < 65536:
            raise ConfigError(f"coordinator_port: not a port: {self.coordinator_port!r}")
        if self.num_data_shards % self.num_workers:
            raise ConfigError(f"data_shards: {self.num_data_shards} is not a multiple of "
                              f"num_workers={self.num_workers}")
        for name in ("batch_size", "eval_batch_size"):
            if getattr(self, name) % self.num_data_shards:
                raise ConfigError(f"{name}: {getattr(self, name)} is not divisible by "
                                  f"data_shards={self.num_data_shards}")
        if self.num_devices is not None:
            for name in ("batch_size", "eval_batch_size"):
                if getattr(self, name) % self.num_devices:
                    raise ConfigError(
                        f"{name}: {getattr(self, name)} is not divisible by the device count "
                        f"{self.num_devices} (num_workers={self.num_workers} x "
                        f"devices_per_worker={self.devices_per_worker})")
            if self.shard_embeddings and self.vocab_pad_multiple % self.num_devices:
                raise ConfigError(
                    f"vocab_pad_multiple: {self.vocab_pad_multiple} must be a multiple of the "
                    f"device count {self.num_devices} when shard_embeddings is on")

    # --- derived -------------------------------------------------------------------------
    @property
    def num_data_shards(self) -> int:
        return self.data_shards if self.data_shards is not None else self.num_workers

    @property
    def resolved_devices_per_worker(self) -> int | None:
        """Devices per worker when known before any worker starts (CPU: 1 by default)."""
        if self.devices_per_worker is not None:
            return self.devices_per_worker
        return 1 if self.platform in (None, "cpu") else None

    @property
    def num_devices(self) -> int | None:
        d = self.resolved_devices_per_worker
        return None if d is None else d * self.num_workers

    @property
    def worker_gpus(self) -> int:
        return (self.devices_per_worker or 1) if self.platform == "gpu" else 0

    @property
    def worker_resources(self) -> dict[str, float]:
        """One worker's Ray bundle: its CPUs, and its GPUs or TPU chips (Ray's "GPU" and
        "TPU" resources; Ray detects the chips of a TPU VM host as "TPU")."""
        out: dict[str, float] = {"CPU": self.worker_cpus}
        if self.worker_gpus:
            out["GPU"] = self.worker_gpus
        if self.platform == "tpu":
            out["TPU"] = self.devices_per_worker
        return out

    # --- (de)serialization ---------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hidden_sizes"] = list(self.hidden_sizes)
        return d

    def replace(self, **changes) -> "JaxConfig":
        return from_dict({**self.to_dict(), **changes})

    def result_fields(self) -> dict[str, Any]:
        """The fields that determine the trained parameters (see OPERATIONAL_FIELDS)."""
        d = {k: v for k, v in self.to_dict().items() if k not in OPERATIONAL_FIELDS}
        d["data_shards"] = self.num_data_shards
        return d


def fit_batch(config: JaxConfig, smallest_shard: int, devices: int | None = None) -> JaxConfig:
    """The config a table of this size trains with: when ``batch_size`` would leave an
    epoch fewer than ``min_steps_per_epoch`` steps (``smallest_shard``: rows of the
    smallest train data shard), the batch is cut to the largest multiple of
    lcm(data_shards, devices) that gives that many steps (at least one such multiple) and
    the learning rate scaled by new / old batch (the linear scaling rule). Unchanged
    otherwise, and when ``min_steps_per_epoch`` is 0; applying it twice changes nothing.
    ``devices``: the device count when known (default: the config's, if known)."""
    if not config.min_steps_per_epoch:
        return config
    shards = config.num_data_shards
    unit = math.lcm(shards, devices or config.num_devices or 1)
    cap = smallest_shard // config.min_steps_per_epoch * shards // unit * unit
    batch = max(cap, unit)
    if batch >= config.batch_size:
        return config
    return config.replace(batch_size=batch,
                          learning_rate=config.learning_rate * batch / config.batch_size)


def _positive(cfg, *names):
    for n in names:
        v = getattr(cfg, n)
        if v < 1:
            raise ConfigError(f"{n}: must be >= 1, got {v!r}")


def _non_negative(cfg, *names):
    for n in names:
        v = getattr(cfg, n)
        if v < 0:
            raise ConfigError(f"{n}: must be >= 0, got {v!r}")


def _non_negative_float(cfg, *names):
    for n in names:
        v = getattr(cfg, n)
        if not (v >= 0 and math.isfinite(v)):
            raise ConfigError(f"{n}: must be a finite number >= 0, got {v!r}")


def _one_of(cfg, name, allowed):
    if getattr(cfg, name) not in allowed:
        raise ConfigError(f"{name}: {getattr(cfg, name)!r} not one of {allowed}")


_HINTS = None


def _hints() -> dict[str, Any]:
    global _HINTS
    if _HINTS is None:
        _HINTS = typing.get_type_hints(JaxConfig)
    return _HINTS


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """Checks one raw value (from YAML/JSON/flags/Tune) against the field's type."""
    args = typing.get_args(hint)
    if type(None) in args:  # Optional[X]
        if value is None:
            return None
        (hint,) = [a for a in args if a is not type(None)]
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{name}: expected true/false, got {value!r}")
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
            raise ConfigError(f"{name}: expected an integer, got {value!r}")
        return int(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{name}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name}: expected a string, got {value!r}")
        return value
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name}: expected a list of integers, got {value!r}")
        return tuple(_coerce(f"{name}[{i}]", v, int) for i, v in enumerate(value))
    raise TypeError(f"unsupported config type {hint!r} for {name}")


def from_dict(raw: dict[str, Any]) -> JaxConfig:
    """Builds a validated config; unknown keys and mistyped values raise ConfigError."""
    fields = {f.name for f in dataclasses.fields(JaxConfig)}
    unknown = sorted(set(raw) - fields)
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown config field (known: {sorted(fields)})")
    hints = _hints()
    return JaxConfig(**{k: _coerce(k, v, hints[k]) for k, v in raw.items()})


def load_file(path: str | Path) -> dict[str, Any]:
    """Reads a YAML or JSON config file into a raw dict (validated by from_dict)."""
    return config_files.load_file(path, flag="--config")
