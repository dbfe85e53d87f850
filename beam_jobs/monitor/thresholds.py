"""Configurable thresholds: ``--threshold NAME=VALUE`` (repeatable) over the schema's
``drift_threshold`` per feature and the 0.3 default.

NAME is a raw column or a transformed feature (both stages when the name is both),
``label``, ``prediction``, ``attribution`` (every feature's attribution) or
``attribution/<feature>``. Checked on the driver before any worker starts: an unknown
name or a value that is not a number in (0, 1] is a usage error naming the flag.
"""
from __future__ import annotations

import dataclasses
import math

from beam_jobs.monitor.stats import Column
from mlbatch.errors import ThresholdError

ATTRIBUTION = "attribution"


def parse(items: list[str] | None) -> dict[str, float]:
    """["name=0.1", ...] -> {name: 0.1}; raises ThresholdError naming the item."""
    out: dict[str, float] = {}
    for item in items or []:
        name, sep, text = item.partition("=")
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not sep or not name or not (0.0 < value <= 1.0):
            raise ThresholdError(f"--threshold {item!r}: expected NAME=VALUE with VALUE a "
                                 "number in (0, 1]")
        if name in out:
            raise ThresholdError(f"--threshold {name!r} is given twice")
        out[name] = value
    return out


def _known(columns: list[Column], model_inputs: tuple[str, ...]) -> set[str]:
    names = {"label", "prediction"} | {c.name for c in columns if c.stage in ("raw", "transformed")}
    if model_inputs:
        names |= {ATTRIBUTION} | {f"{ATTRIBUTION}/{n}" for n in model_inputs}
    return names


def apply(given: dict[str, float], columns: list[Column], model_inputs: tuple[str, ...] = ()
          ) -> tuple[list[Column], dict[str, float]]:
    """(columns with the given thresholds, {attributed feature: threshold}); raises
    ThresholdError for a name that is not compared in this run."""
    unknown = sorted(set(given) - _known(columns, model_inputs))
    if unknown:
        raise ThresholdError(f"--threshold {unknown[0]!r}: no such column, feature, label, "
                             "prediction or attribution in this run (attribution needs "
                             "--model and --attributions)")
    out = []
    for c in columns:
        name = c.stage if c.stage in ("label", "prediction") else c.name
        out.append(dataclasses.replace(c, threshold=given[name]) if name in given else c)
    default = given.get(ATTRIBUTION)
    attributed = {n: given.get(f"{ATTRIBUTION}/{n}", default) for n in model_inputs}
    return out, {n: v for n, v in attributed.items() if v is not None}
