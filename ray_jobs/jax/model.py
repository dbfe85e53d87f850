"""The wide-and-deep model as pure functions of (params, batch).

Everything about the inputs comes from the feature set (the feature job's manifest):
numeric features feed the wide part linearly and the deep MLP directly (they are
already scaled); every categorical feature (vocabulary ids, buckets, hashes, crosses)
gets a one-hot weight in the wide part (a row of a ``(rows,)`` table) and an embedding
in the deep part (a row of a ``(rows, embedding_dim)`` table).

Tables are padded to a multiple of ``vocab_pad_multiple`` rows so that they can be
sharded over any device count dividing it; the padding rows start at zero and, never
being looked up, get zero data gradient and zero L2 gradient, so they stay zero and
change neither the loss nor the penalty. Parameter shapes therefore do not depend on
the device count, and a checkpoint moves between meshes unchanged.

A batch is ``{"numeric": f32[B, n_numeric], "categorical": {name: i32[B]},
"label": f32[B]}`` (+ ``"weight": f32[B]`` for evaluation; 0 marks padding rows).

A multiclass label (``FeatureSet.classes``, K of them; the label is the class index)
gets a softmax head: every output parameter (wide bias, numeric weights, one-hot tables,
the output layer) gains a trailing K dimension, ``apply`` returns ``f32[B, K]`` logits and
the loss is the softmax cross-entropy, with the same L2 terms over the same weights.
Binary classification and regression keep their one-logit layout.

Regression targets are learned standardized (``LabelScale``: the train split's label
mean and standard deviation), so the output layer starts at the right scale whatever the
label's units; predictions are scaled back and kept within the train label's range
(``predict``).
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from mlbatch.artifacts.features import FeatureSet
from ray_jobs.jax.config import JaxConfig

Params = dict[str, Any]
Batch = dict[str, Any]


class LabelScale(NamedTuple):
    """The model learns ``(label - mean) / std`` and predicts within ``[low, high]`` (the
    train label's range: a linear output extrapolates, and after the inverse of a log
    transform a few far-out rows would dominate the error); identity for classification."""
    mean: float = 0.0
    std: float = 1.0
    low: float = -math.inf
    high: float = math.inf


IDENTITY = LabelScale()


def table_rows(cardinality: int, pad_multiple: int) -> int:
    return -(-cardinality // pad_multiple) * pad_multiple


def num_outputs(feature_set: FeatureSet) -> int:
    """Logits per row: K for a multiclass label, else 1."""
    if feature_set.task == "multiclass_classification":
        return len(feature_set.classes)
    return 1


def _out(shape: tuple[int, ...], k: int) -> tuple[int, ...]:
    return shape if k == 1 else (*shape, k)


def init_params(config: JaxConfig, feature_set: FeatureSet, key: jax.Array) -> Params:
    """Wide part zeros; embeddings N(0, 1/dim); MLP lecun-normal kernels, zero biases.
    Output parameters have a trailing class dimension for a multiclass label."""
    dim, k = config.embedding_dim, num_outputs(feature_set)
    k_embed, k_mlp = jax.random.split(key)
    wide_cat, embed = {}, {}
    for i, f in enumerate(feature_set.categorical):
        rows = table_rows(f.cardinality, config.vocab_pad_multiple)
        wide_cat[f.name] = jnp.zeros(_out((rows,), k), jnp.float32)
        real = jax.random.normal(jax.random.fold_in(k_embed, i), (f.cardinality, dim),
                                 jnp.float32) / math.sqrt(dim)
        embed[f.name] = jnp.pad(real, ((0, rows - f.cardinality), (0, 0)))
    n_num = len(feature_set.numeric)
    sizes = [n_num + dim * len(feature_set.categorical), *config.hidden_sizes]
    init = jax.nn.initializers.lecun_normal()
    hidden = [{"w": init(jax.random.fold_in(k_mlp, j), (a, b), jnp.float32),
               "b": jnp.zeros((b,), jnp.float32)}
              for j, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))]
    out_w = init(jax.random.fold_in(k_mlp, len(hidden)), (sizes[-1], k), jnp.float32)
    return {"wide": {"bias": jnp.zeros(_out((), k), jnp.float32),
                     "numeric": jnp.zeros(_out((n_num,), k), jnp.float32),
                     "categorical": wide_cat},
            "deep": {"embed": embed, "hidden": hidden,
                     "out": {"w": out_w[:, 0] if k == 1 else out_w,
                             "b": jnp.zeros(_out((), k), jnp.float32)}}}


def apply(params: Params, batch: Batch) -> jax.Array:
    """Logits ``f32[B]`` (``f32[B, K]`` multiclass): wide linear term + deep MLP output."""
    x, ids = batch["numeric"], batch["categorical"]
    wide = params["wide"]
    logit = wide["bias"] + x @ wide["numeric"]
    for name in sorted(wide["categorical"]):
        logit = logit + jnp.take(wide["categorical"][name], ids[name], axis=0, mode="clip")
    deep = params["deep"]
    embedded = [jnp.take(deep["embed"][n], ids[n], axis=0, mode="clip")
                for n in sorted(deep["embed"])]
    h = jnp.concatenate([x, *embedded], axis=-1)
    for layer in deep["hidden"]:
        h = jax.nn.relu(h @ layer["w"] + layer["b"])
    return logit + h @ deep["out"]["w"] + deep["out"]["b"]


def example_loss(logits: jax.Array, labels: jax.Array, task: str) -> jax.Array:
    """Per-example loss: logistic for binary classification, softmax cross-entropy for
    multiclass (labels are class indices), squared error for regression."""
    if task == "binary_classification":
        return optax.sigmoid_binary_cross_entropy(logits, labels)
    if task == "multiclass_classification":
        return optax.softmax_cross_entropy_with_integer_labels(logits,
                                                               labels.astype(jnp.int32))
    if task == "regression":
        return jnp.square(logits - labels)
    raise ValueError(f"unknown task {task!r}")


def predict(params: Params, batch: Batch, task: str,
            scale: LabelScale = IDENTITY) -> jax.Array:
    """Probabilities (classification; ``[B, K]`` class probabilities for multiclass) or
    values in the stored label's units (regression)."""
    return from_logits(apply(params, batch), task, scale)


