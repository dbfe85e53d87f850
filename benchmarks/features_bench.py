"""Feature job benchmark: this job vs canonical tf.Transform (with standard or fused
analyzers) vs a single-process floor.

python -m benchmarks.features_bench [--rows N] [--repeats 3] [--scale 1,10] \
    [--contenders job,canonical,canonical_fused,floor] [--large-contenders job,job_mp,floor] \
    [--out bench_out/features_bench.json]

--scale 1,10 runs each scale in turn (xN: flights.csv N times, as flights_00.csv ...):
--contenders at x1, --large-contenders (default job,floor: canonical tf.Transform only at
x1) above it; `across_scales` in the JSON gives each contender's peak-RSS and throughput
ratio between the smallest and the largest scale. Job variants: job (the default: two
passes on the local runner), job_1pass (--passes 1), job_mp (--direct_num_workers 2
--direct_running_mode multi_processing).

Side by side in one run, on the flights table (all 336,776 rows, or the first --rows),
with the same transforms (schemas/flights.yaml), each contender in its own fresh process
(whole-process time: Python start and imports included), --repeats times, interleaved;
medians are reported:

  job        python -m beam_jobs.features on the raw CSVs: parse, validate, dead letters,
             join weather and planes, derive, label, split, tf.Transform (analyze train,
             transform train and eval), Parquet, summary and manifest. FnApiRunner.
  canonical  tf.Transform the way tensorflow/transform's census_example_v2 does it:
             CsvTFXIO -> AnalyzeAndTransformDataset(output_record_batches=True) on train,
             TransformDataset on eval -> RecordBatchToExamplesEncoder -> WriteToTFRecord,
             WriteTransformFn; the schema's features (plus the label), same runner.
             tf.Transform's CSV decoder cannot read "NA", so it gets pre-joined,
             derived, labelled and split clean CSV (train.csv, eval.csv), written once
             before timing by the job's own records/prepare functions: that work is free
             for it (not timed). The features are written the canonical way: one
             tf.Transform analyzer per feature (make_reference_preprocessing_fn).
  canonical_fused  the same pipeline with the job's preprocessing_fn (one fused
             analyzer pass): how much of the job's lead is the fused analyzer alone.
  floor      one process, no Beam, no validation, no dead letters: pyarrow CSV read,
             pyarrow joins, derived columns, label, split (prepare.split_is_eval, the
             job's per-row blake2b), then the same statistics and transforms in numpy
             over train (mean fill, z-score / 0-1, np.quantile buckets, vocabularies
             with top_k / frequency threshold / OOV buckets, hashes and crosses with TF's
             to_hash_bucket_fast run once on whole columns), train/eval Parquet.

Reported per contender: median wall and CPU seconds, rows/s (input flights rows / wall),
peak RSS (ru_maxrss of the child from wait4: the largest single process), peak tree RSS
(the summed resident set of the child and its worker processes, sampled), the ratios
job/canonical throughput (the target is >= 3), canonical_fused/canonical, floor/job and
job/floor (the x10 target is >= 0.6), and an agreement check on the outputs of the last
repeat.
Timing is machine-dependent and noisy on a shared machine: quote the JSON's medians with
its `machine` block.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCHEMA = "schemas/flights.yaml"
CONTENDERS = ("job", "canonical", "canonical_fused", "floor")
LARGE_CONTENDERS = ("job", "floor")  # at scales > 1 (canonical: x1 only)
JOB_FLAGS = {  # the feature job's contenders: its flags
    "job": [],  # default: two passes on the local runner
    "job_1pass": ["--passes", "1"],  # one pipeline: examples held until the analyzers finish
    "job_mp": ["--direct_num_workers", "2", "--direct_running_mode", "multi_processing",
               "--allow_open_worker_ports"],
}
RUNNER = "apache_beam.runners.portability.fn_api_runner.FnApiRunner"
TARGET_JOB_VS_CANONICAL = 3.0
AGREE_COLUMNS = ("distance_z", "wx_temp_z", "wx_visib_01", "plane_age_z", "distance_bucket",
                 "sched_dep_time_bucket", "wx_wind_speed_bucket", "carrier_id", "dest_id",
                 "plane_manufacturer_id", "tailnum_hash", "cross_route",
                 "cross_carrier_x_dest_x_month")


# ---------------------------------------------------------------- inputs (not timed)

def bench_input(data_dir: Path, rows: int | None, tmp: Path, scale: int = 1) -> Path:
    """The raw input directory: data_dir itself, or a copy with the first `rows` flights,
    and at `scale` > 1 that flights file `scale` times (flights_00.csv, flights_01.csv ...;
    every copy's rows are new examples: example_id names file and line)."""
    if rows is None and scale == 1:
        return data_dir
    target = tmp / f"input_x{scale}"
    target.mkdir(parents=True)
    for src in data_dir.glob("*.csv"):
        if not src.name.startswith("flights"):
            shutil.copy(src, target / src.name)
            continue
        first = target / (src.name if scale == 1 else f"flights_{0:02d}.csv")
        with open(src, "rb") as f, open(first, "wb") as out:
            for i, line in enumerate(f):
                if rows is not None and i > rows:
                    break
                out.write(line)
        for copy in range(1, scale):
            shutil.copy(first, target / f"flights_{copy:02d}.csv")
    return target


def count_rows(input_dir: Path) -> int:
    return sum(sum(1 for _ in open(p, "rb")) - 1 for p in input_dir.glob("flights*.csv"))


def write_clean_csv(schema_path: str, input_dir: Path, out_dir: Path) -> dict:
    """Pre-joined, derived, labelled, split CSV for the canonical pipeline, made with the
    job's own functions (parse, validate, dedupe, prepare). Missing values: empty fields."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    from beam_jobs.tabular import prepare, records
    from mlbatch.schema import load_schema

    schema = load_schema(REPO / schema_path)
    valid = {}
    for name, table in schema.tables.items():
        batches = []
        for path in sorted(input_dir.glob(table.path)):
            lines = path.read_bytes().splitlines(keepends=True)
            header = records.parse_csv_header(lines[0])
            chunk, dead = records.parse_csv_lines(table, str(path), header, lines[1:], 2)
            batch, dead2 = records.validate_chunk(table, chunk)
            batches.append(batch)
        valid[name] = batches
    lookups = {j.table: prepare.dedupe_lookup(schema.tables[j.table], valid[j.table])[0]
               for j in schema.joins}
    prepared, _ = prepare.prepare(pa.Table.from_batches(valid[schema.main]), lookups, schema)
    columns = schema.transform_inputs() + [schema.label.name]
    is_eval = prepared.column(prepare.IS_EVAL).to_numpy(zero_copy_only=False)
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split, mask in (("train", ~is_eval), ("eval", is_eval)):
        part = prepared.filter(pa.array(mask)).select(columns)
        pcsv.write_csv(part, out_dir / f"{split}.csv", pcsv.WriteOptions(include_header=False))
        counts[split] = part.num_rows
    return {"columns": columns, "rows": counts}


# ---------------------------------------------------------------- contender: canonical

def child_canonical(schema_path: str, prepared_dir: Path, output: Path, fused: bool) -> dict:
    """census_example_v2's transform_data(), with the schema's features written the
    canonical way (one tf.Transform analyzer per feature), or with the job's fused one."""
    import apache_beam as beam
    import tensorflow as tf
    import tensorflow_transform.beam as tft_beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from tensorflow_transform.tf_metadata import schema_utils
    from tfx_bsl.public import tfxio

    from beam_jobs.features.preprocessing import (make_preprocessing_fn,
                                                  make_reference_preprocessing_fn,
                                                  raw_feature_spec)
    from mlbatch.schema import load_schema

    schema = load_schema(REPO / schema_path)
    label = schema.label.name
    columns = schema.transform_inputs() + [label]
    raw_schema = schema_utils.schema_from_feature_spec(
        {**raw_feature_spec(schema), label: tf.io.FixedLenFeature([], tf.float32)})
    features_fn = (make_preprocessing_fn if fused else make_reference_preprocessing_fn)(schema)

    def preprocessing_fn(inputs):
        return {**features_fn(inputs), label: inputs[label]}

    options = PipelineOptions(["--runner", RUNNER])
    with beam.Pipeline(options=options) as pipeline:
        with tft_beam.Context(temp_dir=str(output / "tmp")):
            csv = {split: tfxio.CsvTFXIO(str(prepared_dir / f"{split}.csv"), columns,
                                         schema=raw_schema) for split in ("train", "eval")}
            raw_train = pipeline | "ReadTrainData" >> csv["train"].BeamSource()
            (train_data, _), transform_fn = (
                (raw_train, csv["train"].TensorAdapterConfig())
                | "AnalyzeAndTransform" >> tft_beam.AnalyzeAndTransformDataset(
                    preprocessing_fn, output_record_batches=True))
            raw_eval = pipeline | "ReadEvalData" >> csv["eval"].BeamSource()
            eval_data, _ = (((raw_eval, csv["eval"].TensorAdapterConfig()), transform_fn)
                            | "TransformEval" >> tft_beam.TransformDataset(
                                output_record_batches=True))
            coder = tfxio.RecordBatchToExamplesEncoder()
            for split, data in (("Train", train_data), ("Eval", eval_data)):
                _ = (data
                     | f"Encode{split}Data" >> beam.FlatMapTuple(
                         lambda batch, _: coder.encode(batch))
                     | f"Write{split}Data" >> beam.io.WriteToTFRecord(
                         str(output / split.lower() / "part"), file_name_suffix=".tfrecord"))
            _ = transform_fn | "WriteTransformFn" >> tft_beam.WriteTransformFn(str(output))
    shutil.rmtree(output / "tmp", ignore_errors=True)
    return {}


# ---------------------------------------------------------------- contender: floor

def _read_tables(schema, input_dir: Path) -> dict:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    types = {"int64": pa.int64(), "float64": pa.float64(), "string": pa.string()}
    out = {}
    for name, t in schema.tables.items():
        convert = pcsv.ConvertOptions(
            column_types={c.name: types[c.type] for c in t.columns},
            include_columns=t.column_names, null_values=list(t.null_tokens),
            strings_can_be_null=True)
        parts = []
        for path in sorted(input_dir.glob(t.path)):
            table = pcsv.read_csv(path, convert_options=convert)
            line = pa.array(range(2, table.num_rows + 2), pa.int64()).cast(pa.string())
            parts.append(table.append_column("example_id", pc.binary_join_element_wise(
                str(path), line, ":")) if name == schema.main else table)
        out[name] = pa.concat_tables(parts)
    return out


def _dedupe(t, keys: tuple[str, ...]):
    import numpy as np
    import pyarrow as pa

    t = t.append_column("__row", pa.array(np.arange(t.num_rows)))
    first = t.group_by(list(keys), use_threads=False).aggregate([("__row", "min")])
    return t.take(first.column("__row_min").sort()).drop_columns(["__row"])


def floor_prepare(schema, input_dir: Path, phases: dict):
    """Read, join, derive, label, split: (train, eval) Arrow tables."""
    import pyarrow as pa

    from beam_jobs.tabular import prepare

    t0 = time.perf_counter()
    tables = _read_tables(schema, input_dir)
    t1 = time.perf_counter()
    t = tables[schema.main]
    for j in schema.joins:
        t = prepare.join_lookup(t, _dedupe(tables[j.table], j.on), j)
    t = prepare.add_derived(t, schema)
    label, missing = prepare.label_array(t, schema)
    t = t.append_column(schema.label.name, label).filter(pa.array(~missing))
    t2 = time.perf_counter()
    is_eval = prepare.split_is_eval(t, schema)
    t3 = time.perf_counter()
    phases.update(read_s=t1 - t0, join_derive_label_s=t2 - t1, split_hash_s=t3 - t2)
    return t.filter(pa.array(~is_eval)), t.filter(pa.array(is_eval))


def _floats(col):
    import numpy as np
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float32)


