"""Reading a declared range of periods from Hive partition folders (``period=2013-10/``):
which periods a job read, and the rows of the periods it left out, counted with their
reason (never dead letters: they are valid rows outside the job's range).

    --input data/flights_months --periods 2013-01..2013-09
      data/flights_months/planes.csv                  read (not split by period)
      data/flights_months/period=2013-01/flights.csv  read
      data/flights_months/period=2013-10/flights.csv  excluded: outside --periods
"""
from __future__ import annotations

import logging

import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from beam_jobs.common import inputs
from beam_jobs.common.inputs import InputError
from beam_jobs.tabular.reading import table_pattern
from mlbatch import periods
from mlbatch.schema import TableSpec

LOGGER = logging.getLogger(__name__)


def data_rows(table: TableSpec, path: str) -> int:
    """The data lines of one file (CSV: non-blank lines after the header; JSON lines:
    non-blank lines; Parquet: its rows), read on the driver. A CSV record spanning lines
    (a quoted line break) counts once per line."""
    with FileSystems.open(path) as f:
        if table.format == "parquet":
            return pq.ParquetFile(f).metadata.num_rows
        lines = sum(1 for line in f if line.strip())
    return max(0, lines - 1) if table.format == "csv" else lines


def excluded(input_root: str, table: TableSpec, read: periods.Selection) -> dict[str, int]:
    """{period: data rows} of the table's files in period folders not in ``read``."""
    pattern = table_pattern(FileSystems.join(input_root.rstrip("/"), read.folder("*")), table)
    out: dict[str, int] = {}
    for path, _ in inputs.match_files(pattern):
        period = read.of_path(path)
        if period is not None and period not in read.periods:
            out[period] = out.get(period, 0) + data_rows(table, path)
    return dict(sorted(out.items()))


def periods_section(input_root: str, table: TableSpec, files: list[str], flag: str,
                    declared: str, selection: periods.Selection) -> dict:
    """What a job records of its periods: those it read (a period folder holding a file
    of the main table), the rows of the others and why they were left out.

    Raises InputError naming each declared period without a main-table file."""
    wanted = list(selection.periods)
    rows = {p: 0 for p in wanted}
    found: set[str] = set()
    for path in files:
        period = selection.of_path(path)
        if period in rows:
            found.add(period)
            rows[period] += data_rows(table, path)
    missing = [p for p in wanted if p not in found]
    if missing:
        raise InputError(f"{flag} {declared}: no {table.name} file for period(s) "
                         f"{', '.join(missing)} under {input_root} (looked for "
                         f"{selection.folder(missing[0])}/{table.path})")
    empty = [p for p in wanted if rows[p] == 0]
    if empty:
        raise InputError(f"{flag} {declared}: period(s) {', '.join(empty)} hold no "
                         f"{table.name} rows under {input_root}: a period with zero rows "
                         "is an error, not an empty artifact")
    left_out = excluded(input_root, table, selection)
    LOGGER.info("periods read: %s; left out: %s", ", ".join(wanted),
                ", ".join(f"{p} ({n} rows)" for p, n in left_out.items()) or "none")
    return {"read": wanted, "rows": rows, "excluded_rows": left_out,
            "excluded_reason": f"outside {flag} {declared}"}
