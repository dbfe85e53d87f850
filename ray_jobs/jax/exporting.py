"""The trained model as a portable function: ``jax.export`` StableHLO + parameters.

``model/`` of a JAX model artifact holds everything needed to apply the model without
this package (a batch scoring job reads it with ``mlbatch.artifacts.jax_model``)::

    predict.jaxexport   the serialized ``jax.export.Exported`` of
                        predict(params, numeric f32[b, n_numeric], ids i32[b, n_categorical])
                        -> f32[b] (probability for binary classification, else the value;
                        f32[b, K] class probabilities for a multiclass label),
                        with a symbolic batch dimension b, lowered for CPU and CUDA
    params.npz          the parameters, flat: "params/wide/bias", "params/deep/hidden/0/w" ...
    model.json          the description: task, label, feature order, sizes, step/epoch, config,
                        and "predict": {"file", "platforms", "params": [names in call order]}

The exported function takes the parameters as a flat ``{name: array}`` dict, so a reader
calls it with ``dict(np.load("params.npz"))`` and needs no knowledge of the pytree.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ray_jobs.jax import model

PREDICT_FILE = "predict.jaxexport"
PARAMS_FILE = "params.npz"
DESCRIPTION_FILE = "model.json"
PLATFORMS = ("cpu", "cuda")
PREFIX = "params/"


def nest(flat: dict[str, Any]) -> model.Params:
    """Flat ``params/...`` names -> the model's parameter tree (hidden layers a list)."""
    tree: dict[str, Any] = {}
    for name, value in flat.items():
        *parents, leaf = name[len(PREFIX):].split("/")
        node = tree
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    tree["wide"].setdefault("categorical", {})  # no categorical feature: empty dicts have
    tree["deep"].setdefault("embed", {})  # no flat names
    hidden = tree["deep"].get("hidden", {})
    tree["deep"]["hidden"] = [hidden[str(i)] for i in range(len(hidden))]
    return tree


def predict_fn(description: dict[str, Any]):
    """predict(flat params, numeric, ids) -> f32[b] (f32[b, K]), for the described model."""
    names = [c["name"] for c in description["categorical"]]
    task = description["task"]
    scale = (model.LabelScale(**description["label_scale"]) if description.get("label_scale")
             else model.IDENTITY)  # regression: back to the stored label's units

    def predict(flat: dict[str, jax.Array], numeric: jax.Array, ids: jax.Array) -> jax.Array:
        batch = {"numeric": numeric, "categorical": {n: ids[:, i] for i, n in enumerate(names)}}
        return model.predict(nest(flat), batch, task, scale)

    return predict


def export_predict(params: dict[str, np.ndarray], description: dict[str, Any]) -> bytes:
    """The serialized ``jax.export`` of the model's predict function (batch symbolic)."""
    (b,) = jax.export.symbolic_shape("b")
    flat_spec = {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in params.items()}
    args = (flat_spec, jax.ShapeDtypeStruct((b, len(description["numeric"])), jnp.float32),
            jax.ShapeDtypeStruct((b, len(description["categorical"])), jnp.int32))
    exported = jax.export.export(jax.jit(predict_fn(description)), platforms=PLATFORMS)(*args)
    return bytes(exported.serialize())
