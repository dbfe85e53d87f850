"""Bad feature directories and params fail on the driver, before Ray is even contacted."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlbatch.artifacts import OutputExistsError
from mlbatch.artifacts.features import FeatureContractError
from ray_jobs.common.synthetic import write_synthetic_features
from tests.artifacts.helpers import recommit
from ray_jobs.common import cluster
from ray_jobs.xgboost import driver
from ray_jobs.xgboost.config import ConfigError, XGBoostConfig
from ray_jobs.xgboost.data import FeatureDataError


@pytest.fixture()
def features(tmp_path) -> Path:
    return write_synthetic_features(tmp_path / "features", n_train=300, n_eval=100, seed=3)


@pytest.fixture(autouse=True)
def no_ray(monkeypatch):
    def refuse(*_a, **_k):
        raise AssertionError("Ray was contacted before the input was validated")
    monkeypatch.setattr(cluster, "connect", refuse)


def rewrite(path: Path, fn) -> None:
    """A bad file, committed as such by its producer (see tests.artifacts.helpers)."""
    pq.write_table(fn(pq.read_table(path)), path)
    recommit(path.parents[1])


def set_column(table: pa.Table, name: str, values) -> pa.Table:
    return table.set_column(table.schema.get_field_index(name), name, pa.array(values))


def first(features: Path, split: str) -> Path:
    return sorted((features / split).glob("*.parquet"))[0]


def run(features: Path, tmp_path: Path, **kw):
    driver.run(XGBoostConfig(features=str(features), output=str(tmp_path / "out"), **kw))


def test_missing_split(features, tmp_path):
    shutil.rmtree(features / "eval")
    recommit(features)
    with pytest.raises(FeatureContractError, match="split 'eval' has no Parquet files"):
        run(features, tmp_path)


def test_label_column_absent(features, tmp_path):
    rewrite(first(features, "train"), lambda t: t.drop(["label"]))
    with pytest.raises((FeatureContractError, FeatureDataError), match="'label'.*missing"):
        run(features, tmp_path)


def test_label_not_numeric(features, tmp_path):
    for p in (features / "train").glob("*.parquet"):
        rewrite(p, lambda t: set_column(t, "label", [str(v) for v in t.column("label").to_pylist()]))
    with pytest.raises(FeatureContractError, match="label 'label' is string, not numeric"):
        run(features, tmp_path)


@pytest.mark.parametrize("bad, what", [(np.nan, "NaN"), (np.inf, r"\+-inf")])
def test_nan_or_inf_in_a_feature(features, tmp_path, bad, what):
    path = sorted((features / "eval").glob("*.parquet"))[-1]

    def poison(t):
        v = t.column("num_2").to_numpy().copy()
        v[[3, 7]] = bad
        return set_column(t, "num_2", v)
    rewrite(path, poison)
    message = rf"{path.name}: column 'num_2': feature has {what} \(2 rows\)"
    with pytest.raises(FeatureDataError, match=message):
        run(features, tmp_path)


def test_empty_eval_split(features, tmp_path):
    for p in (features / "eval").glob("*.parquet"):
        rewrite(p, lambda t: t.slice(0, 0))
    with pytest.raises(FeatureContractError, match="split 'eval' is empty"):
        run(features, tmp_path)


def test_binary_label_outside_0_1_and_category_out_of_range(features, tmp_path):
    path = first(features, "train")

    def poison(t):
        y = t.column("label").to_numpy().copy()
        y[0] = 2.0
        c = t.column("cat_0").to_numpy().copy()
        c[1] = 8  # cardinality 8: ids 0..7
        return set_column(set_column(t, "label", y), "cat_0", c)
    rewrite(path, poison)
    with pytest.raises(FeatureDataError) as e:
        run(features, tmp_path)
    assert "binary label has values other than 0/1 (1 rows)" in str(e.value)
    assert "column 'cat_0': categorical ids outside [0, 8)" in str(e.value)


def test_unknown_param(features, tmp_path):
    with pytest.raises(ConfigError, match="params.max_dpeth: unknown XGBoost parameter"):
        run(features, tmp_path, params={"max_dpeth": 4})


def test_objective_not_fitting_the_manifest_task(features, tmp_path):
    with pytest.raises(ConfigError, match="does not fit the binary_classification label"):
        run(features, tmp_path, params={"objective": "reg:squarederror"})


def test_output_holding_other_files_is_refused_before_ray(features, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="is not empty and holds no artifact"):
        run(features, tmp_path)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
