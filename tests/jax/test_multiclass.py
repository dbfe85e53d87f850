"""The JAX job's softmax head (#23.1): exact logits, loss and L2 on hand-made inputs, a
trained run read back through ``load_model`` as class probabilities with its confusion
matrix, and multiclass labels that are not class indices refused on the driver."""
import jax
import jax.numpy as jnp
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlbatch.artifacts.features import Feature, FeatureContractError, FeatureSet
from mlbatch.artifacts.models import load_model
from mlbatch.metrics import confusion_matrix, task_metrics
from ray_jobs.common.synthetic import SYNTHETIC_CLASSES, write_synthetic_features
from ray_jobs.jax import driver, model
from tests.artifacts.helpers import recommit
from tests.jax.conftest import CARDINALITIES, tiny_config

FS = FeatureSet(root=None, label="y", task="multiclass_classification",
                classes=("a", "b", "c"), features=(
                    Feature("x0", "numeric"), Feature("k", "categorical", cardinality=2)))


def hand_params():
    f = lambda *v: jnp.array(v, jnp.float32)  # noqa: E731
    return {"wide": {"bias": f(0.1, 0.2, 0.3), "numeric": f([1.0, -1.0, 0.0]),
                     "categorical": {"k": f([0, 0, 5], [2, 0, 0])}},
            "deep": {"embed": {"k": f([1], [-1])},
                     "hidden": [{"w": f([1, 0], [0, 2]), "b": f(0, 0)}],
                     "out": {"w": f([1, 0, 0], [0, 0, 1]), "b": f(0, 0.5, 0)}}}


BATCH = {"numeric": jnp.array([[2.0], [-1.0]]), "categorical": {"k": jnp.array([0, 1])},
         "label": jnp.array([2.0, 0.0])}
# Row 0: wide [0.1+2, 0.2-2, 0.3+5] = [2.1, -1.8, 5.3]; deep relu([2, 1] @ W) = [2, 2]
#        -> [2, 0.5, 2]; logits [4.1, -1.3, 7.3].
# Row 1: wide [0.1-1+2, 0.2+1, 0.3] = [1.1, 1.2, 0.3]; deep relu([-1, -1] @ W) = [0, 0]
#        -> [0, 0.5, 0]; logits [1.1, 1.7, 0.3].
LOGITS = np.array([[4.1, -1.3, 7.3], [1.1, 1.7, 0.3]])
WIDE_SQ = (1 + 1) + (25 + 4)  # numeric + table; biases excluded
DEEP_SQ = 2 + (1 + 4) + (1 + 1)  # embedding + hidden kernel + out kernel


def test_softmax_head_exact_logits_probabilities_and_loss():
    np.testing.assert_allclose(model.apply(hand_params(), BATCH), LOGITS, rtol=1e-6)
    probs = np.exp(LOGITS) / np.exp(LOGITS).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(model.predict(hand_params(), BATCH, FS.task), probs, rtol=1e-6)
    total, aux = model.loss(hand_params(), BATCH, task=FS.task, l2_wide=1e-3, l2_deep=1e-2)
    data = -np.mean(np.log([probs[0, 2], probs[1, 0]]))  # labels: classes 2 and 0
    assert float(aux["data_loss"]) == pytest.approx(data, rel=1e-6)
    assert float(aux["l2_penalty"]) == pytest.approx(1e-3 * WIDE_SQ + 1e-2 * DEEP_SQ,
                                                     rel=1e-6)
    assert float(total) == pytest.approx(data + 1e-3 * WIDE_SQ + 1e-2 * DEEP_SQ, rel=1e-6)


def test_softmax_head_layout_has_a_class_dimension_padding_rows_zero():
    cfg = tiny_config(embedding_dim=3, hidden_sizes=[5], vocab_pad_multiple=4)
    p = model.init_params(cfg, FS, jax.random.key(0))
    shapes = {"/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path): v.shape
              for path, v in jax.tree_util.tree_flatten_with_path(p)[0]}
    assert shapes == {"wide/bias": (3,), "wide/numeric": (1, 3),
                      "wide/categorical/k": (4, 3), "deep/embed/k": (4, 3),
                      "deep/hidden/0/w": (1 + 3, 5), "deep/hidden/0/b": (5,),
                      "deep/out/w": (5, 3), "deep/out/b": (3,)}
    assert model.num_outputs(FS) == 3


