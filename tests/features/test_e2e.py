"""End-to-end runs of the feature job on a flights slice (subprocess, like a user)."""
import csv
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from beam_jobs.common.options import dry_run_summary
from mlbatch.schema import load_schema
from mlbatch.artifacts.features import load_feature_set
from tests.conftest import FLIGHTS_SLICE_ROWS, REPO_ROOT, feature_job_main, run_feature_job

SCHEMA = REPO_ROOT / "schemas" / "flights.yaml"


def _read(d: Path) -> pa.Table:
    return pq.read_table(sorted(d.glob("*.parquet")))


def test_outputs_counts_and_values(flights_features, flights_slice):
    summary = json.loads((flights_features / "summary.json").read_text())
    s = summary["stages"]
    assert s["read"] == FLIGHTS_SLICE_ROWS
    assert summary["reconciled"] and all(summary["checks"].values())
    assert s["read"] == s["valid"] + s["dead_letter"]
    assert s["valid"] == s["train"] + s["eval"] + s["excluded"]
    train, evl = _read(flights_features / "train"), _read(flights_features / "eval")
    excluded = _read(flights_features / "excluded")
    assert (train.num_rows, evl.num_rows, excluded.num_rows) == (s["train"], s["eval"],
                                                                 s["excluded"])
    schema = load_schema(SCHEMA)
    assert train.schema.names == schema.feature_names + ["delayed", "example_id"]
    # each output row traces back to its raw line; the label is arr_delay > 15 there
    with open(flights_slice / "flights.csv", newline="") as f:
        raw = list(csv.DictReader(f))
    ids = train.column("example_id").to_pylist()
    lines = [int(i.rsplit(":", 1)[1]) for i in ids]
    expect = [float(float(raw[n - 2]["arr_delay"]) > 15) for n in lines]
    assert train.column("delayed").to_pylist() == expect
    # excluded rows are exactly the flights without an arrival delay
    missing = {i + 2 for i, r in enumerate(raw) if r["arr_delay"] == "NA"}
    assert {int(i.rsplit(":", 1)[1]) for i in excluded.column("example_id").to_pylist()} == missing
    # full-pass transforms: z-scores of train are centred and scaled; ids within cardinality
    z = train.column("distance_z").to_numpy()
    assert abs(z.mean()) < 1e-3 and abs(z.std() - 1) < 1e-2
    fs = load_feature_set(flights_features)
    for f in fs.categorical:
        for table in (train, evl):
            ids = table.column(f.name).to_numpy()
            assert ids.min() >= 0 and ids.max() < f.cardinality, f.name
    buckets = train.column("distance_bucket").to_numpy()
    assert len(np.unique(buckets)) >= 8  # quantile buckets are populated
    # summary statistics describe the written train split
    st = summary["train_feature_stats"]["distance_z"]
    assert st["count"] == train.num_rows and abs(st["mean"] - z.mean()) < 1e-4
    # crosses report their distinct values, collisions and rare values
    route = summary["crosses"]["cross_route"]
    n_routes = len({(raw[n - 2]["origin"], raw[n - 2]["dest"]) for n in lines})
    assert route["distinct_values"] == n_routes
    assert route["buckets_used"] + route["bucket_collisions"] == n_routes
    assert route["train_rows"] == train.num_rows
    manifest = json.loads((flights_features / "artifact.json").read_text())
    assert manifest["schema"]["sha256"] == hashlib.sha256(SCHEMA.read_bytes()).hexdigest()
    assert manifest["config"]["analyzers"] == "fused"  # the default
    assert manifest["outputs"]["rows"] == {"train": s["train"], "eval": s["eval"]}
    raw_inputs = {e["uri"]: e["sha256"] for e in manifest["inputs"] if e["role"] == "raw:flights"}
    flights_csv = str(flights_slice / "flights.csv")
    assert raw_inputs == {flights_csv: hashlib.sha256(Path(flights_csv).read_bytes()).hexdigest()}


SERVE_SCRIPT = r"""
import sys, json, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("beam_jobs", "ray_jobs", "schemas"):
            raise ImportError(f"{name} must not be needed at serving time")
sys.meta_path.insert(0, Block())
import tensorflow as tf, tensorflow_transform as tft
rows = json.load(open(sys.argv[2]))
out = tft.TFTransformOutput(sys.argv[1])
spec = out.raw_feature_spec()
feats = {}
for name, f in spec.items():
    vals = [r.get(name) for r in rows]
    present = [v for v in vals if v is not None]
    idx = [[i, 0] for i, v in enumerate(vals) if v is not None]
    feats[name] = tf.sparse.SparseTensor(
        tf.constant(idx, tf.int64) if idx else tf.zeros([0, 2], tf.int64),
        tf.constant(present, f.dtype), [len(rows), 1])
res = out.transform_features_layer()(feats)
json.dump({k: v.numpy().tolist() for k, v in res.items()}, open(sys.argv[3], "w"))
"""


