"""The job's output as a committed ``cooccurrence`` artifact (``mlbatch.artifacts``).

``start`` claims ``--output`` (the one output guard) and records every corpus file by
URI, size and SHA-256 before the pipeline runs; ``finalize`` reads the pipeline's
``summary.json`` back, checks that the counts reconcile with the files written, and
commits (``artifact.json`` last). A run that fails leaves the directory uncommitted
with its reason, which every reader quotes.
"""
from __future__ import annotations

import dataclasses
import math

from beam_jobs.cooccurrence.config import JOB, CooccurrenceConfig
from beam_jobs.cooccurrence.writing import SKIP_STATS
from mlbatch import storage
from mlbatch.artifacts import ArtifactWriter, Manifest, read_json
from mlbatch.artifacts.cooccurrence import TYPE, Layout, parquet_rows
from mlbatch.errors import JobError

METRICS = ("files", "files_read", "bytes", "lines", "tokens", "distinct_tokens",
           "kept_tokens", "vocab_size", "nnz", "total_mass", "shards", "dead_letter_records")


class ReconcileError(RuntimeError, JobError):
    """The job's counts disagree with what it wrote; nothing is committed."""


def start(config: CooccurrenceConfig, pipeline_args: list[str],
          corpus: list[tuple[str, int]]) -> ArtifactWriter:
    """Claims --output and records the corpus files (uncommitted until ``finalize``)."""
    recorded = {k: v for k, v in dataclasses.asdict(config).items() if k != "overwrite"}
    writer = ArtifactWriter(config.output, TYPE, job=JOB,
                            config={**recorded, "pipeline_args": list(pipeline_args)})
    writer.claim(overwrite=config.overwrite)
    try:
        for path, size in corpus:
            writer.input_file("corpus", path, size=size)
    except BaseException as err:
        writer.fail(f"{type(err).__name__}: {err}")
        raise
    return writer


def _part(writer: ArtifactWriter, rel: str) -> str:
    return storage.join(writer.root, rel)


def _checks(writer: ArtifactWriter, config: CooccurrenceConfig, summary: dict
            ) -> dict[str, bool]:
    corpus_files = sum(1 for e in writer.inputs if e["role"] == "corpus")
    _, dead_rows = parquet_rows(_part(writer, Layout.DEAD_LETTER))
    _, vocab_rows = parquet_rows(_part(writer, Layout.VOCAB))
    shards, nnz_rows = parquet_rows(_part(writer, Layout.COOCCURRENCE))
    checks = {
        "files_read_equal_files_recorded": summary["files"] == corpus_files,
        "files_equal_read_plus_skipped": summary["files"] == summary["files_read"] + sum(
            summary[k] for k in ("empty_files", "binary_files", "unreadable_files")),
        "dead_letter_rows_equal_skips": dead_rows == sum(summary[k] for k in SKIP_STATS),
        "tokens_equal_kept_plus_dropped":
            summary["tokens"] == summary["kept_tokens"] + summary["dropped_tokens"],
        "vocab_rows_equal_vocab_size": vocab_rows == summary["vocab_size"],
        "cooccurrence_rows_equal_nnz": nnz_rows == summary["nnz"],
        "one_shard_per_row_block":
            shards == math.ceil(summary["vocab_size"] / config.rows_per_shard),
    }
    if config.compute_ppmi:
        _, ppmi_rows = parquet_rows(_part(writer, Layout.PPMI))
        checks["ppmi_rows_equal_ppmi_nnz"] = ppmi_rows == summary["ppmi"]["nnz"]
    return checks


def _section(config: CooccurrenceConfig, summary: dict, checks: dict) -> dict:
    files = {"vocab": Layout.VOCAB, "cooccurrence": Layout.COOCCURRENCE,
             "summary": Layout.SUMMARY, "dead_letter": Layout.DEAD_LETTER}
    nnz = {"cooccurrence": summary["nnz"]}
    if config.compute_ppmi:
        files["ppmi"] = Layout.PPMI
        nnz["ppmi"] = summary["ppmi"]["nnz"]
    if config.svd_dim:
        files.update(vectors=Layout.VECTORS, word2vec=Layout.WORD2VEC)
    return {"vocab_size": summary["vocab_size"], "rows_per_shard": config.rows_per_shard,
            "window": config.window, "min_count": config.min_count,
            "weighting": config.weighting, "direction": config.direction,
            "tokenizer": {"pattern": config.token_pattern, "lowercase": config.lowercase},
            "files": files, "nnz": nnz, "vector_dim": config.svd_dim or None,
            "checks": checks}


def finalize(writer: ArtifactWriter, config: CooccurrenceConfig) -> Manifest:
    """Reconciles the counts and commits the artifact; raises ReconcileError when they
    disagree (the caller records the failure, as for any other)."""
    summary = read_json(_part(writer, Layout.SUMMARY))
    checks = _checks(writer, config, summary)
    failed = [name for name, ok in checks.items() if not ok]
    if failed:
        raise ReconcileError(f"counts do not reconcile: {', '.join(failed)} "
                             f"(see {_part(writer, Layout.SUMMARY)})")
    writer.metrics.update({k: summary[k] for k in METRICS})
    if config.compute_ppmi:
        writer.metrics["ppmi_nnz"] = summary["ppmi"]["nnz"]
    if config.svd_dim:
        writer.metrics["svd_dim"] = summary["svd"]["dim"]
    rows = {"vocab": summary["vocab_size"], "cooccurrence": summary["nnz"],
            "dead_letter": summary["dead_letter_records"]}
    return writer.commit(body=_section(config, summary, checks), rows=rows)
