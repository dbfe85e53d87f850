"""Bad input fails on the driver, before any worker starts, with an error naming it."""
import shutil

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from mlbatch.artifacts.features import FeatureContractError
from ray_jobs.jax import driver
from ray_jobs.jax.checkpoint import CheckpointError
from tests.artifacts.helpers import recommit
from tests.jax.conftest import tiny_config


@pytest.fixture()
def no_workers(monkeypatch):
    """Fails the test if the driver gets as far as starting workers."""
    def boom(*a, **k):
        raise AssertionError("workers were started")
    monkeypatch.setattr(driver, "start_group", boom)


def edit_first_file(root, split, edit):
    path = sorted((root / split).glob("*.parquet"))[0]
    pq.write_table(edit(pq.read_table(path)), path)
    recommit(root)  # committed so by its producer: the trainer's checks are under test


def copy_features(src, tmp_path):
    return shutil.copytree(src, tmp_path / "features")


@pytest.mark.parametrize("edit, split, message", [
    (lambda t: t.drop_columns(["cat_1"]), "eval", "column 'cat_1' missing"),
    (lambda t: t.set_column(t.schema.get_field_index("num_2"), "num_2",
                            pc.cast(t["num_2"], pa.string())),
     "train", "feature 'num_2' is declared numeric"),
    (lambda t: t.set_column(t.schema.get_field_index("cat_0"), "cat_0",
                            pc.cast(t["cat_0"], pa.float32())),
     "train", "feature 'cat_0' is declared categorical"),
    (lambda t: t.set_column(t.schema.get_field_index("cat_0"), "cat_0",
                            pc.add(t["cat_0"], 5)),
     "eval", "feature 'cat_0' has id 9 >= cardinality 5"),
])
def test_bad_feature_columns(tiny_features, tmp_path, no_workers, edit, split, message):
    features = copy_features(tiny_features, tmp_path)
    edit_first_file(features, split, edit)
    with pytest.raises(FeatureContractError, match=message):
        driver.run(tiny_config(), features, tmp_path / "out")
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_empty_split(tiny_features, tmp_path, no_workers):
    features = copy_features(tiny_features, tmp_path)
    for path in (features / "eval").glob("*.parquet"):
        pq.write_table(pq.read_table(path).slice(0, 0), path)
    recommit(features)
    with pytest.raises(FeatureContractError, match="split 'eval' is empty"):
        driver.run(tiny_config(), features, tmp_path / "out")


def test_train_split_smaller_than_a_batch(tiny_features, tmp_path, no_workers):
    """With the small-table cap off (on, the batch is cut to fit: test_batch_rule.py)."""
    with pytest.raises(FeatureContractError, match="fewer than one batch"):
        driver.run(tiny_config(batch_size=768, data_shards=2, min_steps_per_epoch=0),
                   tiny_features, tmp_path / "o")


def test_batch_not_divisible_by_devices_on_the_command_line(tiny_features, tmp_path, capsys,
                                                           no_workers):
    """main(argv) in this process (the CLI's exit 2 as a process: tests/artifacts)."""
    from ray_jobs.jax.__main__ import main
    code = main(["--features", str(tiny_features), "--output", str(tmp_path / "out"),
                 "--num-workers", "2", "--devices-per-worker", "3", "--batch-size", "64"])
    assert code == 2
    assert "error: batch_size: 64 is not divisible by the device count 6" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_resume_with_a_different_config_is_refused(tiny_features, tmp_path, monkeypatch):
    out = tmp_path / "out"
    driver.run(tiny_config(epochs=1), tiny_features, out)
    monkeypatch.setattr(driver, "start_group", lambda *a, **k: pytest.fail("started"))
    with pytest.raises(CheckpointError, match="config field 'l2_deep' is 0.5"):
        driver.run(tiny_config(epochs=1, l2_deep=0.5), tiny_features, out)