def test_saved_transform_reproduces_written_features_without_job_code(
        flights_features, flights_slice, tmp_path):
    """Serving: the SavedModel alone (job code unimportable, artifacts copied elsewhere)
    turns raw rows into exactly the features the job wrote: no training/serving skew."""
    import shutil

    from beam_jobs.tabular import prepare, records
    from mlbatch.schema import load_schema

    schema = load_schema(SCHEMA)
    served = tmp_path / "serving"
    for d in ("transform_fn", "transformed_metadata", "metadata"):
        shutil.copytree(flights_features / d, served / d)
    evl = _read(flights_features / "eval").slice(0, 200)
    # raw inputs of those rows, prepared the way the job prepares them
    lines = {int(i.rsplit(":", 1)[1]) for i in evl.column("example_id").to_pylist()}

    def load(name):
        t = schema.tables[name]
        raw = (flights_slice / f"{name}.csv").read_bytes().splitlines(keepends=True)
        chunk, _ = records.parse_csv_lines(t, str(flights_slice / f"{name}.csv"),
                                           records.parse_csv_header(raw[0]), raw[1:], 2)
        return pa.Table.from_batches([records.validate_chunk(t, chunk)[0]])

    flights = load("flights")
    flights = flights.filter(pa.array([n in lines for n in flights.column("_line").to_pylist()]))
    lookups = {j.table: prepare.dedupe_lookup(schema.tables[j.table],
                                              load(j.table).to_batches())[0]
               for j in schema.joins}
    prepared, _ = prepare.prepare(flights, lookups, schema)
    order = {n: i for i, n in enumerate(prepared.column("_line").to_pylist())}
    rows = prepared.select(schema.transform_inputs()).to_pylist()
    (tmp_path / "rows.json").write_text(json.dumps(rows))
    proc = subprocess.run([sys.executable, "-c", SERVE_SCRIPT, str(served),
                           str(tmp_path / "rows.json"), str(tmp_path / "out.json")],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    served_out = json.loads((tmp_path / "out.json").read_text())
    written = {int(i.rsplit(":", 1)[1]): k for k, i in
               enumerate(evl.column("example_id").to_pylist())}
    for name in schema.feature_names:
        got = np.asarray(served_out[name]).reshape(-1)
        want = evl.column(name).to_numpy()
        got = np.array([got[order[n]] for n in sorted(written)])
        want = np.array([want[written[n]] for n in sorted(written)])
        if want.dtype.kind == "f":
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6, err_msg=name)
        else:
            np.testing.assert_array_equal(got, want, err_msg=name)


def test_dataflow_dry_run_writes_job_description(flights_slice, gcs_emulator, tmp_path):
    """Offline, with gs:// input, output and temp location (the local GCS emulator)."""
    from mlbatch import storage
    raw = gcs_emulator.uri("raw", "flights")
    storage.copy_tree(str(flights_slice), raw)
    job_file = tmp_path / "job.json"
    proc = run_feature_job(
        raw, gcs_emulator.uri("dataflow", "features"),
        "--runner", "DataflowRunner", "--project", "my-project", "--region", "us-central1",
        "--temp_location", gcs_emulator.uri("tmp"), "--dry_run=True",
        f"--dataflow_job_file={job_file}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not storage.exists(gcs_emulator.uri("dataflow", "features", "artifact.json"))
    job = dry_run_summary(job_file)
    assert job["name"] == "features-flights"
    read = "ReadAndPrepare/"  # the one read-and-prepare composite (beam_jobs.tabular.examples)
    for step in (f"{read}ReadFlights", f"{read}ValidateFlights", f"{read}BuildWeatherLookup",
                 f"{read}PrepareExamples", "AnalyzeTrain", "Transform", "SplitTransformed",
                 "WriteTrain", "WriteEval", "WriteDeadLetters", "WriteExcluded", "WriteTransformFn"):
        assert step in job["transforms"], step
    # the fused analyzer runs on the workers as one step of tf.Transform's analysis
    assert any("FusedAnalyzer" in t for t in job["transforms"])
    assert job["options"]["project"] == "my-project"
    assert job["options"]["region"] == "us-central1"
    assert job["options"]["setup_file"].endswith("setup.py")  # ships this package
    assert any("workflow.tar.gz" in p for p in job["packages"])


@pytest.mark.parametrize("flags, message", [
    (["--runner", "DataflowRunner"], "--project is required for DataflowRunner"),
    (["--runner", "DataflowRunner", "--project", "p-1", "--region", "r",
      "--temp_location", "/local/tmp"], "--temp_location must be a gs:// path"),
])
def test_invalid_dataflow_options_fail_before_running(flights_slice, tmp_path, flags, message,
                                                      capsys):
    code, stderr = feature_job_main(capsys, flights_slice, tmp_path / "out", *flags)
    assert code == 2
    assert message in stderr and "Traceback" not in stderr
    assert not (tmp_path / "out").exists()
