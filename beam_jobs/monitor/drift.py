"""Distribution distances for skew and drift monitoring (numpy only).

The distances of Vertex AI Model Monitoring and TensorFlow Data Validation:

* categorical features: the **L-infinity distance** between the two frequency
  distributions, ``max_v |p(v) - q(v)|`` over the union of the values seen on either side
  (a value seen on one side only has frequency 0 on the other);
* numeric features: the **Jensen-Shannon divergence** (log base 2, so within [0, 1]; capped
  at 1 against rounding) of two histograms over the *training* range: 10 buckets of equal
  width between the training minimum and maximum ("standard") and 10 buckets between the
  training deciles ("quantile"). Buckets are ``[e0, e1) ... [e9, e10]``; values below the
  training minimum and above its maximum are counted in two extra overflow buckets (of
  zero training mass) rather than clamped into the edge buckets, so a shift out of the
  training range shows at full weight. Empty buckets contribute 0 (0 log 0 = 0; no
  smoothing). Missing values are left out of both histograms.

Every distance comes with the distance expected **without drift at these sample sizes**:
``null_distances`` draws both samples (sizes n_reference and n_current) from the
reference's own histogram (a parametric bootstrap on the binned distribution), and the
feature breaches only when its distance exceeds both its threshold and the 99th
percentile of that null. A fixed threshold alone false-alarms on small windows (a plug-in
divergence is biased upwards by sampling noise); the null alone false-alarms on large ones
(tiny, irrelevant differences become "significant"). Field reference: docs/monitoring.md.
"""
from __future__ import annotations

import dataclasses
import zlib
from collections.abc import Mapping

import numpy as np

NUM_BUCKETS = 10
DEFAULT_THRESHOLD = 0.3  # Vertex AI Model Monitoring's default alert threshold
NULL_QUANTILE = 0.99
NULL_ROUNDS = 400
MULTINOMIAL_MAX_VALUES = 256  # above: the Poisson bootstrap (independent counts), far faster
MIN_ROUNDS = 100  # ...with fewer rounds (as few as this) the more values there are
METRICS = ("linf", "js")


def _probabilities(counts: np.ndarray) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum(axis=-1, keepdims=True)
    return np.divide(counts, total, out=np.zeros_like(counts), where=total > 0)


def linf_rows(p_counts: np.ndarray, q_counts: np.ndarray) -> np.ndarray:
    """L-infinity distance of aligned count vectors (the last axis holds the values)."""
    return np.abs(_probabilities(p_counts) - _probabilities(q_counts)).max(axis=-1)


