"""The one read-and-prepare composite: raw tables -> prepared main rows.

The feature job and serving (scoring, monitoring, late-label evaluation) read raw tables
through ``ReadAndPrepare`` alone: every table read (``reading.ReadTable``) and validated
(``reading.ValidateChunkFn``) with its dead letters, each lookup table deduplicated into
one side input (``reading.build_lookups``), then the main table's valid rows through the
caller's per-row step. That step is a DoFn whose ``process(batch, **lookups)`` joins,
derives and labels with ``beam_jobs.tabular.prepare`` (``prepare_counted`` for training,
where a row without a label is excluded; ``serving.prepare_for_serving``, where the label
is optional), so the two can differ only in what they do with a prepared row: split it
for training, or serve it. A row filter belongs in that step too: its rows are prepared
by then and its outputs (excluded rows, counts) are the caller's. Which files are read
is decided on the driver, before the pipeline (``reading.check_inputs``).
"""
from __future__ import annotations

import dataclasses

import apache_beam as beam

from beam_jobs.common import deadletter
from beam_jobs.tabular import reading
from mlbatch.schema import DatasetSchema, TableSpec

PREPARED = "prepared"  # the per-row step's main output
DEAD_LETTER = deadletter.DEAD_LETTER
FILES = reading.FILES
COUNTS = "counts"


class ReadAndPrepare(beam.PTransform):
    """Raw tables (``inputs``: each table's files, ``reading.check_inputs``) -> a dict of
    PCollections:

    * PREPARED: ``prepare_fn``'s main output, and one entry per tag in ``tags`` (its
      other outputs);
    * DEAD_LETTER: every table's read and validation dead letters and those the per-row
      step emits under DEAD_LETTER (deadletter.record dicts);
    * FILES: one record per file read (table, path, records, lines);
    * COUNTS: (name, n) pairs: "<table>_valid", "<table>_duplicate_keys_dropped" and
      those the per-row step emits under COUNTS.

    ``prepare_fn``: a DoFn of the main table's valid batches, each lookup table a keyword
    side input (one deduplicated Arrow table). ``columns``: per table, the declared
    columns its files hold; only those are read and validated and the others are null
    (serving reads label-free rows). None: every declared column (the feature job).
    """

    def __init__(self, schema: DatasetSchema, inputs: dict[str, list[str]],
                 prepare_fn: beam.DoFn, tags: tuple[str, ...] = (), *,
                 chunk_rows: int = 50_000, job: str = "features",
                 columns: dict[str, list[str]] | None = None):
        super().__init__()
        self._schema, self._inputs, self._columns = schema, inputs, columns
        self._fn, self._tags = prepare_fn, tuple(tags)
        self._chunk_rows, self._job = chunk_rows, job

    def _read_as(self, table: TableSpec) -> TableSpec:
        if self._columns is None:
            return table
        held = self._columns[table.name]
        return dataclasses.replace(table, columns=tuple(c for c in table.columns
                                                        if c.name in held))

    def _read_valid(self, pbegin, table: TableSpec):
        """(ReadTable's outputs, ValidateChunkFn's outputs, the valid batches with every
        declared column)."""
        noun, read_as = reading.camel(table.name), self._read_as(table)
        read = pbegin | f"Read{noun}" >> reading.ReadTable(
            self._inputs[table.name], read_as, self._chunk_rows, self._job)
        checked = read.chunks | f"Validate{noun}" >> beam.ParDo(
            reading.ValidateChunkFn(read_as, self._job)).with_outputs(reading.DEAD, main="valid")
        valid = checked.valid
        if len(read_as.columns) < len(table.columns):
            valid = valid | f"FillAbsent{noun}" >> beam.Map(reading.fill_absent, table)
        return read, checked, valid

    def expand(self, pbegin):
        valid, dead, files, counts = {}, [], [], []
        for name, table in self._schema.tables.items():
            read, checked, valid[name] = self._read_valid(pbegin, table)
            dead += [read[reading.DEAD], checked[reading.DEAD]]
            files.append(read[reading.FILES])
            counts.append(checked.valid | f"Count{reading.camel(name)}Valid" >> beam.Map(
                lambda b, n=name: (f"{n}_valid", b.num_rows)))
        lookups, dupes = reading.build_lookups(valid, self._schema)
        prepared = valid[self._schema.main] | "PrepareExamples" >> beam.ParDo(
            self._fn, **lookups).with_outputs(DEAD_LETTER, COUNTS, *self._tags, main=PREPARED)
        out = {PREPARED: prepared[PREPARED], **{tag: prepared[tag] for tag in self._tags}}
        out[DEAD_LETTER] = [*dead, prepared[DEAD_LETTER]] | "FlattenDeadLetters" >> beam.Flatten()
        out[FILES] = files | "FlattenFiles" >> beam.Flatten()
        out[COUNTS] = [*counts, *dupes, prepared[COUNTS]] | "FlattenCounts" >> beam.Flatten()
        return out