def _fill(train, other, fill):
    import numpy as np
    value = np.float32(np.nanmean(train) if fill == "mean" else fill)
    return [np.where(np.isnan(x), value, x) for x in (train, other)]


def _category(col):
    """Missing is a category of its own; ints become their decimal strings."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from beam_jobs.features.preprocessing import MISSING, MISSING_INT
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_string(col.type):
        return pc.fill_null(col, MISSING.decode())
    return pc.cast(pc.fill_null(col, MISSING_INT), pa.string())


def _hash(strings, buckets: int):
    import numpy as np
    import tensorflow as tf
    values = strings.to_numpy(zero_copy_only=False).astype(object)
    return tf.strings.to_hash_bucket_fast(values, buckets).numpy().astype(np.int64)


def _vocabulary(train, other, f):
    """Counts over train, (count desc, value desc), frequency threshold, top_k; OOV ids
    are vocab_size + hash % num_oov_buckets. Returns (vocab, train ids, other ids)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    counts = pc.value_counts(train)
    values = counts.field("values").to_numpy(zero_copy_only=False).astype(object)
    freq = counts.field("counts").to_numpy()
    order = sorted(range(len(values)), key=lambda i: (freq[i], values[i]), reverse=True)
    vocab = [values[i] for i in order if freq[i] >= (f.frequency_threshold or 0)]
    vocab = vocab[:f.top_k] if f.top_k else vocab
    out = []
    for col in (train, other):
        ids = pc.index_in(col, value_set=pa.array(vocab, col.type))
        ids = ids.to_numpy(zero_copy_only=False)
        oov = np.isnan(ids)
        ids = np.where(oov, len(vocab), ids).astype(np.int64)
        if f.num_oov_buckets > 1 and oov.any():
            ids[oov] += _hash(col.filter(pa.array(oov)), f.num_oov_buckets)
        out.append(ids)
    return vocab, out[0], out[1]


