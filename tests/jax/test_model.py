"""The model and its loss on hand-made inputs: exact values, L2 term, init layout."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mlbatch.artifacts.features import Feature, FeatureSet
from ray_jobs.jax import model
from tests.jax.conftest import tiny_config

# Manifest order b, a: the model orders tables by name (a, b), never by position.
FS = FeatureSet(root=None, label="y", task="binary_classification", features=(
    Feature("x0", "numeric"), Feature("x1", "numeric"),
    Feature("b", "categorical", cardinality=2), Feature("a", "categorical", cardinality=3)))


def hand_params():
    f = lambda *v: jnp.array(v, jnp.float32)  # noqa: E731
    return {"wide": {"bias": f(0.25), "numeric": f(0.5, -1.0),
                     "categorical": {"a": f(0, 1, 2, 0), "b": f(10, 20, 0, 0)}},
            "deep": {"embed": {"a": f([0], [1], [-1], [0]), "b": f([3], [4], [0], [0])},
                     "hidden": [{"w": f([1, 0], [0, 1], [1, 1], [0, -1]), "b": f(0.5, 4)}],
                     "out": {"w": f(2, -1), "b": f(0.1)}}}


BATCH = {"numeric": jnp.array([[1.0, 2.0], [0.0, 0.0]]),
         "categorical": {"a": jnp.array([2, 0]), "b": jnp.array([0, 1])},
         "label": jnp.array([1.0, 0.0])}
# Row 0: wide 0.25 + 0.5 - 2 + 2 + 10 = 10.75; deep relu([1,2,-1,3] @ W + b) = [0.5, 2]
#        -> 2*0.5 - 2 + 0.1 = -0.9; logit 9.85.
# Row 1: wide 0.25 + 0 + 20 = 20.25; deep relu([0,0,0,4] @ W + b) = [0.5, 0] -> 1.1; 21.35.
LOGITS = [9.85, 21.35]
WIDE_SQ = 0.25 + 1 + (1 + 4) + (100 + 400)  # numeric + tables; bias excluded
DEEP_SQ = (1 + 1) + (9 + 16) + 5 + (4 + 1)  # embeddings + hidden kernel + out kernel


def test_apply_exact_logits():
    np.testing.assert_allclose(model.apply(hand_params(), BATCH), LOGITS, rtol=1e-6)


def test_l2_norms_exclude_biases():
    wide, deep = model.l2_norms(hand_params())
    assert float(wide) == pytest.approx(WIDE_SQ)
    assert float(deep) == pytest.approx(DEEP_SQ)


@pytest.mark.parametrize("task, per_example", [
    ("binary_classification", lambda z, y: math.log1p(math.exp(-z)) if y else
     z + math.log1p(math.exp(-z))),
    ("regression", lambda z, y: (z - y) ** 2),
])
def test_loss_is_mean_data_loss_plus_separate_l2(task, per_example):
    total, aux = model.loss(hand_params(), BATCH, task=task, l2_wide=1e-3, l2_deep=1e-2)
    data = np.mean([per_example(z, y) for z, y in zip(LOGITS, [1.0, 0.0])])
    assert float(aux["data_loss"]) == pytest.approx(data, rel=1e-6)
    assert float(aux["l2_penalty"]) == pytest.approx(1e-3 * WIDE_SQ + 1e-2 * DEEP_SQ, rel=1e-6)
    assert float(total) == pytest.approx(data + 1e-3 * WIDE_SQ + 1e-2 * DEEP_SQ, rel=1e-6)


def test_l2_gradient_is_two_lambda_w():
    params = hand_params()
    grad = jax.grad(lambda p: model.loss(p, BATCH, task="regression", l2_wide=0.5,
                                         l2_deep=0.0)[0]
                    - model.loss(p, BATCH, task="regression", l2_wide=0.0, l2_deep=0.0)[0])
    g = grad(params)
    np.testing.assert_allclose(g["wide"]["categorical"]["b"], [10.0, 20.0, 0.0, 0.0], rtol=1e-5)
    np.testing.assert_allclose(g["wide"]["bias"], 0.0)


def test_unknown_task_is_an_error():
    with pytest.raises(ValueError, match="unknown task"):
        model.example_loss(jnp.zeros(2), jnp.zeros(2), "ranking")


def test_init_layout_comes_from_the_manifest():
    cfg = tiny_config(embedding_dim=3, hidden_sizes=[5], vocab_pad_multiple=4)
    p = model.init_params(cfg, FS, jax.random.key(0))
    assert p["wide"]["numeric"].shape == (2,)
    assert {k: v.shape for k, v in p["wide"]["categorical"].items()} == {"a": (4,), "b": (4,)}
    assert {k: v.shape for k, v in p["deep"]["embed"].items()} == {"a": (4, 3), "b": (4, 3)}
    assert p["deep"]["hidden"][0]["w"].shape == (2 + 2 * 3, 5)
    assert p["deep"]["out"]["w"].shape == (5,)
    # padding rows start at zero, real rows do not; the wide part starts at zero
    assert not np.any(p["deep"]["embed"]["b"][2:]) and np.all(p["deep"]["embed"]["b"][:2])
    assert not any(np.any(v) for v in jax.tree.leaves(p["wide"]))
    same = model.init_params(cfg, FS, jax.random.key(0))
    other = model.init_params(cfg, FS, jax.random.key(1))
    assert all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(p), jax.tree.leaves(same)))
    assert not np.array_equal(p["deep"]["embed"]["a"], other["deep"]["embed"]["a"])


def test_predict_is_a_probability_for_classification():
    probs = model.predict(hand_params(), BATCH, "binary_classification")
    np.testing.assert_allclose(probs, 1 / (1 + np.exp(-np.array(LOGITS))), rtol=1e-6)
