"""The jobs a pipeline step may name, declared without importing them.

A step's ``job`` must be one of these; its ``args`` keys must be among the job's flags
(``key_name`` for ``--key-name``). The spec loader checks steps against this table only,
so a pipeline naming a job that is not installed yet still loads (and fails when run).
``code`` lists the source folders whose files make up the job's code version (cache key).
"""
from __future__ import annotations

import dataclasses

BEAM_COMMON = ("mlbatch", "beam_jobs/common")
RAY_COMMON = ("mlbatch", "ray_jobs/common")


@dataclasses.dataclass(frozen=True)
class JobInfo:
    module: str  # python -m <module>
    kind: str  # "beam" (runs locally or on Dataflow) | "ray" (locally or on a Ray cluster) | "local"
    artifact_type: str  # the type of the artifact the job commits in its output
    flags: frozenset[str]  # accepted args keys (the runner adds output/overwrite/address)
    code: tuple[str, ...]  # source folders, relative to the repository root
    positional: tuple[str, ...] = ()  # args keys passed as positional arguments, in order
    ok_exits: frozenset[int] = frozenset({0})  # exit statuses of a run that committed


def _job(module: str, kind: str, artifact_type: str, flags: str, code: tuple[str, ...],
         **kw) -> JobInfo:
    return JobInfo(module, kind, artifact_type, frozenset(flags.split()), code, **kw)


_XGB_FLAGS = ("features num_actors cpus_per_actor gpus_per_actor num_boost_round "
              "early_stopping_rounds params set max_actor_restarts checkpoint_frequency "
              "placement_timeout no_data_check")
_JAX_FLAGS = "features config num_workers devices_per_worker epochs batch_size platform set"
_TUNE_FLAGS = ("job features num_samples search scheduler max_concurrent search_space name "
               "max_failures seed grace_period reduction_factor max_t base_config set")
_COOC_FLAGS = ("input window min_count weighting direction token_pattern no_lowercase ppmi "
               "ppmi_alpha ppmi_shift svd_dim svd_power seed rows_per_shard shard_nnz "
               "batch_bytes split_bytes max_line_bytes")
_FEATURE_FLAGS = ("schema input chunk_rows compression row_group_rows num_shards analyzers "
                  "max_dead_letter_share")

JOBS: dict[str, JobInfo] = {
    "beam_jobs.features": _job("beam_jobs.features", "beam", "features", _FEATURE_FLAGS,
                               ("beam_jobs/features", *BEAM_COMMON)),
    "beam_jobs.cooccurrence": _job("beam_jobs.cooccurrence", "beam", "cooccurrence",
                                   _COOC_FLAGS, ("beam_jobs/cooccurrence", *BEAM_COMMON)),
    "beam_jobs.score": _job("beam_jobs.score", "beam", "predictions",
                            "features model registry input schema chunk_rows compression "
                            "row_group_rows num_shards", ("beam_jobs/score", *BEAM_COMMON)),
    # late labels joined to stored predictions: out-of-time metrics (docs/serving.md)
    "beam_jobs.evaluate": _job("beam_jobs.evaluate", "beam", "evaluation",
                               "predictions labels period schema chunk_rows",
                               ("beam_jobs/evaluate", "beam_jobs/score", *BEAM_COMMON)),
    # exit 3: the check ran and committed its verdict "breach"
    "beam_jobs.monitor": _job("beam_jobs.monitor", "beam", "monitor",
                              ("baseline input against model registry schema skew_sample "
                               "chunk_rows period history threshold attributions"),
                              ("beam_jobs/monitor", *BEAM_COMMON),
                              ok_exits=frozenset({0, 3})),
    # the co-occurrence vectors vs gensim Word2Vec (its own cooccurrence_evaluation artifact)
    "beam_jobs.cooccurrence.evaluate": _job(
        "beam_jobs.cooccurrence.evaluate", "local", "cooccurrence_evaluation",
        "vectors corpus epochs workers seed max_ppmi_words", ("beam_jobs/cooccurrence", "mlbatch")),
    "ray_jobs.xgboost": _job("ray_jobs.xgboost", "ray", "xgboost_model", _XGB_FLAGS,
                             ("ray_jobs/xgboost", *RAY_COMMON)),
    "ray_jobs.jax": _job("ray_jobs.jax", "ray", "jax_model", _JAX_FLAGS,
                         ("ray_jobs/jax", *RAY_COMMON)),
    # a Tune search runs the trainers' plug-ins (ray_jobs.<job>.tuning)
    "ray_jobs.tune": _job("ray_jobs.tune", "ray", "tune_run", _TUNE_FLAGS,
                          ("ray_jobs/tune", "ray_jobs/xgboost", "ray_jobs/jax", *RAY_COMMON)),
    # blessing: exit 3 = the evaluation ran and committed its decision "refused"
    "pipelines.model_registry.bless": _job(
        "pipelines.model_registry.bless", "local", "model_evaluation",
        "model name features registry value change slice min_slice_rows after",
        ("pipelines/model_registry", "pipelines/lineage", "mlbatch"),
        ok_exits=frozenset({0, 3})),
    "pipelines.report": _job("pipelines.report", "local", "run_report", "run",
                             ("pipelines", "mlbatch"),
                             positional=("run",)),
}
