"""The feature job's raw-table reading: re-exported from beam_jobs.common.reading, which
every Beam job that reads raw tables shares (the one input check is
beam_jobs.common.inputs; JSON is written by mlbatch.artifacts.write_json)."""
from __future__ import annotations

from beam_jobs.common.inputs import InputError, names_files
from beam_jobs.common.reading import (DEAD, FILES, ReadChunksFn, ReadTable, check_header,
                                      check_inputs, table_pattern)

__all__ = ["DEAD", "FILES", "InputError", "ReadChunksFn", "ReadTable", "check_header",
           "check_inputs", "names_files", "table_pattern"]
