"""Pure functions on the (vocabulary-bounded) sparse matrices: PPMI and truncated SVD.

PPMI with context-distribution smoothing (Levy, Goldberg & Dagan 2015), for counts X:
    PMI(w, c) = log X[w, c] - log X[w, *] - log P_alpha(c)
    P_alpha(c) = X[*, c] ** alpha / sum_c' X[*, c'] ** alpha
    PPMI(w, c) = max(PMI(w, c) - log k, 0)          (k = the shift, 1: none)
Only entries with X > 0 can be positive, so PPMI keeps X's sparsity (zeros are dropped).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import svds


class Marginals:
    """Row sums, column sums and the smoothed context normalizer of a count matrix."""

    def __init__(self, row_sums: np.ndarray, col_sums: np.ndarray) -> None:
        self.row_sums = np.asarray(row_sums, np.float64)
        self.col_sums = np.asarray(col_sums, np.float64)

    @property
    def total(self) -> float:
        return float(self.row_sums.sum())

    def __add__(self, other: Marginals) -> Marginals:
        return Marginals(self.row_sums + other.row_sums, self.col_sums + other.col_sums)


def block_marginals(block: sp.csr_matrix, row_offset: int, vocab_size: int) -> Marginals:
    """Marginals of a row block [row_offset, row_offset + rows) padded to the vocabulary."""
    rows = np.zeros(vocab_size)
    rows[row_offset:row_offset + block.shape[0]] = np.asarray(block.sum(axis=1)).ravel()
    return Marginals(rows, np.asarray(block.sum(axis=0)).ravel())


def ppmi_block(block: sp.csr_matrix, row_offset: int, marginals: Marginals,
               alpha: float = 0.75, shift: float = 1.0) -> sp.csr_matrix:
    """PPMI of a row block of counts given the whole matrix's marginals."""
    block = block.tocsr()
    block.sum_duplicates()
    block.eliminate_zeros()
    smoothed = np.power(marginals.col_sums, alpha)
    log_context = np.full(smoothed.shape, -np.inf)
    positive = smoothed > 0
    log_context[positive] = np.log(smoothed[positive]) - np.log(smoothed.sum())
    row_ids = np.repeat(np.arange(block.shape[0]), np.diff(block.indptr)) + row_offset
    pmi = (np.log(block.data) - np.log(marginals.row_sums[row_ids])
           - log_context[block.indices] - np.log(shift))
    result = sp.csr_matrix((np.maximum(pmi, 0.0), block.indices.copy(), block.indptr.copy()),
                           shape=block.shape)
    result.eliminate_zeros()
    return result


def ppmi(counts: sp.spmatrix, alpha: float = 0.75, shift: float = 1.0) -> sp.csr_matrix:
    """PPMI of a whole count matrix (one block)."""
    counts = sp.csr_matrix(counts)
    return ppmi_block(counts, 0, block_marginals(counts, 0, counts.shape[0]), alpha, shift)


def svd_vectors(matrix: sp.spmatrix, dim: int, power: float = 0.5, seed: int = 0
                ) -> tuple[np.ndarray, np.ndarray]:
    """Rows of U * S**power from a rank-``dim`` truncated SVD (ARPACK), L2-normalized.

    Singular values are returned in descending order; each component's sign is fixed so
    that its largest-magnitude entry in U is positive (deterministic output). Rows that
    are all zero stay zero.
    """
    matrix = sp.csr_matrix(matrix, dtype=np.float64)
    if not 0 < dim < min(matrix.shape):
        raise ValueError(f"--svd-dim must be between 1 and {min(matrix.shape) - 1} (the "
                         f"vocabulary size minus one), got {dim}")
    v0 = np.random.default_rng(seed).standard_normal(min(matrix.shape))
    u, s, _ = svds(matrix, k=dim, v0=v0, solver="arpack")
    order = np.argsort(s)[::-1]
    u, s = u[:, order], s[order]
    pivot = np.abs(u).argmax(axis=0)
    u = u * np.sign(u[pivot, np.arange(dim)])
    vectors = u * np.power(s, power)
    norms = np.linalg.norm(vectors, axis=1)
    nonzero = norms > 0
    vectors[nonzero] /= norms[nonzero, None]
    return vectors, s
