"""Scoring job benchmark: python -m beam_jobs.score vs a single-process floor.

python -m benchmarks.score_bench [--rows N] [--repeats 3] [--features F --model M] \
    [--out bench_out/score_bench.json]

Side by side in one run on the flights table (all 336,776 rows, or the first --rows),
each contender in its own fresh process (Python start and imports included), --repeats
times, interleaved; medians are reported:

  job    python -m beam_jobs.score on the raw CSVs: read, validate, dead letters, join
         weather and planes, derive, the saved transform_fn, RunInference with the
         XGBoost handler, predictions Parquet + Vertex JSON lines, summary, manifest.
         FnApiRunner.
  floor  one process, no Beam, no validation, no dead letters: pyarrow CSV reads, the
         job's vectorized joins and derived columns (beam_jobs.tabular.prepare), then per
         50,000-row Arrow batch the saved transform layer
         (tft.TFTransformOutput.transform_raw_features) and Booster.predict on a DMatrix;
         predictions Parquet.

Setup (not timed): without --features/--model, the feature job and a 50-round XGBoost
model (python -m ray_jobs.xgboost, local Ray) are built once under
bench_out/score_bench/ on the same raw rows. Given --features/--model may also be
artifacts built on a slice (e.g. the test session's): what is timed is scoring the
raw rows of --data-dir, whatever rows the model was trained on. Reported: median wall and CPU seconds,
rows/s (raw flights rows / wall), peak RSS (ru_maxrss of the child, from wait4), the
ratio job/floor throughput (target >= 0.5), the largest difference between the two
contenders' predictions (agreement, not timed), and the machine's load (`uptime`).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCHEMA = "schemas/flights.yaml"
CONTENDERS = ("job", "floor")
TARGET_RATIO = 0.5
BATCH_ROWS = 50_000


def measure(cmd: list[str], log: Path) -> dict:
    """Runs cmd in a fresh process: wall, CPU (user + sys), peak RSS of the child."""
    start = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status):
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{log.read_text()[-4000:]}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_rss_mib": usage.ru_maxrss / 1024}


def _run(cmd: list[str], log: Path) -> None:
    with open(log, "w") as f:
        if subprocess.run(cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT).returncode:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{log.read_text()[-4000:]}")


def prepare_inputs(args, work: Path) -> tuple[Path, str, str]:
    """(raw dir, features, model): the raw rows, and the artifacts unless given."""
    raw = Path(args.data_dir)
    if args.rows is not None:
        raw = work / f"raw_{args.rows}"
        if not (raw / "flights.csv").exists():
            from scripts.export_flights import export
            export(raw, rows=args.rows)
    elif not (raw / "flights.csv").exists():
        from scripts.export_flights import export
        export(raw)
    features, model = args.features, args.model
    if features is None:
        features = str(work / "features")
        if not (Path(features) / "artifact.json").exists():
            _run([sys.executable, "-m", "beam_jobs.features", "--schema", SCHEMA, "--input",
                  str(raw), "--output", features, "--overwrite"], work / "setup_features.log")
    if model is None:
        model = str(work / "xgboost")
        if not (Path(model) / "artifact.json").exists():
            _run([sys.executable, "-m", "ray_jobs.xgboost", "--features", features, "--output",
                  model, "--overwrite", "--num-boost-round", "50"], work / "setup_model.log")
    return raw, features, model


def child_floor(raw: Path, features: str, model_uri: str, out: Path) -> dict:
    """The floor: no Beam, no validation; the saved transform and Booster.predict."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq
    import tensorflow_transform as tft
    import xgboost as xgb

    from beam_jobs.tabular import prepare, records, serving
    from mlbatch.artifacts.features import load_feature_set
    from mlbatch.artifacts.xgboost_model import load_xgboost_model

    t0 = time.perf_counter()
    fs = load_feature_set(features, check_columns=False)
    schema = serving.schema_of(fs)
    model = load_xgboost_model(model_uri)
    tfo = tft.TFTransformOutput(fs.root)
    tables = {}
    for name, spec in schema.tables.items():
        path = raw.resolve() / spec.path.replace("*", "")  # ids name files as the job does
        t = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
            column_types=records.typed_schema(spec), include_columns=spec.column_names,
            null_values=list(spec.null_tokens), strings_can_be_null=True))
        t = t.append_column(records.SOURCE_COL, pa.array([str(path)] * t.num_rows))
        tables[name] = t.append_column(records.LINE_COL, pa.array(
            np.arange(2, t.num_rows + 2, dtype=np.int64)))
    lookups = {j.table: prepare.dedupe_lookup(schema.tables[j.table],
                                              tables[j.table].to_batches())[0]
               for j in schema.joins}
    main = tables[schema.main]
    preds = []
    for start in range(0, main.num_rows, BATCH_ROWS):
        t, _ = serving.prepare_for_serving(main.slice(start, BATCH_ROWS), lookups, schema)
        outputs = tfo.transform_raw_features(serving.transform_inputs(t, schema),
                                             drop_unused_features=True)
        x = np.stack([outputs[n].numpy() for n in model.feature_names], axis=1)
        p = model.booster.predict(xgb.DMatrix(x, feature_names=list(model.feature_names)))
        preds.append(pa.table({"example_id": t.column("example_id"),
                               "prediction": pa.array(p.astype(np.float64))}))
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.concat_tables(preds), out / "predictions.parquet")
    return {"rows": main.num_rows, "inner_s": round(time.perf_counter() - t0, 2)}