def floor_features(schema, train, other, analysis: dict) -> tuple[dict, dict]:
    """The preprocessing_fn's statistics over train, applied to train and eval."""
    import numpy as np
    import pyarrow.compute as pc

    from beam_jobs.features.preprocessing import CROSS_SEPARATOR, FINGERPRINT_BUCKETS
    a, b = {}, {}
    for f in schema.numeric:
        x, y = _fill(_floats(train.column(f.column)), _floats(other.column(f.column)), f.fill)
        if f.scale == "z_score":
            mean, std = x.mean(dtype=np.float64), x.std(dtype=np.float64)
            scale = lambda v, mean=mean, std=std: ((v - mean) / std if std > 0 else v - mean)  # noqa: E731
        else:
            lo, hi = float(x.min()), float(x.max())
            scale = lambda v, lo=lo, hi=hi: (v - lo) / (hi - lo) if hi > lo else v * 0  # noqa: E731
        a[f.name], b[f.name] = scale(x).astype(np.float32), scale(y).astype(np.float32)
    for f in schema.buckets:
        x, y = _fill(_floats(train.column(f.column)), _floats(other.column(f.column)), f.fill)
        bounds = np.quantile(x, np.arange(1, f.num_buckets) / f.num_buckets)
        analysis[f.name] = bounds.tolist()
        a[f.name], b[f.name] = (np.digitize(v, bounds).astype(np.int64) for v in (x, y))
    for f in schema.vocabularies:
        vocab, a[f.name], b[f.name] = _vocabulary(_category(train.column(f.column)),
                                                  _category(other.column(f.column)), f)
        analysis[f"vocab_{f.column}"] = vocab
    for f in schema.hashes:
        for t, d in ((train, a), (other, b)):
            d[f.name] = _hash(_category(t.column(f.column)), f.hash_buckets)
    for f in schema.crosses:
        for t, d in ((train, a), (other, b)):
            parts = [pc.cast(d[c], "string") if c in d else _category(t.column(c))
                     for c in f.columns]
            crossed = pc.binary_join_element_wise(*parts, CROSS_SEPARATOR)
            d[f.name] = _hash(crossed, f.hash_buckets)
            if t is train:
                analysis[f"distinct_{f.cross}"] = len(np.unique(
                    _hash(crossed, FINGERPRINT_BUCKETS)))
    return a, b


