"""Each training worker's shard of a split (data.worker_shard): no row twice, none left out."""
from __future__ import annotations

import numpy as np
import pytest

from mlbatch.artifacts.features import load_feature_set
from ray_jobs.common.synthetic import write_synthetic_features
from ray_jobs.xgboost import data


@pytest.fixture(scope="module")
def features(tmp_path_factory):
    return load_feature_set(write_synthetic_features(
        tmp_path_factory.mktemp("shards"), n_train=1001, n_eval=200, seed=5, shards=3))


def test_as_many_files_as_workers_or_more_each_worker_reads_its_own(features):
    files = features.files("train")
    assert len(files) == 3
    assert [data.worker_shard(features, "train", r, 2) for r in range(2)] == [
        ([files[0], files[2]], None), ([files[1]], None)]
    assert data.worker_shard(features, "train", 2, 3) == ([files[2]], None)


def test_fewer_files_than_workers_split_the_rows_exactly(features):
    x_all = np.concatenate([data.read_split(features, p)[0] for p in features.files("train")])
    shards = [data.worker_dmatrix(features, "train", r, 4) for r in range(4)]
    assert [m.num_row() for m in shards] == [250, 250, 250, 251]
    got = np.concatenate([m.get_data().toarray() for m in shards])
    assert np.array_equal(got, x_all)  # in order, each row once
