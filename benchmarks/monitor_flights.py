"""The monitor's verdicts on the real flights table (numpy layer, in memory): the
false-alarm rate over random halves of each month, and January against July.

python -m benchmarks.monitor_flights [--splits 20] [--output out/monitor_flights.json]
Results: docs/monitoring.md.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from beam_jobs.tabular import prepare
from beam_jobs.monitor import stats
from mlbatch.schema import load_schema
from scripts.export_flights import export
from tests.monitor.conftest import SCHEMA_FILE, _read


def prepared_year(schema) -> pa.Table:
    with tempfile.TemporaryDirectory() as d:
        files = export(Path(d))
        tables = {name: _read(schema.tables[name], path) for name, path in files.items()}
    lookups = {j.table: prepare.dedupe_lookup(schema.tables[j.table],
                                              tables[j.table].to_batches())[0]
               for j in schema.joins}
    return prepare.prepare(tables["flights"], lookups, schema)[0]


def false_alarms(year: pa.Table, columns, splits: int) -> dict:
    """Per month: flags over `splits` random halves (every flag is false), under the
    rule (threshold AND null p99), the fixed threshold alone and the null alone."""
    out = {}
    for m in range(1, 13):
        t = year.filter(pc.equal(year.column("month"), m))
        rule = thr = null = 0
        for seed in range(splits):
            mask = np.random.default_rng(seed).random(t.num_rows) < 0.5
            for r in stats.compare_tables(t.filter(pa.array(mask)), t.filter(pa.array(~mask)),
                                          columns):
                rule += r.breach
                thr += r.distance > r.threshold
                null += r.distance > r.null_p99
        n = splits * len(columns)
        out[m] = {"rows": t.num_rows, "checks": n, "rule": rule / n, "threshold_only": thr / n,
                  "null_only": null / n}
    return out


def small_windows(year: pa.Table, columns, size: int, draws: int) -> dict:
    """Per month: `draws` random windows of `size` flights against the rest of the month
    (the same distribution): flags under the rule and under the fixed threshold alone."""
    out = {}
    for m in range(1, 13):
        t = year.filter(pc.equal(year.column("month"), m))
        rule = thr = 0
        for seed in range(draws):
            pick = np.zeros(t.num_rows, bool)
            pick[np.random.default_rng(seed).choice(t.num_rows, size, replace=False)] = True
            for r in stats.compare_tables(t.filter(pa.array(~pick)), t.filter(pa.array(pick)),
                                          columns):
                rule += r.breach
                thr += r.distance > r.threshold
        n = draws * len(columns)
        out[m] = {"window": size, "checks": n, "rule": rule / n, "threshold_only": thr / n}
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--splits", type=int, default=20)
    parser.add_argument("--window", type=int, default=25)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args(argv)
    schema = load_schema(SCHEMA_FILE)
    columns = stats.raw_columns(schema)
    year = prepared_year(schema)
    fa = false_alarms(year, columns, args.splits)
    for m, r in fa.items():
        print(f"month {m:2d}: {r['rows']:6d} rows, {r['checks']} checks: rule {r['rule']:.4f}, "
              f"threshold only {r['threshold_only']:.4f}, null only {r['null_only']:.4f}")
    small = small_windows(year, columns, args.window, args.splits)
    for m, r in small.items():
        print(f"month {m:2d}: windows of {r['window']} flights, {r['checks']} checks: rule "
              f"{r['rule']:.4f}, threshold only {r['threshold_only']:.4f}")
    jan = year.filter(pc.equal(year.column("month"), 1))
    jul = year.filter(pc.equal(year.column("month"), 7))
    table = [r.to_dict() for r in stats.compare_tables(jan, jul, columns)]
    print("\nJanuary (reference) vs July\n| feature | metric | distance | quantile JS | "
          "null p99 | breach |\n|---|---|---|---|---|---|")
    for r in table:
        q = "" if r["quantile_distance"] is None else f"{r['quantile_distance']:.4f}"
        print(f"| {r['name']} | {r['metric']} | {r['distance']:.4f} | {q} | "
              f"{r['null_p99']:.4f} | {r['breach']} |")
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps({"false_alarms": fa, "small_windows": small,
                                           "january_vs_july": table},
                                          indent=2))


if __name__ == "__main__":
    main()
