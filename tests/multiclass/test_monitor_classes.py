"""The monitor counts a multiclass label by class name (the served label is the class
index) and compares those counts like any categorical column."""
import pyarrow as pa
import pytest

from beam_jobs.monitor import stats

CLASSES = ("beach", "pier", "boat")
LABEL = stats.Column("mode", "categorical", stage="label", column="label", classes=CLASSES)


def test_class_indices_are_counted_by_class_name_nulls_left_out():
    t = pa.table({"label": pa.array([2.0, 0.0, None, 2.0, 2.0], pa.float64())})
    assert stats.table_statistics(t, [LABEL], {}) == {"label/mode": {"boat": 3, "beach": 1}}


def test_class_count_drift_is_the_l_infinity_distance_of_the_shares():
    ref = pa.table({"label": pa.array([0.0, 0.0, 1.0, 2.0])})  # 1/2, 1/4, 1/4
    cur = pa.table({"label": pa.array([2.0, 2.0, 2.0, 1.0])})  # 0, 1/4, 3/4
    (d,) = stats.compare_tables(ref, cur, [LABEL])
    assert (d.name, d.stage, d.kind, d.metric) == ("mode", "label", "categorical", "linf")
    assert d.distance == pytest.approx(0.5) and (d.n_reference, d.n_current) == (4, 4)


def test_an_index_outside_the_classes_is_an_error():
    t = pa.table({"label": pa.array([1.0, 3.0])})
    with pytest.raises(ValueError, match=r"class index 3 outside \[0, 3\)"):
        stats.table_statistics(t, [LABEL], {})