@pytest.fixture(scope="module")
def multiclass_run(tmp_path_factory):
    """A 3-class synthetic feature set (the terciles of a noisy linear function) and a
    3-epoch in-process JAX run on it."""
    features = write_synthetic_features(
        tmp_path_factory.mktemp("mc_features"), n_train=640, n_eval=300, n_numeric=4,
        cardinalities=CARDINALITIES, shards=3, seed=1, task="multiclass_classification")
    out = tmp_path_factory.mktemp("mc_jax") / "out"
    summary = driver.run(tiny_config(epochs=3), features, out)
    return features, out, summary


def test_trained_softmax_head_gives_class_probabilities_through_load_model(multiclass_run):
    features, out, summary = multiclass_run
    m = load_model(out)
    assert (m.task, m.classes) == ("multiclass_classification", SYNTHETIC_CLASSES)
    table = pq.read_table(features / "eval")
    probs = m.predict(table)
    assert probs.shape == (300, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    y = table.column("label").to_numpy()
    exact = task_metrics(m.task, y, probs)
    assert m.metrics["eval_loss"] == pytest.approx(exact["eval_loss"], abs=1e-5)
    assert m.metrics["eval_accuracy"] == pytest.approx(exact["accuracy"], abs=1e-9)
    assert m.metrics["eval_auc_ovr_macro"] == pytest.approx(exact["auc_ovr_macro"], abs=1e-5)
    assert m.metrics["confusion_matrix"] == confusion_matrix(y, probs, SYNTHETIC_CLASSES)
    counts = np.array(m.metrics["confusion_matrix"]["counts"])
    assert counts.sum() == 300 and counts.sum(axis=1).tolist() == [
        int(np.sum(y == c)) for c in range(3)]
    assert m.predict_classes(table.slice(0, 4)) == [
        SYNTHETIC_CLASSES[i] for i in np.argmax(probs[:4], axis=1)]
    # terciles: a third of the rows per class; the model must beat that
    assert m.metrics["eval_accuracy"] > 0.5 and exact["logloss"] < np.log(3)
    assert summary["best"]["eval_examples"] == 300


def test_a_multiclass_label_that_is_not_a_class_index_is_refused(multiclass_run, tmp_path):
    import shutil
    features = shutil.copytree(multiclass_run[0], tmp_path / "features")
    path = sorted((features / "eval").glob("*.parquet"))[1]
    t = pq.read_table(path)
    label = t.column("label").to_numpy().copy()
    label[5] = 3.0
    t = t.set_column(t.schema.get_field_index("label"), "label",
                     pa.array(label, pa.float32()))
    pq.write_table(t, path)
    recommit(features)
    with pytest.raises(FeatureContractError,
                       match=r"split 'eval': label 'label' has 1 value\(s\) that are not class "
                             r"indices in \[0, 3\) \(classes \['low', 'mid', 'high'\]\), "
                             r"e\.g\. 3, in .*part-00001-of-00003\.parquet"):
        driver.validate(tiny_config(), features)


@pytest.mark.cluster
def test_two_workers_equal_one_process_on_the_softmax_head(ray_connected, multiclass_run,
                                                            tmp_path):
    """2 Ray workers x 2 CPU devices (jax.distributed over gloo) against one process, one
    device: the same parameters, and the eval predictions ([n, K]) gathered from both
    processes give the same metrics and confusion matrix."""
    from ray_jobs.jax import checkpoint
    from tests.jax.conftest import (assert_params_close, finish, load_npz,
                                    run_trainer_subprocess)
    features = multiclass_run[0]
    cfg = tiny_config(num_workers=2, devices_per_worker=2, data_shards=2, epochs=1,
                      coordinator_host="127.0.0.1")
    single = run_trainer_subprocess(cfg.replace(num_workers=1, devices_per_worker=1),
                                    features, tmp_path / "single.npz", steps=10, wait=False)
    summary = driver.run(cfg, features, tmp_path / "multi", address=ray_connected.gcs_address)
    one = finish(single)["eval"]
    assert (summary["num_processes"], summary["num_devices"]) == (2, 4)
    ckpts = checkpoint.CheckpointDir(tmp_path / "multi" / "checkpoints", keep=3)
    assert_params_close(load_npz(ckpts.path(10)), load_npz(tmp_path / "single.npz"),
                        atol=1e-5)
    two = summary["last"]
    assert two["eval_examples"] == 300
    assert two["eval_loss"] == pytest.approx(one["eval_loss"], abs=1e-6)
    assert two["confusion_matrix"] == one["confusion_matrix"]