def contender_cmd(name: str, raw: Path, features: str, model: str, out: Path) -> list[str]:
    if name == "job":
        return [sys.executable, "-m", "beam_jobs.score", "--features", features, "--model",
                model, "--input", str(raw), "--output", str(out), "--overwrite"]
    return [sys.executable, "-m", "benchmarks.score_bench", "--child", "floor", "--data-dir",
            str(raw), "--features", features, "--model", model, "--child-output", str(out)]


def agreement(job_out: Path, floor_out: Path) -> dict:
    import numpy as np
    import pyarrow.parquet as pq

    from mlbatch.artifacts.predictions import load_predictions
    job = load_predictions(job_out).read_table(["example_id", "prediction"])
    floor = pq.read_table(floor_out / "predictions.parquet")
    f = dict(zip(floor.column("example_id").to_pylist(), floor.column("prediction").to_pylist()))
    ids = job.column("example_id").to_pylist()
    diff = np.abs(job.column("prediction").to_numpy() - np.array([f[i] for i in ids]))
    return {"job_rows": job.num_rows, "floor_rows": floor.num_rows,
            "max_abs_diff": float(diff.max()) if len(diff) else 0.0}


def machine() -> dict:
    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "load_before": os.getloadavg(),
            "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()}


def bench(args) -> dict:
    work = REPO / "bench_out" / "score_bench"
    work.mkdir(parents=True, exist_ok=True)
    raw, features, model = prepare_inputs(args, work)
    info = machine()
    runs: dict[str, list] = {c: [] for c in CONTENDERS}
    for rep in range(args.repeats):
        for name in CONTENDERS:
            out = work / f"out_{name}"
            r = measure(contender_cmd(name, raw, features, model, out), work / f"{name}.log")
            runs[name].append(r)
            print(f"repeat {rep} {name:5s} {r['wall_s']:7.1f} s wall {r['cpu_s']:7.1f} s cpu "
                  f"{r['peak_rss_mib']:6.0f} MiB", flush=True)
    rows = sum(1 for _ in open(raw / "flights.csv", "rb")) - 1
    summary = {}
    for name, reps in runs.items():
        wall = statistics.median(r["wall_s"] for r in reps)
        summary[name] = {"wall_s": round(wall, 2),
                         "cpu_s": round(statistics.median(r["cpu_s"] for r in reps), 2),
                         "rows_per_s": round(rows / wall),
                         "peak_rss_mib": round(max(r["peak_rss_mib"] for r in reps))}
    ratio = summary["job"]["rows_per_s"] / summary["floor"]["rows_per_s"]
    info["load_after"] = os.getloadavg()
    return {"rows": rows, "repeats": args.repeats, "features": features, "model": model,
            "contenders": summary, "ratio_job_over_floor": round(ratio, 3),
            "target_ratio": TARGET_RATIO, "meets_target": ratio >= TARGET_RATIO,
            "agreement": agreement(work / "out_job", work / "out_floor"), "machine": info,
            "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=None, help="first N flights only")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-dir", default="data/flights")
    parser.add_argument("--features", default=None, help="a feature artifact on these rows")
    parser.add_argument("--model", default=None, help="an xgboost_model trained on it")
    parser.add_argument("--out", default="bench_out/score_bench.json")
    parser.add_argument("--child", choices=("floor",), help=argparse.SUPPRESS)
    parser.add_argument("--child-output", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "floor":
        print(json.dumps(child_floor(Path(args.data_dir), args.features, args.model,
                                     Path(args.child_output))))
        return
    if (args.rows is not None and args.rows < 1) or args.repeats < 1:
        parser.error("--rows and --repeats must be >= 1")
    results = bench(args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1, default=str))
    c = results["contenders"]
    for name in CONTENDERS:
        print(f"{name:5s} {c[name]['rows_per_s']:8d} rows/s  {c[name]['wall_s']:7.1f} s  "
              f"{c[name]['peak_rss_mib']:6d} MiB")
    print(f"job/floor throughput: {results['ratio_job_over_floor']:.2f} (target >= "
          f"{TARGET_RATIO}); max |job - floor| = {results['agreement']['max_abs_diff']:.2e}; "
          f"{results['machine']['uptime']}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
