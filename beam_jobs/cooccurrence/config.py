"""The job's own flags, as one frozen config validated on the driver before anything runs."""
from __future__ import annotations

import argparse
import dataclasses

from beam_jobs.cooccurrence.counting import (DEFAULT_TOKEN_PATTERN, DIRECTIONS, WEIGHTINGS,
                                             Tokenizer)
from mlbatch.config import ConfigError  # a job flag is invalid; the message names the flag

JOB = "beam_jobs.cooccurrence"  # producer name in artifact.json and dead-letter records
MIB = 1 << 20
__all__ = ["JOB", "ConfigError", "CooccurrenceConfig", "add_arguments", "from_args"]


@dataclasses.dataclass(frozen=True)
class CooccurrenceConfig:
    input: str
    output: str
    window: int = 10
    min_count: int = 5
    weighting: str = "harmonic"
    direction: str = "symmetric"
    token_pattern: str = DEFAULT_TOKEN_PATTERN
    lowercase: bool = True
    ppmi: bool = False
    ppmi_alpha: float = 0.75
    ppmi_shift: float = 1.0
    svd_dim: int = 0
    svd_power: float = 0.5
    seed: int = 0
    rows_per_shard: int = 4096
    shard_nnz: int = 16_000_000
    batch_bytes: int = 4 * MIB
    split_bytes: int = 64 * MIB
    max_line_bytes: int = MIB
    processes: int = 1
    overwrite: bool = False

    def __post_init__(self) -> None:
        problems = []
        for name in ("window", "min_count", "rows_per_shard", "shard_nnz", "batch_bytes",
                     "split_bytes", "max_line_bytes", "processes"):
            if getattr(self, name) < 1:
                problems.append(f"--{_flag(name)} must be >= 1, got {getattr(self, name)}")
        if self.weighting not in WEIGHTINGS:
            problems.append(f"--weighting must be one of {', '.join(WEIGHTINGS)}, "
                            f"got {self.weighting!r}")
        if self.direction not in DIRECTIONS:
            problems.append(f"--direction must be one of {', '.join(DIRECTIONS)}, "
                            f"got {self.direction!r}")
        if not 0 < self.ppmi_alpha <= 1:
            problems.append(f"--ppmi-alpha must be in (0, 1], got {self.ppmi_alpha}")
        if self.ppmi_shift < 1:
            problems.append(f"--ppmi-shift (k, subtracting log k) must be >= 1, "
                            f"got {self.ppmi_shift}")
        if self.svd_dim < 0:
            problems.append(f"--svd-dim must be >= 0 (0: no SVD), got {self.svd_dim}")
        if not 0 <= self.svd_power <= 1:
            problems.append(f"--svd-power must be in [0, 1] (usually 0, 0.5 or 1), "
                            f"got {self.svd_power}")
        if not self.input:
            problems.append("--input must name a file or glob")
        if not self.output:
            problems.append("--output must name a directory")
        try:
            Tokenizer(self.token_pattern, self.lowercase)
        except ValueError as err:
            problems.append(str(err))
        if problems:
            raise ConfigError("invalid co-occurrence job flags:\n  " + "\n  ".join(problems))

    @property
    def tokenizer(self) -> Tokenizer:
        return Tokenizer(self.token_pattern, self.lowercase)

    @property
    def compute_ppmi(self) -> bool:
        return self.ppmi or self.svd_dim > 0


def _flag(name: str) -> str:
    return name.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declares the job's flags (runner flags are left to Beam)."""
    add = parser.add_argument
    add("--input", required=True, help="Text files: a path or glob, local or gs://")
    add("--output", required=True, help="Output directory, local or gs://")
    add("--window", type=int, default=10, help="Context window in kept tokens (default 10)")
    add("--min-count", type=int, default=5,
        help="Drop tokens seen fewer times before windowing (default 5)")
    add("--weighting", choices=WEIGHTINGS, default="harmonic",
        help="harmonic: a pair at distance d adds 1/d (default); uniform: adds 1")
    add("--direction", choices=DIRECTIONS, default="symmetric",
        help="symmetric: both contexts (default); left: left context only, GloVe layout")
    add("--token-pattern", default=DEFAULT_TOKEN_PATTERN,
        help=f"Regex whose matches are tokens (default {DEFAULT_TOKEN_PATTERN!r})")
    add("--no-lowercase", dest="lowercase", action="store_false",
        help="Match the token pattern on the original case")
    add("--ppmi", action="store_true", help="Also write the PPMI matrix")
    add("--ppmi-alpha", type=float, default=0.75,
        help="Context-distribution smoothing exponent (default 0.75)")
    add("--ppmi-shift", type=float, default=1.0,
        help="Shift k: PPMI = max(PMI - log k, 0) (default 1, no shift)")
    add("--svd-dim", type=int, default=0,
        help="Truncated SVD of the PPMI matrix with this many dimensions (implies --ppmi)")
    add("--svd-power", type=float, default=0.5,
        help="Eigenvalue weighting p: vectors are U * S**p (default 0.5)")
    add("--seed", type=int, default=0, help="Seed of the SVD start vector")
    add("--rows-per-shard", type=int, default=4096,
        help="Matrix rows per output Parquet shard (default 4096)")
    add("--shard-nnz", type=int, default=16_000_000,
        help="A worker flushes its partial matrix when it holds this many entries "
             "(bounds worker memory; default 16M)")
    add("--batch-bytes", type=int, default=4 * MIB,
        help="Text read and counted per vectorized batch (default 4 MiB)")
    add("--split-bytes", type=int, default=64 * MIB,
        help="Byte range of a file read by one worker task (default 64 MiB)")
    add("--max-line-bytes", type=int, default=MIB,
        help="Longer lines are skipped and reported (default 1 MiB)")
    add("--processes", type=int, default=1,
        help="Local processes per tokenizing and counting step (forked; default 1: "
             "none). Each process tokenizes into, and counts, its own spill file")
    add("--overwrite", action="store_true",
        help="Replace the outputs of an earlier run in --output")


def from_args(args: argparse.Namespace) -> CooccurrenceConfig:
    names = {f.name for f in dataclasses.fields(CooccurrenceConfig)}
    return CooccurrenceConfig(**{k: v for k, v in vars(args).items() if k in names})
