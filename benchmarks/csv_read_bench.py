"""CSV reading benchmark: the feature job's ReadChunksFn on four encodings of a table.

PYTHONPATH=. .venv/bin/python benchmarks/csv_read_bench.py [--input data/flights/flights.csv]
    [--repeats 3] [--chunk-rows 50000]

Runs ReadChunksFn.process (split into records, Arrow fast path or exact path) outside
Beam over: the file as it is, with CRLF line ends, with every field quoted, and with a
quoted line break in one record in 10,000. Prints the median and best seconds of each
and what came out (typed batches vs chunks for the exact path). Run as a script, so
that PYTHONPATH chooses the code measured: an export of an older commit
(`git archive <commit> beam_jobs mlbatch | tar -x -C /tmp/old`) gives a side-by-side
comparison in one session.
"""
from __future__ import annotations

import argparse
import csv
import statistics
import tempfile
import time
from pathlib import Path

import pyarrow as pa

from beam_jobs.tabular.reading import ReadChunksFn
from mlbatch.schema import load_schema

SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "flights.yaml"


def variants(src: Path, out: Path) -> dict[str, Path]:
    lines = src.read_bytes().splitlines(keepends=True)
    paths = {"plain": src}
    paths["crlf"] = out / "crlf.csv"
    paths["crlf"].write_bytes(b"".join(line.rstrip(b"\n") + b"\r\n" for line in lines))
    paths["quoted"] = out / "quoted.csv"
    with open(src, newline="") as f, open(paths["quoted"], "w", newline="") as g:
        csv.writer(g, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(csv.reader(f))
    multi = [lines[0]]
    for i, line in enumerate(lines[1:]):
        if i % 10_000 == 5_000:
            fields = line.split(b",")
            fields[11] = b'"' + fields[11] + b'\nX"'  # tailnum
            line = b",".join(fields)
        multi.append(line)
    paths["multiline"] = out / "multiline.csv"
    paths["multiline"].write_bytes(b"".join(multi))
    return paths


def read_once(fn: ReadChunksFn, path: Path) -> tuple[float, int, int]:
    t0 = time.perf_counter()
    batches = exact = 0
    for out in fn.process(str(path)):
        if isinstance(out, pa.RecordBatch):
            batches += 1
        elif not hasattr(out, "tag"):
            exact += 1
    return time.perf_counter() - t0, batches, exact


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, default=Path("data/flights/flights.csv"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk-rows", type=int, default=50_000)
    args = parser.parse_args()
    table = load_schema(SCHEMA).tables["flights"]
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in variants(args.input, Path(tmp)).items():
            runs = [read_once(ReadChunksFn(table, args.chunk_rows), path)
                    for _ in range(args.repeats)]
            secs = [r[0] for r in runs]
            print(f"{name:10s} median {statistics.median(secs):.3f} s  best {min(secs):.3f} s"
                  f"  fast-path batches {runs[0][1]}, exact-path chunks {runs[0][2]}")


if __name__ == "__main__":
    main()
