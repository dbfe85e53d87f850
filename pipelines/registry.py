"""The jobs a pipeline step may name, declared without importing them.

A step's ``job`` must be one of these; its ``args`` keys must be among the job's flags
(``key_name`` for ``--key-name``). The spec loader checks steps against this table only,
so a pipeline naming a job that is not installed yet still loads (and fails when run).
A job's flags are not re-typed here: they are read from its own parser's source
(``parser`` files: every ``add_argument("--flag", ...)``), less the ones the runner adds
(``RUNNER_FLAGS``). ``code`` lists the source folders whose files make up the job's code
version (cache key).
"""
from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BEAM_COMMON = ("mlbatch", "beam_jobs/common")
TABULAR = (*BEAM_COMMON, "beam_jobs/tabular")  # the Beam jobs that read raw tables
RAY_COMMON = ("mlbatch", "ray_jobs/common")
RUNNER_FLAGS = frozenset({"output", "overwrite", "address"})  # the runner sets these


@dataclasses.dataclass(frozen=True)
class JobInfo:
    module: str  # python -m <module>
    kind: str  # "beam" (runs locally or on Dataflow) | "ray" (locally or on a Ray cluster) | "local"
    artifact_type: str  # the type of the artifact the job commits in its output
    flags: frozenset[str]  # accepted args keys (the runner adds output/overwrite/address)
    code: tuple[str, ...]  # source folders, relative to the repository root
    positional: tuple[str, ...] = ()  # args keys passed as positional arguments, in order
    ok_exits: frozenset[int] = frozenset({0})  # exit statuses of a run that committed


def parser_flags(*files: str) -> frozenset[str]:
    """The ``--flag`` names (as args keys: ``key_name``) and positional names declared by
    ``add_argument`` (or an alias of it named ``add``) in these source files, relative to
    the repository."""
    names = set()
    for rel in files:
        for node in ast.walk(ast.parse((REPO / rel).read_text(), rel)):
            if (isinstance(node, ast.Call) and node.args
                    and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
                        "add_argument", "add")
                    and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)):
                names.add(node.args[0].value.lstrip("-").replace("-", "_"))
    if not names:
        raise ValueError(f"no --flags declared in {', '.join(files)}")
    return frozenset(names - RUNNER_FLAGS)


def _job(module: str, kind: str, artifact_type: str, parser: tuple[str, ...],
         code: tuple[str, ...], **kw) -> JobInfo:
    return JobInfo(module, kind, artifact_type, parser_flags(*parser), code, **kw)


JOBS: dict[str, JobInfo] = {
    "beam_jobs.features": _job("beam_jobs.features", "beam", "features",
                               ("beam_jobs/features/__main__.py",),
                               ("beam_jobs/features", *TABULAR)),
    "beam_jobs.cooccurrence": _job("beam_jobs.cooccurrence", "beam", "cooccurrence",
                                   ("beam_jobs/cooccurrence/config.py",),
                                   ("beam_jobs/cooccurrence", *BEAM_COMMON)),
    "beam_jobs.score": _job("beam_jobs.score", "beam", "predictions",
                            ("beam_jobs/score/__main__.py",), ("beam_jobs/score", *TABULAR)),
    # late labels joined to stored predictions: out-of-time metrics (docs/serving.md)
    "beam_jobs.evaluate": _job("beam_jobs.evaluate", "beam", "evaluation",
                               ("beam_jobs/evaluate/__main__.py",),
                               ("beam_jobs/evaluate", "beam_jobs/score", *TABULAR)),
    # exit 3: the check ran and committed its verdict "breach"
    "beam_jobs.monitor": _job("beam_jobs.monitor", "beam", "monitor",
                              ("beam_jobs/monitor/__main__.py",),
                              ("beam_jobs/monitor", *TABULAR), ok_exits=frozenset({0, 3})),
    # the co-occurrence vectors vs gensim Word2Vec (its own cooccurrence_evaluation artifact)
    "beam_jobs.cooccurrence.evaluate": _job(
        "beam_jobs.cooccurrence.evaluate", "local", "cooccurrence_evaluation",
        ("beam_jobs/cooccurrence/evaluate.py",), ("beam_jobs/cooccurrence", "mlbatch")),
    "ray_jobs.xgboost": _job("ray_jobs.xgboost", "ray", "xgboost_model",
                             ("ray_jobs/xgboost/__main__.py",), ("ray_jobs/xgboost", *RAY_COMMON)),
    "ray_jobs.jax": _job("ray_jobs.jax", "ray", "jax_model", ("ray_jobs/jax/__main__.py",),
                         ("ray_jobs/jax", *RAY_COMMON)),
    # a Tune search runs the trainers' plug-ins (ray_jobs.<job>.tuning)
    "ray_jobs.tune": _job("ray_jobs.tune", "ray", "tune_run", ("ray_jobs/tune/__main__.py",),
                          ("ray_jobs/tune", "ray_jobs/xgboost", "ray_jobs/jax", *RAY_COMMON)),
    # blessing: exit 3 = the evaluation ran and committed its decision "refused"
    "pipelines.model_registry.bless": _job(
        "pipelines.model_registry.bless", "local", "model_evaluation",
        ("pipelines/model_registry/bless.py",),
        ("pipelines/model_registry", "pipelines/lineage", "mlbatch"),
        ok_exits=frozenset({0, 3})),
    "pipelines.report": _job("pipelines.report", "local", "run_report",
                             ("pipelines/report/__main__.py",), ("pipelines", "mlbatch"),
                             positional=("run",)),
}
