"""scripts/compare_digests.py's comparisons, on hand-made outputs (the whole script is run
by hand on real data: docs/ARCHITECTURE.md, the wave-3 report)."""
import pyarrow as pa
import pyarrow.parquet as pq

from scripts.compare_digests import _no_paths, json_differences, rows_digest


def test_rows_digest_sees_rows_not_files(tmp_path):
    rows = pa.table({"example_id": ["f.csv:2", "f.csv:3", "f.csv:4"], "x": [1.0, 2.0, 3.0]})
    (tmp_path / "a" / "train").mkdir(parents=True)
    (tmp_path / "b" / "train").mkdir(parents=True)
    (tmp_path / "c" / "train").mkdir(parents=True)
    pq.write_table(rows, tmp_path / "a" / "train" / "part-0.parquet")
    pq.write_table(rows.slice(2), tmp_path / "b" / "train" / "part-0.parquet")  # resharded,
    pq.write_table(rows.slice(0, 2), tmp_path / "b" / "train" / "part-1.parquet")  # reordered
    changed = rows.set_column(1, "x", pa.array([1.0, 2.0, 3.5]))
    pq.write_table(changed, tmp_path / "c" / "train" / "part-0.parquet")
    a, b, c = (rows_digest(tmp_path / d, "train") for d in "abc")
    assert a == b and a.endswith(" (3)")
    assert c != a and c.endswith(" (3)")
    assert rows_digest(tmp_path / "a", "eval") == "-"


def test_json_differences_names_added_removed_and_changed_keys():
    a = {"stages": {"read": 10, "train": 8}, "tables": {"t": {"files": [["/x/f.csv", 10]]}}}
    b = {"stages": {"read": 10, "train": 7}, "joins": {}, "tables": {"t": {"files": [
        ["/y/f.csv", 10]]}}}
    assert json_differences(a, b) == ["+/joins", "~/stages/train", "~/tables/t/files"]
    assert json_differences(_no_paths(a), _no_paths(b)) == ["+/joins", "~/stages/train"]
    assert json_differences(b, a) == ["-/joins", "~/stages/train", "~/tables/t/files"]
