"""multiclass_classification in the schema and the prepared label (class indices)."""
from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from beam_jobs.tabular import prepare
from mlbatch.schema import SchemaError, load_schema

FISHING = Path(__file__).resolve().parents[2] / "schemas" / "fishing.yaml"


def fishing_schema(tmp_path, **label):
    raw = yaml.safe_load(FISHING.read_text())
    raw["label"].update(label)
    raw["label"] = {k: v for k, v in raw["label"].items() if v is not None}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_schema(path)


def test_fishing_label_declares_four_classes():
    lab = load_schema(FISHING).label
    assert (lab.task, lab.classes, lab.other) == (
        "multiclass_classification", ("beach", "pier", "boat", "charter"), None)


@pytest.mark.parametrize("label, message", [
    ({"classes": None}, "label.classes: missing"),
    ({"classes": ["beach"]}, "label.classes: 1 classes"),
    ({"classes": ["beach", "beach"]}, "label.classes: class 'beach' appears twice"),
    ({"classes": "beach"}, "label.classes: expected a list of class names"),
    ({"other": "beach"}, "label.classes: class 'beach' appears twice"),
    ({"expr": "price"}, "label.expr"),
    ({"transform": "log1p"}, "label.transform: a multiclass label"),
])
def test_bad_multiclass_labels_name_the_field(tmp_path, label, message):
    with pytest.raises(SchemaError, match=message.replace("(", r"\(")):
        fishing_schema(tmp_path, **label)


def test_classes_on_a_binary_label_are_refused(tmp_path):
    raw = yaml.safe_load(FISHING.read_text())
    raw["label"] = {"name": "dear", "task": "binary_classification", "expr": "price > 100",
                    "classes": ["a", "b"]}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(SchemaError, match="label.classes: classes and other belong"):
        load_schema(tmp_path / "s.yaml")


def test_class_index_without_and_with_other(tmp_path):
    modes = pa.table({"mode": ["pier", "charter", "kayak", None, "beach"]})
    strict = fishing_schema(tmp_path)
    label, missing = prepare.label_array(modes, strict)
    assert label.to_pylist() == [1.0, 3.0, 0.0, 0.0, 0.0]
    assert missing.tolist() == [False, False, True, True, False]
    reasons = prepare._label_reasons(modes, strict, missing).to_pylist()
    assert reasons[2] == ("label 'mode' is not one of the declared classes "
                          "['beach', 'pier', 'boat', 'charter'] (declare it, or an other: class)")
    assert reasons[3] == "label source 'mode' is missing" and reasons[0] is None
    lenient = fishing_schema(tmp_path, classes=["beach", "pier"], other="elsewhere")
    assert lenient.label.classes == ("beach", "pier", "elsewhere")
    label, missing = prepare.label_array(modes, lenient)
    assert label.to_pylist() == [1.0, 2.0, 2.0, 0.0, 0.0]
    assert missing.tolist() == [False, False, False, True, False]


def test_top_k_classes_come_from_the_train_counts_ties_by_value(tmp_path):
    from mlbatch.schema import resolve_classes
    schema = fishing_schema(tmp_path, classes={"top_k": 2})
    lab = schema.label
    assert (lab.classes, lab.other, lab.top_k) == (("other",), "other", 2)  # unresolved
    counts = {"pier": 3, "boat": 3, "charter": 5, "beach": 1, "other": 9}
    # charter first; pier and boat tie on 3: string order; a value named like the other
    # class is never one of the top k
    assert resolve_classes(schema, counts).label.classes == ("charter", "boat", "other")
    named = fishing_schema(tmp_path, classes={"top_k": 1}, other="rest")
    assert resolve_classes(named, counts).label.classes == ("other", "rest")
    with pytest.raises(SchemaError, match=r"classes: \{top_k: 2\} found no label value"):
        resolve_classes(schema, {})
    t = pa.table({"mode": ["boat", "beach", None, "charter"]})
    resolved = resolve_classes(schema, counts)
    idx, missing = prepare.class_index(t.column("mode"), resolved)
    assert idx.to_pylist() == [1.0, 2.0, 0.0, 0.0] and missing.tolist() == [False, False,
                                                                             True, False]


@pytest.mark.parametrize("classes, message", [
    ({"top_k": 0}, "label.classes.top_k: must be >= 1"),
    ({"top_k": "3"}, "label.classes.top_k: expected an integer"),
    ({"top": 3}, "label.classes: expected a list of class names or {top_k: K}"),
])
def test_bad_top_k_classes_name_the_field(tmp_path, classes, message):
    with pytest.raises(SchemaError, match=message.replace("{", r"\{").replace("}", r"\}")):
        fishing_schema(tmp_path, classes=classes)
