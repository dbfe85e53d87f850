"""Parquet sinks shared by every Beam job: sharded datasets and single-file tables.

All file access goes through Beam's FileSystems, so local paths and gs:// work alike.
"""
from __future__ import annotations

import apache_beam as beam
import pyarrow as pa
from apache_beam.transforms.window import GlobalWindows


class RebatchTablesFn(beam.DoFn):
    """Regroups Arrow tables into tables of `rows` rows: one Parquet row group each."""

    def __init__(self, rows: int):
        self._rows = rows

    def start_bundle(self):
        self._buf, self._n = [], 0

    def process(self, table: pa.Table):
        self._buf.append(table)
        self._n += table.num_rows
        while self._n >= self._rows:
            merged = pa.concat_tables(self._buf)
            yield merged.slice(0, self._rows)
            rest = merged.slice(self._rows)
            self._buf, self._n = [rest], rest.num_rows

    def finish_bundle(self):
        if self._n:
            yield GlobalWindows.windowed_value(pa.concat_tables(self._buf))
        self._buf, self._n = [], 0


class WriteParquet(beam.PTransform):
    """Arrow tables -> sharded Parquet files `<prefix>-SSSSS-of-NNNNN.parquet`."""

    def __init__(self, prefix: str, schema: pa.Schema, *, codec: str = "snappy",
                 row_group_rows: int = 100_000, num_shards: int = 0):
        super().__init__()
        self._prefix, self._schema = prefix, schema
        self._codec, self._rows, self._shards = codec, row_group_rows, num_shards

    def expand(self, tables):
        return (tables
                | "Rebatch" >> beam.ParDo(RebatchTablesFn(self._rows))
                | "Write" >> beam.io.WriteToParquetBatched(
                    self._prefix, schema=self._schema, codec=self._codec,
                    num_shards=self._shards, file_name_suffix=".parquet"))


class WriteTables(beam.PTransform):
    """Arrow tables (dead letters, excluded rows) -> one Parquet file with a fixed
    schema. Writes a valid, empty file when there are none, so readers always find it."""

    def __init__(self, prefix: str, schema: pa.Schema, codec: str = "snappy"):
        super().__init__()
        self._prefix, self._schema, self._codec = prefix, schema, codec

    def expand(self, tables):
        schema = self._schema
        return (tables
                | "Conform" >> beam.Map(lambda t: t.select(schema.names).cast(schema))
                | "Write" >> beam.io.WriteToParquetBatched(
                    self._prefix, schema=schema, codec=self._codec, num_shards=1,
                    file_name_suffix=".parquet"))


class WriteRecords(WriteTables):
    """Dicts (one per dead letter) -> WriteTables, batched."""

    def expand(self, dicts):
        schema = self._schema
        tables = (dicts
                  | "ToTables" >> beam.BatchElements(min_batch_size=1000, max_batch_size=50_000)
                  | "AsArrow" >> beam.Map(lambda rows: pa.Table.from_pylist(rows, schema=schema)))
        return super().expand(tables)