def child_floor(schema_path: str, input_dir: Path, output: Path) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlbatch.schema import load_schema

    t0 = time.perf_counter()
    import tensorflow as tf  # noqa: F401  (its hash kernel; timed on its own)
    phases: dict = {"import_tf_s": time.perf_counter() - t0}
    schema = load_schema(REPO / schema_path)
    train, other = floor_prepare(schema, input_dir, phases)
    t0 = time.perf_counter()
    analysis: dict = {}
    feats = floor_features(schema, train, other, analysis)
    t1 = time.perf_counter()
    output.mkdir(parents=True, exist_ok=True)
    for split, t, cols in (("train", train, feats[0]), ("eval", other, feats[1])):
        out = pa.table({**{n: cols[n] for n in schema.feature_names},
                        schema.label.name: t.column(schema.label.name),
                        "example_id": t.column("example_id")})
        (output / split).mkdir(exist_ok=True)
        pq.write_table(out, output / split / "part-0.parquet", row_group_size=100_000)
    (output / "analysis.json").write_text(json.dumps(analysis))
    phases.update(features_s=t1 - t0, write_s=time.perf_counter() - t1)
    vocab_sizes = {k[len("vocab_"):]: len(v) for k, v in analysis.items() if k.startswith("vocab_")}
    return {"phases_s": {k: round(v, 2) for k, v in phases.items()}, "vocab_sizes": vocab_sizes}


