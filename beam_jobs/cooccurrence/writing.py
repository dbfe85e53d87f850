"""Output writing for the co-occurrence job (any Beam file system).

One Parquet file per row shard (``part-SSSSS-of-NNNNN.parquet``), written to a temporary
name and renamed, so a retried bundle never leaves a half-written shard. Where each part
goes is ``mlbatch.artifacts.cooccurrence.Layout``; the commit is ``artifacts.finalize``.
"""
from __future__ import annotations

import logging

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp
from apache_beam.io.filesystems import FileSystems

from mlbatch.artifacts import write_json

TRIPLET_SCHEMA = pa.schema([("row", pa.int32()), ("col", pa.int32()), ("value", pa.float64())])
VOCAB_SCHEMA = pa.schema([("id", pa.int32()), ("token", pa.string()), ("count", pa.int64())])
WORD2VEC_ROWS = 4096  # rows formatted per write

LOGGER = logging.getLogger(__name__)


def _replace(tmp: str, path: str) -> None:
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([tmp], [path])


def write_parquet(table: pa.Table, path: str) -> None:
    """Writes ``table`` to ``path`` atomically (temporary name, then rename)."""
    tmp = f"{path}.tmp"
    with FileSystems.create(tmp) as f:
        pq.write_table(table, f, row_group_size=1 << 20)
    _replace(tmp, path)


def shard_name(directory: str, shard: int, num_shards: int) -> str:
    return FileSystems.join(directory, f"part-{shard:05d}-of-{num_shards:05d}.parquet")


def triplet_table(block: sp.csr_matrix, row_offset: int) -> pa.Table:
    """CSR block -> (row, col, value) sorted by (row, col)."""
    block = block.tocsr()
    block.sum_duplicates()
    block.sort_indices()
    rows = np.repeat(np.arange(block.shape[0], dtype=np.int32) + np.int32(row_offset),
                     np.diff(block.indptr))
    return pa.table([pa.array(rows), pa.array(block.indices.astype(np.int32)),
                     pa.array(block.data.astype(np.float64))], schema=TRIPLET_SCHEMA)


class WriteTripletShardFn(beam.DoFn):
    """((shard, num_shards), CSR block) -> one sorted Parquet file; yields its stats."""

    def __init__(self, directory: str, rows_per_shard: int) -> None:
        self._directory, self._rows_per_shard = directory, rows_per_shard

    def process(self, element):
        (shard, num_shards), block = element
        LOGGER.debug("phase: writing shard %d of %d (%d entries)", shard, num_shards,
                     block.nnz)
        table = triplet_table(block, shard * self._rows_per_shard)
        write_parquet(table, shard_name(self._directory, shard, num_shards))
        yield {"nnz": block.nnz, "total_mass": float(block.sum()), "shards": 1}


def vocab_table(tokens: list[str], counts: np.ndarray) -> pa.Table:
    return pa.table([pa.array(np.arange(len(tokens), dtype=np.int32)),
                     pa.array(tokens, pa.string()), pa.array(counts, pa.int64())],
                    schema=VOCAB_SCHEMA)


def vectors_table(tokens: list[str], vectors: np.ndarray) -> pa.Table:
    dim = vectors.shape[1]
    flat = pa.array(vectors.astype(np.float32).ravel())
    return pa.table({"id": pa.array(np.arange(len(tokens), dtype=np.int32)),
                     "token": pa.array(tokens, pa.string()),
                     "vector": pa.FixedSizeListArray.from_arrays(flat, dim)})


def write_word2vec_text(tokens: list[str], vectors: np.ndarray, path: str) -> None:
    """word2vec text format: a ``count dim`` header, then ``token v1 ... vdim`` per line."""
    bad = [t for t in tokens if not t or any(ch.isspace() for ch in t)]
    if bad:
        raise ValueError(f"{len(bad)} tokens contain whitespace and cannot be written in "
                         f"word2vec text format, e.g. {bad[0]!r}; check --token-pattern")
    tmp = f"{path}.tmp"
    with FileSystems.create(tmp) as f:
        f.write(f"{len(tokens)} {vectors.shape[1]}\n".encode())
        for start in range(0, len(tokens), WORD2VEC_ROWS):
            rows = vectors[start:start + WORD2VEC_ROWS]
            lines = [token + " " + " ".join(map("{:.6g}".format, row))
                     for token, row in zip(tokens[start:start + WORD2VEC_ROWS], rows.tolist())]
            f.write(("\n".join(lines) + "\n").encode("utf-8"))
    _replace(tmp, path)


def write_vocabulary(vocab, directory: str) -> dict:
    """Vocabulary (tokens, counts) -> ``vocab/part-00000-of-00001.parquet``; its stats."""
    write_parquet(vocab_table(vocab.tokens, vocab.counts), shard_name(directory, 0, 1))
    return vocab.stats()


def write_embedding(embedding, directory: str, word2vec_path: str) -> dict:
    """Embedding -> Parquet (id, token, vector) and word2vec text; its summary section."""
    write_parquet(vectors_table(embedding.tokens, embedding.vectors),
                  shard_name(directory, 0, 1))
    write_word2vec_text(embedding.tokens, embedding.vectors, word2vec_path)
    norms = np.linalg.norm(embedding.vectors, axis=1)
    return {"svd": {"dim": int(embedding.vectors.shape[1]), "words": len(embedding.tokens),
                    "zero_rows": int(np.count_nonzero(norms == 0)),
                    "singular_values_top10": [round(float(s), 6)
                                              for s in embedding.singular_values[:10]]}}


READ_STATS = ("files", "files_read", "empty_files", "binary_files", "unreadable_files",
              "bytes", "lines", "lines_skipped_non_utf8", "lines_skipped_too_long")
SKIP_STATS = ("empty_files", "binary_files", "unreadable_files", "lines_skipped_non_utf8",
              "lines_skipped_too_long")


def write_summary(summary: dict, path: str, ppmi: dict, svd_power: float) -> dict:
    """The merged per-stage counts -> ``summary.json`` (every read count present)."""
    summary = {**{key: 0 for key in READ_STATS}, **summary}
    summary["dead_letter_records"] = sum(summary[key] for key in SKIP_STATS)
    if "ppmi" in summary:
        summary["ppmi"].update(ppmi)
    if "svd" in summary:
        summary["svd"]["power"] = svd_power
    write_json(path, summary)
    return summary
