"""Reading back the Parquet parts a Beam job wrote into its output (after the pipeline,
on the driver), local or gs://: what scoring and the late-label evaluation reconcile."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from mlbatch import storage


def parquet_parts(root: str, sub: str) -> list[str]:
    """The ``*.parquet`` files directly under ``root/sub``."""
    d = storage.join(root, sub)
    return [storage.join(d, f.relpath) for f in storage.list_files(d)
            if f.relpath.endswith(".parquet") and "/" not in f.relpath]


def read_parts(uris: list[str], columns: list[str] | None) -> pa.Table | None:
    """The files' rows as one table (only ``columns``; all when None); None for no file."""
    tables = []
    for uri in uris:
        loc = storage.locate(uri)
        tables.append(pq.read_table(loc.path, columns=columns, filesystem=loc.fs))
    return pa.concat_tables(tables) if tables else None