@pytest.mark.cluster
def test_more_workers_than_the_cluster_can_place(ray_connected, tiny_features, tmp_path):
    import ray
    before = ray.available_resources().get("CPU")
    cfg = tiny_config(num_workers=2 * ray_connected.num_cpus)  # 8 divides the batch
    with pytest.raises(driver.PlacementError, match=f"num_workers={cfg.num_workers} workers "
                       r".*asked for 8 CPU in total but the cluster has 4"):
        driver.run(cfg, tiny_features, tmp_path / "out", address=ray_connected.gcs_address)
    assert ray.available_resources().get("CPU") == before  # nothing was reserved
    with pytest.raises(driver.PlacementError, match="1 GPU in total but the cluster has 0"):
        driver.check_placement(tiny_config(platform="gpu", devices_per_worker=1))


def set_column_everywhere(features, split, name, values):
    for path in sorted((features / split).glob("*.parquet")):
        t = pq.read_table(path)
        col = pa.array(values(t.num_rows), pa.float32())
        pq.write_table(t.set_column(t.schema.get_field_index(name), name, col), path)
    recommit(features)  # committed so by its producer: the trainer's checks are under test


@pytest.mark.parametrize("split, rows", [("train", 640), ("eval", 300)])
def test_one_class_label_is_refused_with_exit_2(tiny_features, tmp_path, capsys, no_workers,
                                                split, rows):
    """Today's main trained on it and reported accuracy 1.0 and AUC null."""
    from ray_jobs.jax.__main__ import main
    features = copy_features(tiny_features, tmp_path)
    set_column_everywhere(features, split, "label", lambda n: [1.0] * n)
    code = main(["--features", str(features), "--output", str(tmp_path / "out")])
    assert code == 2
    err = capsys.readouterr().err
    assert f"error: split '{split}': label 'label' has one class (1) in all {rows} rows; " \
           "binary classification needs both 0 and 1" in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


def test_nan_and_inf_inputs_are_refused_naming_each_column(tiny_features, tmp_path, capsys,
                                                           no_workers):
    """Today's main failed with a TypeError in the early stopper (NaN eval loss)."""
    from ray_jobs.jax.__main__ import main
    features = copy_features(tiny_features, tmp_path)
    first = sorted((features / "train").glob("*.parquet"))[0]

    def poison(t):
        num_1 = t["num_1"].to_numpy().copy()
        num_1[[3, 7]] = float("nan")
        label = t["label"].to_numpy().copy()
        label[0] = float("inf")
        t = t.set_column(t.schema.get_field_index("num_1"), "num_1", pa.array(num_1))
        return t.set_column(t.schema.get_field_index("label"), "label", pa.array(label))
    edit_first_file(features, "train", poison)
    code = main(["--features", str(features), "--output", str(tmp_path / "out")])
    assert code == 2
    err = capsys.readouterr().err
    assert (f"error: split 'train' has non-finite values (feature 'num_1': 2 NaN, 0 +-inf in "
            f"{first}; label 'label': 0 NaN, 1 +-inf in {first})") in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


def test_a_diverging_loss_exits_1_naming_the_epoch(tiny_features, tmp_path, capsys):
    from ray_jobs.jax.__main__ import main
    code = main(["--features", str(tiny_features), "--output", str(tmp_path / "out"),
                 "--epochs", "1", "--set", "optimizer=sgd", "--set", "learning_rate=1e30",
                 "--set", "schedule=constant",
                 # one step an epoch (640 rows): its loss is computed before the update
                 "--batch-size", "512", "--set", "min_steps_per_epoch=0"])
    assert code == 1
    err = capsys.readouterr().err
    assert ("error: epoch 0: the eval loss (eval_loss) is nan: the model's predictions are "
            "not finite (training diverged)") in err
    assert "Traceback" not in err
    assert not (tmp_path / "out" / "artifact.json").exists()
    assert not (tmp_path / "out" / "model").exists()


def test_a_non_finite_train_loss_names_its_epoch_and_step():
    from ray_jobs.jax.loop import DivergedError, check_finite
    check_finite(0, {"first_step": 10, "metrics": {"loss": [0.7, 0.6]}})  # finite: passes
    with pytest.raises(DivergedError, match=r"^epoch 3: the train loss is nan at step 12: "
                                            r"training diverged"):
        check_finite(3, {"first_step": 10, "metrics": {"loss": [0.5, float("nan"), 0.4]}})
