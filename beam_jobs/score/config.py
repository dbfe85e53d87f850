"""The scoring job's flags as one frozen config (``__main__.parse_args`` builds it)."""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class ScoreConfig:
    """Field order is the parser's flag order (the order recorded in artifact.json)."""
    features: str
    model: str  # a model directory, or registry:NAME[@VERSION] (resolved in run)
    registry: str | None  # the registry store for a registry: --model (None: default)
    input: str
    output: str
    period: str | None = None  # the period --input holds (recorded; docs/periods.md)
    schema: str | None = None  # a readable copy of the features' schema file
    chunk_rows: int = 50_000
    compression: str = "snappy"
    row_group_rows: int = 100_000
    num_shards: int = 0
    overwrite: bool = False
    verbose: bool = False
    log_level: str = "INFO"
    job_flags: tuple[str, ...] = ()  # every option string of the parser
