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


def test_a_shard_is_read_into_one_array_equal_to_the_files_stacked(features):
    files = features.files("train")
    x, y = data.read_rows(features, files[1:])
    parts = [data.read_split(features, p) for p in files[1:]]
    assert x.dtype == np.float32 and y.dtype == np.float32 and x.flags.c_contiguous
    assert np.array_equal(x, np.concatenate([p[0] for p in parts]))
    assert np.array_equal(y, np.concatenate([p[1] for p in parts]))


def test_quantile_shards_train_the_same_model_as_dmatrix_shards(features):
    """hist on QuantileDMatrix shards (the workers' default) = hist on DMatrix shards:
    the same bins, so the same trees and the same predictions, bit for bit."""
    import xgboost as xgb
    params = {"tree_method": "hist", "max_bin": 16, "max_depth": 3, "nthread": 1,
              "objective": "binary:logistic"}
    q_train = data.worker_dmatrix(features, "train", 0, 1, 1, max_bin=16)
    q_eval = data.worker_dmatrix(features, "eval", 0, 1, 1, max_bin=16, ref=q_train)
    d_train = data.worker_dmatrix(features, "train", 0, 1, 1)
    x_eval, _ = data.read_rows(features, features.files("eval"))
    assert isinstance(q_train, xgb.QuantileDMatrix) and q_train.num_row() == 1001
    assert q_eval.num_row() == 200 and q_eval.feature_names == features.names
    from_q = xgb.train(params, q_train, 5, evals=[(q_eval, "eval")], verbose_eval=False)
    from_d = xgb.train(params, d_train, 5)
    assert np.array_equal(from_q.inplace_predict(x_eval), from_d.inplace_predict(x_eval))


def test_a_file_rewritten_while_it_is_read_is_refused(features, tmp_path, monkeypatch):
    """The array is sized from the footers; a file whose rows then differ (rewritten in
    between: here its footer is read from a shortened copy) fails naming the file."""
    import pyarrow.parquet as pq
    first = features.files("train")[0]
    short = tmp_path / "short.parquet"
    pq.write_table(pq.read_table(first).slice(0, 10), short)
    real = type(features).parquet_file
    monkeypatch.setattr(type(features), "parquet_file",
                        lambda fs, uri: real(fs, str(short) if uri == first else uri))
    with pytest.raises(data.FeatureDataError,
                       match=rf"{first}: 333 rows where its footer said 10"):
        data.read_rows(features, [first])
