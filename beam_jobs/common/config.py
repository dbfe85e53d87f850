"""A Beam job's flags as one frozen config (the Ray jobs' and co-occurrence's pattern):
built once on the driver from ``options.parse_job_args``' result, never mutated after."""
from __future__ import annotations

import argparse
import dataclasses
from typing import Any, TypeVar

T = TypeVar("T")
# Flags that steer the run, not its result: not recorded in artifact.json's config.
UNRECORDED = ("overwrite", "log_level", "verbose", "job_flags")


def frozen(cls: type[T], known: argparse.Namespace) -> T:
    """``known`` as the frozen dataclass ``cls``; a flag without a field, or a field
    without a flag, is the job's own mistake and named here."""
    names = [f.name for f in dataclasses.fields(cls)]
    given = vars(known)
    if set(given) != set(names):
        raise TypeError(f"{cls.__name__}: flags without a field: "
                        f"{sorted(set(given) - set(names))}, fields without a flag: "
                        f"{sorted(set(names) - set(given))}")
    return cls(**{n: tuple(v) if isinstance(v, list) else v for n, v in given.items()})


def recorded(config: Any) -> dict[str, Any]:
    """The config recorded in the output's artifact.json: every field in declaration
    order (the flags' order), less ``UNRECORDED``."""
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
            if f.name not in UNRECORDED}
