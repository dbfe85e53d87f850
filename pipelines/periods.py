"""Periods of a pipeline file: a step's ``periods`` field (a list of periods or an
inclusive range ``FIRST..LAST``, calendar in ``mlbatch.periods``) makes the step stand for
one instance per period, named ``step[PERIOD]``, whose output is ``RUN/step@PERIOD`` (no
brackets in a path: they are glob characters to Beam and gsutil).
"""
from __future__ import annotations

from mlbatch.periods import PeriodError, expand, granularity, previous

__all__ = ["PeriodError", "expand", "granularity", "instance_name", "output_dir", "previous"]


def instance_name(step: str, period: str) -> str:
    """``score[2013-10]``: the name of a step's instance in run.json, --only and lineage."""
    return f"{step}[{period}]"


def output_dir(name: str) -> str:
    """The folder of a step or instance under the run directory: ``score[2013-10]`` ->
    ``score@2013-10``."""
    if name.endswith("]") and "[" in name:
        step, _, period = name[:-1].partition("[")
        return f"{step}@{period}"
    return name
