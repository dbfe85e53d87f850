"""The ``cooccurrence`` artifact: what the co-occurrence job writes and its readers read.

A co-occurrence directory (``python -m beam_jobs.cooccurrence``) holds::

    vocab/part-00000-of-00001.parquet      id int32, token string, count int64 (id order)
    cooccurrence/part-SSSSS-of-NNNNN.parquet   COO triplets row int32, col int32,
                                           value float64; shard S holds rows
                                           [S * rows_per_shard, (S + 1) * rows_per_shard)
    ppmi/part-*.parquet                    the same layout (optional)
    vectors/part-00000-of-00001.parquet    id, token, vector fixed_size_list<float32>
    vectors.txt                            the same vectors, word2vec text (optional)
    summary.json                           counts per stage (files, lines, tokens, ...)
    dead_letter/part-*.parquet             skipped files and lines (beam_jobs.common.
                                           deadletter records: source, offset, reason)
    artifact.json                          the commit marker; its "cooccurrence" section:

    "cooccurrence": {
      "vocab_size", "rows_per_shard", "window", "min_count", "weighting", "direction",
      "tokenizer": {"pattern", "lowercase"},
      "files": {"vocab", "cooccurrence", "ppmi"?, "vectors"?, "word2vec"?, "summary",
                "dead_letter"},                     relative paths of the parts above
      "nnz": {"cooccurrence", "ppmi"?}, "vector_dim": int | null,
      "checks": {"<count check>": true, ...}      every one true, or nothing is committed
    }

This module is the only code besides the job's writer that knows the layout: read a
directory through ``load_cooccurrence`` (local path or ``gs://`` URI).
"""
from __future__ import annotations

import dataclasses
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp

from mlbatch import storage
from mlbatch.artifacts.base import read_json
from mlbatch.artifacts.manifest import ArtifactError, Manifest, read_manifest

TYPE = "cooccurrence"


class Layout:
    """Relative paths of the parts of a co-occurrence directory (the writer's defaults;
    readers follow the paths recorded in artifact.json)."""
    VOCAB = "vocab"
    COOCCURRENCE = "cooccurrence"
    PPMI = "ppmi"
    VECTORS = "vectors"
    WORD2VEC = "vectors.txt"
    SUMMARY = "summary.json"
    DEAD_LETTER = "dead_letter"


class CooccurrenceContractError(ArtifactError):
    """The directory is not a readable co-occurrence artifact (the message says why)."""


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    tokens: list[str]  # index = id
    counts: np.ndarray  # int64, same order


def shard_files(directory: str) -> list[str]:
    """URIs of the ``part-*.parquet`` files directly under a directory, sorted."""
    return [storage.join(directory, f.relpath) for f in storage.list_files(directory)
            if "/" not in f.relpath and f.relpath.startswith("part-")
            and f.relpath.endswith(".parquet")]


def read_parquet(uri: str, columns: list[str] | None = None) -> pa.Table:
    loc = storage.locate(uri)
    return pq.read_table(loc.path, columns=columns, filesystem=loc.fs)


def parquet_rows(directory: str) -> tuple[int, int]:
    """(number of part files, total rows from their footers) of a directory."""
    files = shard_files(directory)
    rows = 0
    for uri in files:
        loc = storage.locate(uri)
        with loc.fs.open_input_file(loc.path) as f:
            rows += pq.ParquetFile(f).metadata.num_rows
    return len(files), rows


def _read_parts(directory: str, what: str) -> pa.Table:
    files = shard_files(directory)
    if not files:
        raise CooccurrenceContractError(f"{what}: no Parquet parts under {directory}")
    tables = [read_parquet(uri) for uri in files]
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


@dataclasses.dataclass(frozen=True)
class CooccurrenceArtifact:
    """A committed co-occurrence artifact (the reader's view)."""
    root: str
    manifest: Manifest

    @property
    def body(self) -> dict:
        return self.manifest.body

    @property
    def digest(self) -> str:
        return self.manifest.digest

    @property
    def config(self) -> dict:
        return self.manifest.config

    @property
    def vocab_size(self) -> int:
        return int(self.body["vocab_size"])

    @property
    def shape(self) -> tuple[int, int]:
        return self.vocab_size, self.vocab_size

    def uri(self, part: str) -> str:
        """URI of a part ("vocab", "cooccurrence", "ppmi", ...); refuses a missing one."""
        rel = self.body["files"].get(part)
        if rel is None:
            raise CooccurrenceContractError(
                f"{self.root} has no {part!r} output (the run that wrote it did not ask for "
                f"it; parts: {sorted(self.body['files'])})")
        return storage.join(self.root, rel)

    def has(self, part: str) -> bool:
        return self.body["files"].get(part) is not None

    def vocabulary(self) -> Vocabulary:
        table = _read_parts(self.uri("vocab"), "vocab").sort_by("id")
        if table.num_rows != self.vocab_size:
            raise CooccurrenceContractError(
                f"{self.uri('vocab')} holds {table.num_rows} tokens but artifact.json "
                f"records {self.vocab_size}: the directory changed after it was committed")
        return Vocabulary(table["token"].to_pylist(), table["count"].to_numpy())

    def matrix(self, part: str = "cooccurrence") -> sp.csr_matrix:
        """The "cooccurrence" counts or the "ppmi" matrix, V x V CSR (float64)."""
        table = _read_parts(self.uri(part), part)
        return sp.csr_matrix((table["value"].to_numpy(), (table["row"].to_numpy(),
                                                          table["col"].to_numpy())),
                             shape=self.shape)

    def counts(self) -> sp.csr_matrix:
        return self.matrix("cooccurrence")

    def ppmi(self) -> sp.csr_matrix:
        return self.matrix("ppmi")

    def vectors(self) -> tuple[list[str], np.ndarray]:
        """(tokens, vectors V x dim float32) of the SVD word vectors."""
        table = _read_parts(self.uri("vectors"), "vectors").sort_by("id")
        flat = table["vector"].combine_chunks().flatten().to_numpy()
        return table["token"].to_pylist(), flat.reshape(table.num_rows, -1)

    def summary(self) -> dict:
        return read_json(self.uri("summary"))

    def dead_letters(self) -> pa.Table:
        """Every skipped file and line: job, table, source, line, offset, reason, raw."""
        files = shard_files(self.uri("dead_letter"))
        tables = [read_parquet(uri) for uri in files]
        if not tables:
            raise CooccurrenceContractError(f"no dead-letter file under "
                                            f"{self.uri('dead_letter')}")
        return pa.concat_tables(tables)


def load_cooccurrence(root: str | os.PathLike) -> CooccurrenceArtifact:
    """The one reader of a co-occurrence directory.

    Raises CooccurrenceContractError (an ArtifactError) naming the cause: missing,
    uncommitted (quoting why its run failed), another type, an unknown major format
    version, a malformed section or counts that did not reconcile.
    """
    try:
        m = read_manifest(root, TYPE)
    except ArtifactError as e:
        raise CooccurrenceContractError(str(e)) from e
    body = m.body
    missing = [k for k in ("vocab_size", "files", "checks") if k not in body]
    if missing or not isinstance(body.get("files"), dict):
        raise CooccurrenceContractError(f"{m.root}: malformed cooccurrence section "
                                        f"(missing {missing or ['files']})")
    failed = [name for name, ok in body["checks"].items() if not ok]
    if failed:
        raise CooccurrenceContractError(f"{m.root}: the counts do not reconcile: checks "
                                        f"{failed} failed (see summary.json)")
    return CooccurrenceArtifact(root=m.root, manifest=m)