# ---------------------------------------------------------------- measuring

def _tree_rss_kib(pid: int) -> int:
    """Resident set of a process and all its descendants (KiB), from /proc."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += int(status.split("VmRSS:")[1].split()[0])
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile, or a zombie without VmRSS
    return total


def measure(cmd: list[str], log: Path) -> dict:
    """Runs cmd in a fresh process: wall, CPU (user + sys), peak RSS (ru_maxrss from
    wait4: the largest resident set of the child or any process it waited for) and the
    peak summed RSS of its process tree (sampled every 0.25 s: worker processes)."""
    start = time.perf_counter()
    peak_tree = [0]
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT)
        stop = threading.Event()

        def sample():
            while not stop.wait(0.25):
                peak_tree[0] = max(peak_tree[0], _tree_rss_kib(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        stop.set()
        sampler.join()
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n"
                           f"{log.read_text()[-4000:]}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_rss_mib": usage.ru_maxrss / 1024, "peak_tree_rss_mib": peak_tree[0] / 1024}


def contender_cmd(name: str, input_dir: Path, prepared: Path, out: Path) -> list[str]:
    if name in JOB_FLAGS:
        return [sys.executable, "-m", "beam_jobs.features", "--schema", SCHEMA, "--input",
                str(input_dir), "--output", str(out), "--overwrite", *JOB_FLAGS[name]]
    child_input = prepared if name.startswith("canonical") else input_dir
    return [sys.executable, "-m", "benchmarks.features_bench", "--child", name,
            "--child-input", str(child_input), "--child-output", str(out)]


def _last_json(log: Path) -> dict:
    for line in reversed(log.read_text().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {}


# ---------------------------------------------------------------- agreement (not timed)

def _means(tables) -> tuple[int, dict]:
    import pyarrow as pa
    t = pa.concat_tables(tables)
    return t.num_rows, {c: float(pa.compute.mean(t.column(c)).as_py()) for c in AGREE_COLUMNS}


def _tfrecord_means(path: Path) -> tuple[int, dict]:
    import numpy as np
    import tensorflow as tf
    import tensorflow_transform as tft

    spec = {c: tft.TFTransformOutput(str(path.parent)).transformed_feature_spec()[c]
            for c in AGREE_COLUMNS}
    sums, n = dict.fromkeys(AGREE_COLUMNS, 0.0), 0
    ds = tf.data.TFRecordDataset(sorted(map(str, path.glob("part*")))).batch(65536)
    for serialized in ds:
        batch = tf.io.parse_example(serialized, spec)
        n += int(batch[AGREE_COLUMNS[0]].shape[0])
        for c in AGREE_COLUMNS:
            sums[c] += float(np.sum(batch[c].numpy(), dtype=np.float64))
    return n, {c: s / n for c, s in sums.items()}


def _vocab_sizes(out: Path) -> dict:
    import tensorflow_transform as tft

    from beam_jobs.features.preprocessing import vocab_filename
    from mlbatch.schema import load_schema
    tfo = tft.TFTransformOutput(str(out))
    return {f.column: tfo.vocabulary_size_by_name(vocab_filename(f.column))
            for f in load_schema(REPO / SCHEMA).vocabularies}


def agreement(outs: dict[str, Path], floor_result: dict) -> dict:
    import pyarrow.parquet as pq

    found = {}
    for name, out in outs.items():
        if name.startswith("canonical"):
            counts = {s: _tfrecord_means(out / s) for s in ("train", "eval")}
        else:
            counts = {s: _means([pq.read_table(p) for p in sorted((out / s).glob("*.parquet"))])
                      for s in ("train", "eval")}
        found[name] = {"train_rows": counts["train"][0], "eval_rows": counts["eval"][0],
                       "train_means": counts["train"][1],
                       "vocab_sizes": (floor_result.get("vocab_sizes") if name == "floor"
                                       else _vocab_sizes(out))}
    ref = found.get("job") or next(iter(found.values()))
    checks = {
        "train/eval rows equal": all((f["train_rows"], f["eval_rows"])
                                     == (ref["train_rows"], ref["eval_rows"])
                                     for f in found.values()),
        "vocab sizes equal": all(f["vocab_sizes"] == ref["vocab_sizes"] for f in found.values()),
        "max |train mean diff| per column vs job": {
            c: max(abs(f["train_means"][c] - ref["train_means"][c]) for f in found.values())
            for c in AGREE_COLUMNS},
    }
    return {"contenders": found, "checks": checks}


# ---------------------------------------------------------------- driver

def summarize(runs: dict[str, list[dict]], rows: int) -> dict:
    table = {}
    for name, reps in runs.items():
        wall = statistics.median(r["wall_s"] for r in reps)
        table[name] = {"median_wall_s": round(wall, 2),
                       "median_cpu_s": round(statistics.median(r["cpu_s"] for r in reps), 2),
                       "rows_per_s": round(rows / wall),
                       "peak_rss_mib": round(max(r["peak_rss_mib"] for r in reps)),
                       "peak_tree_rss_mib": round(max(r["peak_tree_rss_mib"] for r in reps)),
                       "walls_s": [round(r["wall_s"], 2) for r in reps],
                       "cpus_s": [round(r["cpu_s"], 2) for r in reps]}
    ratios = {}
    if "job" in table and "canonical" in table:
        job, can = table["job"], table["canonical"]
        ratios["job_vs_canonical_throughput"] = round(can["median_wall_s"] / job["median_wall_s"], 2)
        ratios["job_vs_canonical_cpu"] = round(can["median_cpu_s"] / job["median_cpu_s"], 2)
        ratios["target_3x_met"] = ratios["job_vs_canonical_throughput"] >= TARGET_JOB_VS_CANONICAL
    if "canonical" in table and "canonical_fused" in table:
        can, fused = table["canonical"], table["canonical_fused"]
        ratios["canonical_fused_vs_canonical_throughput"] = round(
            can["median_wall_s"] / fused["median_wall_s"], 2)
    for name in JOB_FLAGS:
        if name in table and "floor" in table:
            job, flo = table[name], table["floor"]
            ratios[f"{name}_vs_floor_throughput"] = round(
                flo["median_wall_s"] / job["median_wall_s"], 2)
    if "job" in table and "floor" in table:
        job, flo = table["job"], table["floor"]
        ratios["floor_vs_job_throughput"] = round(job["median_wall_s"] / flo["median_wall_s"], 2)
        ratios["floor_vs_job_cpu"] = round(job["median_cpu_s"] / flo["median_cpu_s"], 2)
    if "job" in table and "job_mp" in table:
        ratios["job_mp_speedup"] = round(table["job"]["median_wall_s"]
                                         / table["job_mp"]["median_wall_s"], 2)
    return {"contenders": table, "ratios": ratios}


def bench_scale(args, names: list[str], scale: int, tmp: Path) -> dict:
    """Every contender in `names`, --repeats times interleaved, at one scale."""
    results: dict = {"scale": scale, "loadavg_start": os.getloadavg()}
    input_dir = bench_input(REPO / args.data_dir, args.rows, tmp, scale)
    rows = count_rows(input_dir)
    tmp.mkdir(parents=True, exist_ok=True)
    prepared = tmp / "prepared"
    if any(n.startswith("canonical") for n in names):
        t0 = time.perf_counter()
        results["canonical_input"] = write_clean_csv(SCHEMA, input_dir, prepared)
        results["canonical_input"]["prepare_s_not_timed"] = round(time.perf_counter() - t0, 1)
    runs: dict[str, list[dict]] = {n: [] for n in names}
    outs = {n: tmp / n for n in names}
    floor_result: dict = {}
    for rep in range(args.repeats):
        for name in names:  # interleaved, so that load drifts hit all alike
            shutil.rmtree(outs[name], ignore_errors=True)
            log = tmp / f"{name}.log"
            try:
                run = measure(contender_cmd(name, input_dir, prepared, outs[name]), log)
            except RuntimeError as e:  # one contender failing does not lose the others
                print(f"x{scale} rep {rep} {name} FAILED: {e}", flush=True)
                results.setdefault("failed", {})[name] = str(e)[-2000:]
                continue
            if name == "floor":
                floor_result = _last_json(log)
                run["phases_s"] = floor_result.get("phases_s")
            runs[name].append(run)
            print(f"x{scale} rep {rep} {name:15s}: {run['wall_s']:6.1f}s wall "
                  f"{run['cpu_s']:6.1f}s cpu {run['peak_rss_mib']:6.0f} MiB "
                  f"(tree {run['peak_tree_rss_mib']:6.0f} MiB) load {os.getloadavg()[0]:.1f}",
                  flush=True)
    results["rows"] = rows
    runs = {n: r for n, r in runs.items() if r}
    outs = {n: outs[n] for n in runs}
    results.update(summarize(runs, rows))
    if "floor" in runs:
        results["floor_phases_s_last"] = runs["floor"][-1].get("phases_s")
    results["agreement"] = agreement(outs, floor_result)
    results["loadavg_end"] = os.getloadavg()
    shutil.rmtree(tmp, ignore_errors=True)
    return results


def across_scales(scales: dict) -> dict:
    """Per contender run at the smallest and the largest scale: peak RSS and throughput
    ratios (largest / smallest; the memory target is <= 1.5)."""
    if len(scales) < 2:
        return {}
    lo, hi = min(scales.values(), key=lambda r: r["scale"]), max(
        scales.values(), key=lambda r: r["scale"])
    out = {}
    for name, big in hi["contenders"].items():
        small = lo["contenders"].get(name)
        if small:
            out[name] = {"peak_rss_ratio": round(big["peak_rss_mib"] / small["peak_rss_mib"], 2),
                         "peak_tree_rss_ratio": round(
                             big["peak_tree_rss_mib"] / small["peak_tree_rss_mib"], 2),
                         "throughput_ratio": round(big["rows_per_s"] / small["rows_per_s"], 2)}
    return {"from": f"x{lo['scale']}", "to": f"x{hi['scale']}", "contenders": out}


def bench(args) -> dict:
    scales = [int(x) for x in args.scale.split(",")]
    results: dict = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "loadavg_start": os.getloadavg()},
        "settings": {"rows": args.rows, "repeats": args.repeats, "schema": SCHEMA,
                     "runner": RUNNER, "scales": scales, "argv": sys.argv[1:]},
        "notes": ["canonical reads pre-joined, derived, labelled, split clean CSV written "
                  "before timing (free for it, not timed); job and floor read the raw CSVs",
                  "job validates and writes dead letters/excluded/summary/manifest; the floor "
                  "does no validation; canonical writes TFRecord, job and floor Parquet",
                  "scale xN: flights.csv N times (flights_00.csv ...); canonical runs only "
                  "at x1 (--contenders), the others at every scale (--large-contenders)"],
        "scales": {}}
    with tempfile.TemporaryDirectory(prefix="features_bench_") as tmp_name:
        for scale in scales:
            names = (args.contenders if scale == 1 else args.large_contenders).split(",")
            results["scales"][f"x{scale}"] = bench_scale(args, names, scale,
                                                         Path(tmp_name) / f"x{scale}")
            write_results(args.out, results)  # each finished scale survives an interruption
    results["across_scales"] = across_scales(results["scales"])
    results["machine"]["loadavg_end"] = os.getloadavg()
    return results


def write_results(out: str, results: dict) -> None:
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(results, indent=1, default=str))


def report_scale(results: dict) -> None:
    print(f"\nx{results['scale']}: flights rows {results['rows']}")
    print(f"{'contender':15s} {'wall s':>8s} {'cpu s':>8s} {'rows/s':>9s} {'peak MiB':>9s} "
          f"{'tree MiB':>9s}")
    for name, row in results["contenders"].items():
        print(f"{name:15s} {row['median_wall_s']:8.1f} {row['median_cpu_s']:8.1f} "
              f"{row['rows_per_s']:9d} {row['peak_rss_mib']:9d} {row['peak_tree_rss_mib']:9d}")
    for k, v in results["ratios"].items():
        print(f"{k}: {v}")
    checks = results["agreement"]["checks"]
    print("agreement: train/eval rows equal:", checks["train/eval rows equal"],
          "| vocab sizes equal:", checks["vocab sizes equal"])
    for name, f in results["agreement"]["contenders"].items():
        m = f["train_means"]
        print(f"  {name:15s} train {f['train_rows']} eval {f['eval_rows']} "
              f"distance_z {m['distance_z']:+.4f} wx_visib_01 {m['wx_visib_01']:.4f} "
              f"distance_bucket {m['distance_bucket']:.3f} tailnum_hash {m['tailnum_hash']:.2f} "
              f"cross_route {m['cross_route']:.2f} vocab {f['vocab_sizes']}")


def report(results: dict) -> None:
    print(f"repeats: {results['settings']['repeats']}  cpus: {results['machine']['cpus']}  "
          f"load {results['machine']['loadavg_start']} -> {results['machine']['loadavg_end']}")
    for scale in results["scales"].values():
        report_scale(scale)
    across = results["across_scales"]
    for name, r in across.get("contenders", {}).items():
        print(f"{across['to']} / {across['from']} {name}: peak RSS {r['peak_rss_ratio']}x "
              f"(tree {r['peak_tree_rss_ratio']}x), throughput {r['throughput_ratio']}x")
    for note in results["notes"]:
        print("note:", note)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=None, help="first N flights only")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--contenders", default=",".join(CONTENDERS),
                        help=f"at x1; of {', '.join([*CONTENDERS, *JOB_FLAGS])}")
    parser.add_argument("--large-contenders", default=",".join(LARGE_CONTENDERS),
                        help="at scales > 1 (e.g. job,job_mp,floor)")
    parser.add_argument("--scale", default="1",
                        help="comma-separated input scales, e.g. 1,10: flights.csv N times")
    parser.add_argument("--data-dir", default="data/flights")
    parser.add_argument("--out", default="bench_out/features_bench.json")
    parser.add_argument("--child", choices=("canonical", "canonical_fused", "floor"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--child-input", help=argparse.SUPPRESS)
    parser.add_argument("--child-output", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child in ("canonical", "canonical_fused"):
        print(json.dumps(child_canonical(SCHEMA, Path(args.child_input), Path(args.child_output),
                                         fused=args.child == "canonical_fused")))
        return
    if args.child == "floor":
        print(json.dumps(child_floor(SCHEMA, Path(args.child_input), Path(args.child_output))))
        return
    if args.rows is not None and args.rows < 1 or args.repeats < 1:
        parser.error("--rows and --repeats must be >= 1")
    known = {*CONTENDERS, *JOB_FLAGS}
    for flag in ("contenders", "large_contenders"):
        unknown = set(getattr(args, flag).split(",")) - known
        if unknown:
            parser.error(f"--{flag.replace('_', '-')}: unknown {sorted(unknown)}")
    try:
        if any(int(x) < 1 for x in args.scale.split(",")):
            raise ValueError
    except ValueError:
        parser.error(f"--scale takes comma-separated integers >= 1, got {args.scale!r}")
    results = bench(args)
    write_results(args.out, results)
    report(results)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
