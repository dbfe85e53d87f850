"""Data order: deterministic from the seed, independent of the number of processes."""
import numpy as np
import pytest

from mlbatch.artifacts.features import load_feature_set
from ray_jobs.jax import data


@pytest.fixture(scope="module")
def fs(tiny_features):
    return load_feature_set(tiny_features)


def test_global_batches_do_not_depend_on_the_process_count(fs):
    one = data.TrainData(fs, seed=3, batch_size=64, data_shards=2)
    parts = [data.TrainData(fs, seed=3, batch_size=64, data_shards=2, process_id=p,
                            num_processes=2) for p in range(2)]
    assert [p.local_batch for p in parts] == [32, 32]
    assert sum(sum(p.sizes) for p in parts) == 640  # each process read only its rows
    for epoch in (0, 1):
        whole = one.epoch(epoch)
        halves = [p.epoch(epoch) for p in parts]
        for key in ("numeric", "label"):
            np.testing.assert_array_equal(
                whole[key], np.concatenate([h[key] for h in halves], axis=1))
        np.testing.assert_array_equal(
            whole["ids"], np.concatenate([h["ids"] for h in halves], axis=1))


def test_epoch_order_is_a_seeded_permutation(fs):
    d = data.TrainData(fs, seed=0, batch_size=64, data_shards=1)
    assert d.steps_per_epoch == 10
    e0, e0_again, e1 = d.epoch_indices(0), d.epoch_indices(0), d.epoch_indices(1)
    np.testing.assert_array_equal(e0, e0_again)
    assert not np.array_equal(e0, e1)
    assert len(np.unique(e0)) == e0.size  # no row twice in an epoch
    other_seed = data.TrainData(fs, seed=1, batch_size=64, data_shards=1).epoch_indices(0)
    assert not np.array_equal(e0, other_seed)


def test_eval_pads_with_zero_weight_rows(fs):
    e = data.EvalData(fs, batch_size=128, data_shards=2)
    assert e.steps == 3  # 150 rows per shard -> 3 batches of 64 per shard
    assert e.batches["weight"].shape == (3, 128)
    assert e.batches["weight"].sum() == 300
    labels = e.batches["label"][e.batches["weight"] > 0]
    full = data.read_rows(fs, "eval", 0, 300).label
    np.testing.assert_array_equal(np.sort(labels), np.sort(full))


def test_read_rows_spans_files(fs):
    rows = data.read_rows(fs, "train", 200, 450)  # the fixture writes 3 files of ~213 rows
    assert len(rows) == 250 and rows.numeric.shape == (250, 4)
    assert rows.ids.shape == (250, 3) and rows.ids.dtype == np.int32
    whole = data.read_rows(fs, "train", 0, 640)  # columns in manifest order
    np.testing.assert_array_equal(rows.ids[:, 1], whole.ids[200:450, 1])
    assert whole.ids[:, 2].max() >= 40  # cat_2 (300 ids) is the third column


def test_read_rows_reads_only_the_row_groups_it_needs(tiny_features, tmp_path):
    import shutil

    import pyarrow.parquet as pq
    from mlbatch.artifacts.features import load_feature_set as load
    from tests.artifacts.helpers import recommit
    root = shutil.copytree(tiny_features, tmp_path / "f")
    for path in (root / "train").glob("*.parquet"):
        pq.write_table(pq.read_table(path), path, row_group_size=37)
    recommit(root)
    fs = load(root)
    whole = data.read_rows(fs, "train", 0, 640)
    labels = np.concatenate([pq.read_table(f, columns=["label"])["label"].to_numpy()
                             for f in fs.files("train")])
    np.testing.assert_array_equal(whole.label, labels)
    for lo, hi in [(0, 1), (36, 38), (200, 450), (639, 640), (100, 101)]:
        part = data.read_rows(fs, "train", lo, hi)
        np.testing.assert_array_equal(part.ids, whole.ids[lo:hi])
        np.testing.assert_array_equal(part.numeric, whole.numeric[lo:hi])
