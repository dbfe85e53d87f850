"""PPMI and SVD against direct dense numpy computations."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from beam_jobs.cooccurrence.matrix import (Marginals, block_marginals, ppmi, ppmi_block,
                                           svd_vectors)


def random_counts(n: int = 12, density: float = 0.4, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.integers(1, 20, size=(n, n)).astype(float) / rng.integers(1, 4, size=(n, n))
    x[rng.random((n, n)) > density] = 0.0
    return x


def dense_ppmi(x: np.ndarray, alpha: float, k: float) -> np.ndarray:
    """PPMI straight from the definition, on a dense matrix."""
    n = x.sum()
    p_wc = x / n
    p_w = x.sum(axis=1) / n
    context = x.sum(axis=0) ** alpha
    p_c = context / context.sum()
    with np.errstate(divide="ignore"):
        pmi = np.log(p_wc / np.outer(p_w, p_c)) - np.log(k)
    return np.where(x > 0, np.maximum(pmi, 0.0), 0.0)


@pytest.mark.parametrize("alpha,k", [(0.75, 1.0), (1.0, 1.0), (0.75, 5.0), (0.5, 2.0)])
def test_ppmi_matches_dense_definition(alpha, k):
    x = random_counts()
    got = ppmi(sp.csr_matrix(x), alpha, k)
    np.testing.assert_allclose(got.toarray(), dense_ppmi(x, alpha, k), rtol=1e-12, atol=1e-12)
    assert np.all(got.data > 0)  # zeros are not stored


def test_ppmi_by_row_blocks_equals_whole_matrix():
    x = sp.csr_matrix(random_counts(n=10, seed=3))
    marginals = Marginals(np.zeros(10), np.zeros(10))
    blocks = [(start, x[start:start + 4]) for start in range(0, 10, 4)]
    for start, block in blocks:
        marginals = marginals + block_marginals(block, start, 10)
    stacked = sp.vstack([ppmi_block(b, s, marginals, 0.75, 2.0) for s, b in blocks])
    np.testing.assert_allclose(stacked.toarray(), ppmi(x, 0.75, 2.0).toarray(), rtol=1e-12)


@pytest.mark.parametrize("power", [0.0, 0.5, 1.0])
def test_svd_vectors_match_dense_svd(power):
    m = ppmi(sp.csr_matrix(random_counts(n=30, density=0.5, seed=1)))
    vectors, singular = svd_vectors(m, 5, power)
    u, s, _ = np.linalg.svd(m.toarray())
    expected = u[:, :5] * s[:5] ** power
    expected *= np.sign(expected[np.abs(expected).argmax(axis=0), np.arange(5)])
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(singular, s[:5], rtol=1e-8)
    np.testing.assert_allclose(vectors, expected, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0)


def test_svd_rejects_dimension_not_below_vocabulary():
    with pytest.raises(ValueError, match="--svd-dim must be between 1 and 9"):
        svd_vectors(sp.identity(10, format="csr"), 10)
