"""Read*/Write* composites of the feature job: raw files in, Parquet and JSON out.

Reading raw tables is shared with the other Beam jobs: beam_jobs.common.reading (the
names below are re-exported from there). All file access goes through Beam's
FileSystems, so local paths and gs:// work alike.
"""
from __future__ import annotations

import json

from apache_beam.io.filesystems import FileSystems

from beam_jobs.common.reading import (DEAD, FILES, InputError, ReadChunksFn, ReadTable,
                                      check_header, check_inputs, names_files,
                                      table_pattern)

__all__ = ["DEAD", "FILES", "InputError", "ReadChunksFn", "ReadTable", "check_header",
           "check_inputs", "names_files", "table_pattern", "write_json", "read_json"]


def write_json(path: str, doc: dict) -> None:
    with FileSystems.create(path) as f:
        f.write(json.dumps(doc, indent=2, sort_keys=True, default=str).encode("utf-8"))


def read_json(path: str) -> dict:
    with FileSystems.open(path) as f:
        return json.loads(f.read().decode("utf-8"))