def from_logits(logits: jax.Array, task: str, scale: LabelScale = IDENTITY) -> jax.Array:
    if task == "binary_classification":
        return jax.nn.sigmoid(logits)
    if task == "multiclass_classification":
        return jax.nn.softmax(logits, axis=-1)
    return jnp.clip(logits * scale.std + scale.mean, scale.low, scale.high)


def scaled_label(labels: jax.Array, scale: LabelScale) -> jax.Array:
    return (labels - scale.mean) / scale.std


def _is_penalized(path) -> bool:
    """Weights (tables, kernels) are; biases (wide/bias, .../b) are not. Full paths."""
    keys = [getattr(k, "key", getattr(k, "idx", None)) for k in path]
    return keys[1] in ("categorical", "embed") or keys[-1] not in ("b", "bias")


def l2_norms(params: Params) -> tuple[jax.Array, jax.Array]:
    """(||w_wide||^2, ||w_deep||^2) over weights, biases excluded."""
    sums = {"wide": jnp.zeros((), jnp.float32), "deep": jnp.zeros((), jnp.float32)}
    for path, v in jax.tree_util.tree_flatten_with_path(params)[0]:
        if _is_penalized(path):
            sums[path[0].key] = sums[path[0].key] + jnp.sum(jnp.square(v))
    return sums["wide"], sums["deep"]


def weight_mask(params: Params) -> Params:
    """True for weights, False for biases (for decoupled weight decay)."""
    return jax.tree_util.tree_map_with_path(lambda p, _: _is_penalized(p), params)


def loss(params: Params, batch: Batch, *, task: str, l2_wide: float, l2_deep: float,
         scale: LabelScale = IDENTITY) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Mean data loss over the batch (regression: on the scaled label) + l2_wide
    ||w_wide||^2 + l2_deep ||w_deep||^2."""
    data = jnp.mean(example_loss(apply(params, batch), scaled_label(batch["label"], scale),
                                 task))
    wide_sq, deep_sq = l2_norms(params)
    penalty = l2_wide * wide_sq + l2_deep * deep_sq
    return data + penalty, {"data_loss": data, "l2_penalty": penalty}
