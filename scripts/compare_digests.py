"""Runs the feature job on one input at several code versions and compares the outputs.

Each version is a git commit (exported with ``git archive`` into a temporary directory,
the repository's own metadata untouched) or a working tree (a path). The job runs as a
user runs it, ``python -m beam_jobs.features``, with that version first on PYTHONPATH,
this interpreter (its installed packages) and, for a relative ``--schema``, that
version's own copy of the schema file. Compared per part of the artifact:

* ``train``, ``eval``, ``excluded``, ``dead_letter``: the files' SHA-256 (the manifest's)
  and the rows' content (every file of the part read, sorted by its first column,
  schema metadata dropped), so that a re-sharding alone shows as "rows same";
* ``transform_fn``, ``transformed_metadata``: the files' SHA-256. ``saved_model.pb``
  holds the tf.Transform temporary directory's path (with a random id) as the shared
  name of each vocabulary's table, and the order of its graph's nodes varies from one
  run of the same code to the next, so it never matches (nor ``fingerprint.pb``, its
  hash): ``transform_fn`` is also compared as "data" (its files but those two: the
  vocabularies and variables) and "graph" (the SavedModel as text with that path
  replaced, its lines sorted);
* ``summary.json``: the document without its file paths; a difference is listed by key.

python -m scripts.compare_digests --schema schemas/flights.yaml --input data/flights \\
    --version before=1e7344a --version after=. [--work /tmp/digests] [--flag=--passes=1]
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROWS_PARTS = ("train", "eval", "excluded", "dead_letter")
FILE_PARTS = ("transform_fn", "transformed_metadata")
REPO = Path(__file__).resolve().parent.parent


def export_commit(commit: str, into: Path) -> Path:
    """The tree of ``commit`` written under ``into`` (git archive: no worktree added)."""
    into.mkdir(parents=True, exist_ok=True)
    data = subprocess.run(["git", "-C", str(REPO), "archive", commit], check=True,
                          capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into


def run_job(tree: Path, schema: Path, input_dir: Path, output: Path, flags: list[str]) -> None:
    """The feature job of ``tree`` on ``input_dir``; raises with its stderr on failure."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, "-m", "beam_jobs.features", "--schema", str(schema),
           "--input", str(input_dir), "--output", str(output), "--overwrite", *flags]
    proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"feature job of {tree} failed ({proc.returncode}):\n"
                           f"{proc.stderr[-3000:]}")


GRAPH_FILES = ("transform_fn/saved_model.pb", "transform_fn/fingerprint.pb")
TFT_TEMP = re.compile(r"[^'\"\s]*/tftransform_tmp/[0-9a-f]{32}")


def file_digests(root: Path, part: str, skip: tuple[str, ...] = ()) -> str:
    """SHA-256 over the manifest's (path, sha256) of the part's files."""
    doc = json.loads((root / "artifact.json").read_text())
    files = sorted((f["path"], f["sha256"]) for f in doc["outputs"]["files"]
                   if f["path"].startswith(part + "/") and f["path"] not in skip)
    return hashlib.sha256(json.dumps(files).encode()).hexdigest()[:12] if files else "-"


def data_digests(root: Path, part: str) -> str:
    return file_digests(root, part, skip=GRAPH_FILES)


def graph_digest(root: Path, part: str) -> str:
    """SHA-256 of the SavedModel's text form, temporary path replaced, lines sorted."""
    from google.protobuf import text_format
    from tensorflow.core.protobuf import saved_model_pb2

    model = saved_model_pb2.SavedModel()
    model.ParseFromString((root / part / "saved_model.pb").read_bytes())
    text = TFT_TEMP.sub("<tft_temp>", text_format.MessageToString(model))
    return hashlib.sha256("\n".join(sorted(text.splitlines())).encode()).hexdigest()[:12]


def rows_digest(root: Path, part: str) -> str:
    """SHA-256 of the part's rows, whatever its files and their order ("-": none)."""
    paths = sorted((root / part).glob("*.parquet")) if (root / part).is_dir() else []
    if not paths:
        return "-"
    table = pa.concat_tables([pq.read_table(p) for p in paths]).replace_schema_metadata(None)
    if table.num_rows:
        table = table.sort_by([(table.column_names[0], "ascending")])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return f"{hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()[:12]} ({table.num_rows})"


def _no_paths(doc):
    """summary.json without the file paths (each table's "files": path, records)."""
    if isinstance(doc, dict):
        return {k: ([r for _, r in v] if k == "files" else _no_paths(v)) for k, v in doc.items()}
    return [_no_paths(v) for v in doc] if isinstance(doc, list) else doc


def summary_of(root: Path) -> dict:
    return _no_paths(json.loads((root / "summary.json").read_text()))


def json_differences(a, b, path: str = "") -> list[str]:
    """Keys added (+), removed (-) or changed (~) from ``a`` to ``b``, as /paths."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            sub = f"{path}/{k}"
            out += [f"+{sub}"] if k not in a else [f"-{sub}"] if k not in b else \
                json_differences(a[k], b[k], sub)
        return out
    return [] if a == b else [f"~{path}"]


def compare(outputs: dict[str, Path]) -> tuple[list[list[str]], list[str]]:
    """(table rows: part, measure, one digest per version, same?; the summary's
    differences between each version and the first)."""
    rows = []
    for part in ROWS_PARTS + FILE_PARTS:
        measures = [("files", file_digests)] + (
            [("rows", rows_digest)] if part in ROWS_PARTS else
            [("data", data_digests), ("graph", graph_digest)] if part == "transform_fn" else [])
        for measure, fn in measures:
            values = [fn(root, part) for root in outputs.values()]
            rows.append([part, measure, *values, "same" if len(set(values)) == 1 else "DIFFERS"])
    summaries = {name: summary_of(root) for name, root in outputs.items()}
    first, *rest = summaries
    notes = [f"summary.json {first} -> {name}: {d}" for name in rest
             for d in json_differences(summaries[first], summaries[name])]
    rows.append(["summary.json", "content", *(hashlib.sha256(json.dumps(
        s, sort_keys=True).encode()).hexdigest()[:12] for s in summaries.values()),
        "same" if not notes else "DIFFERS"])
    return rows, notes


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, ["-" * w for w in widths], *rows]:
        sys.stdout.write("| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--schema", required=True, type=Path,
                        help="a relative path is each version's own copy of the file")
    parser.add_argument("--input", required=True, type=Path)
    parser.add_argument("--version", action="append", required=True,
                        help="NAME=COMMIT or NAME=PATH (a working tree); two or more")
    parser.add_argument("--work", type=Path, default=None, help="where trees and outputs go")
    parser.add_argument("--flag", action="append", default=[], help="a feature-job flag")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="digests-"))
    outputs = {}
    for spec in args.version:
        name, _, ref = spec.partition("=")
        tree = Path(ref).resolve() if Path(ref).is_dir() else export_commit(ref, work / name)
        outputs[name] = work / f"out-{name}"
        schema = args.schema if args.schema.is_absolute() else tree / args.schema
        run_job(tree, schema, args.input.resolve(), outputs[name], args.flag)
    rows, notes = compare(outputs)
    print_table(["part", "measure", *outputs, "result"], rows)
    for n in notes:
        sys.stdout.write(n + "\n")
    return 0 if all(r[-1] == "same" for r in rows if r[:2] != ["transform_fn", "files"]) else 1


if __name__ == "__main__":
    sys.exit(main())
