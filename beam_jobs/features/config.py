"""The feature job's flags as one frozen config (``__main__.parse_args`` builds it)."""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    """Field order is the parser's flag order (the order recorded in artifact.json)."""
    schema: str
    input: str
    output: str
    periods: str | None = None  # FIRST..LAST of --input's period=P/ folders (None: all)
    chunk_rows: int = 50_000
    compression: str = "snappy"
    row_group_rows: int = 100_000
    num_shards: int = 0
    analyzers: str = "fused"
    passes: str = "auto"  # "auto" | "1" | "2"
    overwrite: bool = False
    max_dead_letter_share: float | None = None  # None: the schema's limit
    verbose: bool = False
    log_level: str = "INFO"
    job_flags: tuple[str, ...] = ()  # every option string of the parser