def js_rows(p_counts: np.ndarray, q_counts: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence (log2, capped at 1) of aligned count vectors."""
    p, q = _probabilities(p_counts), _probabilities(q_counts)
    m = 0.5 * (p + q)

    def kl(a):
        ratio = np.divide(a, m, out=np.ones_like(a), where=a > 0)
        return (a * np.log2(ratio)).sum(axis=-1)

    return np.clip(0.5 * kl(p) + 0.5 * kl(q), 0.0, 1.0)


def linf_distance(p_counts, q_counts) -> float:
    return float(linf_rows(np.asarray(p_counts), np.asarray(q_counts)))


def js_divergence(p_counts, q_counts) -> float:
    return float(js_rows(np.asarray(p_counts), np.asarray(q_counts)))


DISTANCES = {"linf": linf_rows, "js": js_rows}


def align(reference: Mapping, current: Mapping) -> tuple[list, np.ndarray, np.ndarray]:
    """Two {value: count} maps as count vectors over the union of their values (the
    reference's values first, in its order; then values seen only in current)."""
    keys = list(reference) + [k for k in current if k not in reference]
    ref = np.array([reference.get(k, 0) for k in keys], dtype=np.int64)
    cur = np.array([current.get(k, 0) for k in keys], dtype=np.int64)
    return keys, ref, cur


# --- histograms over the training range ------------------------------------------------------
def standard_edges(lo: float, hi: float, num_buckets: int = NUM_BUCKETS) -> np.ndarray:
    """Equal-width bucket edges between the training minimum and maximum."""
    if not (np.isfinite(lo) and np.isfinite(hi)) or hi < lo:
        raise ValueError(f"training range [{lo}, {hi}] is not a finite interval")
    if hi == lo:
        return np.array([lo, hi], dtype=np.float64)
    return np.linspace(lo, hi, num_buckets + 1)


def quantile_edges(quantiles: np.ndarray) -> np.ndarray:
    """Bucket edges from the training quantiles (0, 0.1, ..., 1); repeated edges (a value
    holding more than a decile) are merged, so some features get fewer buckets."""
    q = np.asarray(quantiles, dtype=np.float64)
    if q.size < 2 or not np.isfinite(q).all():
        raise ValueError(f"quantile edges need at least two finite values, got {q.tolist()}")
    return np.unique(q)


def decile_points(num_buckets: int = NUM_BUCKETS) -> np.ndarray:
    return np.linspace(0.0, 1.0, num_buckets + 1)


def histogram(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts in [below e0, [e0, e1), ..., [e_{n-1}, e_n], above e_n]: len(edges) + 1
    entries (NaN values are left out)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    idx = np.searchsorted(edges, v, side="right")
    idx[v == edges[-1]] = len(edges) - 1  # the training maximum lies in the last bucket
    return np.bincount(idx, minlength=len(edges) + 1).astype(np.int64)


# --- the null and the verdict ----------------------------------------------------------------
def null_distances(reference_counts: np.ndarray, n_reference: int, n_current: int, metric: str,
                   rounds: int = NULL_ROUNDS, seed: int = 0, overflow: bool = False) -> np.ndarray:
    """Distances between two samples of sizes n_reference and n_current drawn from the
    reference's histogram: what the metric reads when nothing has drifted.

    ``overflow``: the first and last entries are the buckets below and above the training
    range. The training sample has none there by construction, yet a new value falls
    below (above) the minimum (maximum) of n training values with probability
    1 / (n + 1) when nothing has drifted; the current sample is drawn with that mass in
    each empty overflow bucket.

    Each round draws multinomial counts; for more than MULTINOMIAL_MAX_VALUES values,
    independent Poisson counts of the same means (the Poisson bootstrap: the sample sizes
    vary by their square root, which at such vocabulary sizes changes nothing visible)
    and proportionally fewer rounds, down to MIN_ROUNDS, to bound the work."""
    p = _probabilities(np.asarray(reference_counts))
    if p.sum() == 0 or n_reference < 1 or n_current < 1:
        return np.zeros(1)
    q = p
    if overflow:
        q = p.copy()
        for i in (0, -1):
            if q[i] == 0:
                q[i] = 1.0 / (n_reference + 1)
        q /= q.sum()
    rng = np.random.default_rng(seed)
    if p.size > MULTINOMIAL_MAX_VALUES:  # Poisson counts: a vocabulary's thousands of values
        rounds = max(MIN_ROUNDS, rounds * MULTINOMIAL_MAX_VALUES // p.size)
        a = rng.poisson(n_reference * p, size=(rounds, p.size))
        b = rng.poisson(n_current * q, size=(rounds, q.size))
    else:
        a = rng.multinomial(n_reference, p, size=rounds)
        b = rng.multinomial(n_current, q, size=rounds)
    return DISTANCES[metric](a, b)


def _seed(name: str) -> int:
    return zlib.crc32(name.encode())


@dataclasses.dataclass(frozen=True)
class FeatureDrift:
    """One feature's comparison (one entry of drift.json's "features")."""
    name: str
    stage: str  # "raw" | "transformed" | "prediction" | "label"
    kind: str  # "categorical" | "numeric"
    metric: str  # "linf" | "js"
    distance: float
    threshold: float
    null_p99: float
    n_reference: int
    n_current: int
    breach: bool
    quantile_distance: float | None = None  # numeric: JS over the quantile buckets
    quantile_null_p99: float | None = None

    def to_dict(self) -> dict:
        return {k: (round(v, 6) if isinstance(v, float) else v)
                for k, v in dataclasses.asdict(self).items()}


def _judge(ref: np.ndarray, cur: np.ndarray, metric: str, seed: int
           ) -> tuple[float, float]:
    """(distance, null p99); one side without values reads distance 1 (everything moved
    to "missing") with a null of 0."""
    n_ref, n_cur = int(ref.sum()), int(cur.sum())
    if n_ref == 0 and n_cur == 0:
        return 0.0, 0.0
    if n_ref == 0 or n_cur == 0:
        return 1.0, 0.0
    distance = float(DISTANCES[metric](ref, cur))
    null = null_distances(ref, n_ref, n_cur, metric, seed=seed, overflow=metric == "js")
    return distance, float(np.quantile(null, NULL_QUANTILE))


def compare_categorical(name: str, reference: Mapping, current: Mapping, *, stage: str = "raw",
                        threshold: float = DEFAULT_THRESHOLD) -> FeatureDrift:
    """L-infinity distance of two {value: count} maps, with its null and verdict."""
    _, ref, cur = align(reference, current)
    distance, p99 = _judge(ref, cur, "linf", _seed(f"{stage}/{name}"))
    return FeatureDrift(name, stage, "categorical", "linf", distance, threshold, p99,
                        int(ref.sum()), int(cur.sum()), distance > threshold and distance > p99)


def compare_numeric(name: str, reference: Mapping[str, np.ndarray],
                    current: Mapping[str, np.ndarray], *, stage: str = "raw",
                    threshold: float = DEFAULT_THRESHOLD) -> FeatureDrift:
    """JS divergence of the "standard" and "quantile" histograms (numeric_histograms);
    it breaches when either histogram's divergence exceeds the threshold and its null."""
    seed = _seed(f"{stage}/{name}")
    d, p99 = _judge(np.asarray(reference["standard"]), np.asarray(current["standard"]), "js", seed)
    dq, q99 = _judge(np.asarray(reference["quantile"]), np.asarray(current["quantile"]), "js",
                     seed + 1)
    breach = (d > threshold and d > p99) or (dq > threshold and dq > q99)
    return FeatureDrift(name, stage, "numeric", "js", d, threshold, p99,
                        int(np.sum(reference["standard"])), int(np.sum(current["standard"])),
                        breach, dq, q99)


def training_edges(values: np.ndarray, num_buckets: int = NUM_BUCKETS) -> dict[str, np.ndarray]:
    """Both histograms' edges from the training values (exact min, max and deciles)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if v.size == 0:
        raise ValueError("no training values: no training range to bucket")
    return {"standard": standard_edges(float(v.min()), float(v.max()), num_buckets),
            "quantile": quantile_edges(np.quantile(v, decile_points(num_buckets)))}


def numeric_histograms(values: np.ndarray, edges: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {kind: histogram(values, e) for kind, e in edges.items()}
