"""``python -m pipelines.lineage show URI [--store S] [--downstream] [--json]``
``python -m pipelines.lineage which URI [--store S] [--json]``.

Prints what the artifact (or raw file) at URI was built from, back to the raw files, or
with ``--downstream`` everything built from it. Without ``--store`` the store is the
nearest ``lineage.sqlite`` in URI's directory or above it (a pipeline run directory
holds one). ``which`` answers "which model made this output (a scoring or monitoring
step's), trained on which data, blessed against which version"
(``pipelines.lineage.queries``). Exit status 2 when the store or the artifact cannot be found.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mlbatch import logs, storage
from pipelines.lineage import STORE_NAME, LineageError, LineageStore, lineage, render
from pipelines.lineage.queries import render_which, which_model
from pipelines.model_registry import blessing_of  # noqa: F401 - registers the registry's answer


def find_store(uri: str) -> Path:
    """The nearest ``lineage.sqlite`` at or above a local URI."""
    if storage.is_remote(uri):
        raise LineageError(f"{uri} is remote: name the lineage store with --store")
    path = Path(storage.locate(uri).uri)
    for folder in [path, *path.parents]:
        if (folder / STORE_NAME).is_file():
            return folder / STORE_NAME
    raise LineageError(f"no {STORE_NAME} in {path} or any folder above it; "
                       f"name the store with --store")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pipelines.lineage", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    show = sub.add_parser("show", help="print an artifact's lineage")
    show.add_argument("uri", help="artifact directory or raw file (local path or gs://)")
    show.add_argument("--store", help=f"the lineage store (default: nearest {STORE_NAME})")
    show.add_argument("--downstream", action="store_true",
                      help="what was built from URI (default: what URI was built from)")
    show.add_argument("--json", action="store_true", help="the tree as JSON")
    which = sub.add_parser("which", help="which model made URI, trained on which data")
    which.add_argument("uri", help="artifact directory (local path or gs://)")
    which.add_argument("--store", help=f"the lineage store (default: nearest {STORE_NAME})")
    which.add_argument("--json", action="store_true", help="the answer as JSON")
    return parser.parse_args(argv)


def run(argv: list[str] | None = None) -> str:
    """The printout (text or JSON); raises LineageError."""
    args = parse_args(argv)
    store_path = Path(args.store) if args.store else find_store(args.uri)
    if not store_path.is_file():
        raise LineageError(f"lineage store {store_path} does not exist")
    if args.command == "which":
        with LineageStore(store_path) as store:
            answer = which_model(store, args.uri)
        if args.json:
            return json.dumps(answer, indent=1, sort_keys=True) + "\n"
        return render_which(answer)
    direction = "downstream" if args.downstream else "upstream"
    with LineageStore(store_path) as store:
        tree = lineage(store, args.uri, direction)
    if args.json:
        return json.dumps(tree, indent=1, sort_keys=True) + "\n"
    return render(tree, direction)


def main(argv: list[str] | None = None) -> int:
    try:
        sys.stdout.write(run(argv))
    except LineageError as e:
        sys.stderr.write(f"error: {e}\n")
        return 2
    return 0


if __name__ == "__main__":
    logs.setup("WARNING")
    sys.exit(main())
