"""Periods: the calendar partitions raw data arrives in, as Hive partition folders name
them (``period=2013-10/``). A period is a month (``2013-10``) or a day (``2013-10-05``);
a range ``FIRST..LAST`` is inclusive and of one granularity.

The pipeline file's ``periods`` field (pipelines.spec) and the jobs' ``--periods`` /
``--period`` flags read periods through this module.
"""
from __future__ import annotations

import dataclasses
import datetime
import re
from typing import Any

from mlbatch.errors import UsageError

MONTH = re.compile(r"^(\d{4})-(\d{2})$")
DAY = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
RANGE_SEP = ".."
MAX_INSTANCES = 1000  # a typo like 2013-01..2103-01 should not make 1,000 steps


FOLDER_KEY = "period"  # Hive partition folders: period=2013-10/


class PeriodError(ValueError, UsageError):
    """A period or a range of periods is malformed; the message says which and why."""


def granularity(period: str) -> str:
    """``month`` or ``day``; raises PeriodError for anything else (or a non-date)."""
    if MONTH.match(period):
        _month(period)
        return "month"
    if DAY.match(period):
        _day(period)
        return "day"
    raise PeriodError(f"period {period!r} is neither a month (YYYY-MM) nor a day (YYYY-MM-DD)")


def _month(period: str) -> tuple[int, int]:
    year, month = (int(x) for x in MONTH.match(period).groups())
    if not 1 <= month <= 12:
        raise PeriodError(f"period {period!r}: month {month} is not 1..12")
    return year, month


def _day(period: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(period)
    except ValueError as e:
        raise PeriodError(f"period {period!r}: {e}") from None


def previous(period: str) -> str:
    """The calendar period before ``period``, of the same granularity."""
    if granularity(period) == "month":
        year, month = _month(period)
        return f"{year - 1}-12" if month == 1 else f"{year}-{month - 1:02d}"
    return (_day(period) - datetime.timedelta(days=1)).isoformat()


def _following(period: str) -> str:
    if granularity(period) == "month":
        year, month = _month(period)
        return f"{year + 1}-01" if month == 12 else f"{year}-{month + 1:02d}"
    return (_day(period) + datetime.timedelta(days=1)).isoformat()


def expand(value: Any) -> list[str]:
    """The periods a ``periods`` field declares, in order: a list of periods (one
    granularity, no repeats) or ``"FIRST..LAST"`` (inclusive)."""
    if isinstance(value, str) and RANGE_SEP in value:
        first, _, last = (part.strip() for part in value.partition(RANGE_SEP))
        if granularity(first) != granularity(last):
            raise PeriodError(f"range {value!r}: {first} and {last} are not of one granularity")
        if last < first:
            raise PeriodError(f"range {value!r}: {last} comes before {first}")
        out = [first]
        while out[-1] != last:
            if len(out) >= MAX_INSTANCES:
                raise PeriodError(f"range {value!r} holds more than {MAX_INSTANCES} periods")
            out.append(_following(out[-1]))
        return out
    items = value if isinstance(value, list) else [value]
    out = [_text(item) for item in items]
    if not out:
        raise PeriodError("the list of periods is empty")
    kinds = {granularity(p) for p in out}
    if len(kinds) > 1:
        raise PeriodError(f"periods {out} mix months and days")
    repeated = sorted({p for p in out if out.count(p) > 1})
    if repeated:
        raise PeriodError(f"period {repeated[0]} is listed twice")
    return out


def _text(item: Any) -> str:
    """A period as written; YAML reads an unquoted 2013-10-05 as a date."""
    if isinstance(item, datetime.date):
        return item.isoformat()
    if not isinstance(item, str):
        raise PeriodError(f"period {item!r} is not a string like 2013-10 (quote it)")
    return item.strip()


def folder(period: str, key: str = FOLDER_KEY) -> str:
    """The Hive partition folder of a period: ``period=2013-10``."""
    return f"{key}={period}"


def of_path(path: str, key: str = FOLDER_KEY) -> str | None:
    """The period of a file inside a ``KEY=P/`` folder (the innermost one), else None."""
    parts = path.replace("\\", "/").split("/")
    found = [p.split("=", 1)[1] for p in parts[:-1] if p.startswith(key + "=")]
    return found[-1] if found else None


@dataclasses.dataclass(frozen=True)
class Selection:
    """The periods a job reads and the Hive folder key they sit under."""
    periods: tuple[str, ...]
    key: str = FOLDER_KEY

    def folder(self, period: str) -> str:
        return folder(period, self.key)

    def of_path(self, path: str) -> str | None:
        return of_path(path, self.key)


def select(declared: str, key: str = FOLDER_KEY, declared_granularity: str | None = None
           ) -> Selection:
    """The Selection of a ``--periods`` value; with the schema's declared granularity
    (``partitions.granularity``), periods of another granularity are refused."""
    found = expand(declared)
    if declared_granularity and granularity(found[0]) != declared_granularity:
        raise PeriodError(f"--periods {declared}: {granularity(found[0])} periods, but the "
                          f"schema's partitions.granularity is {declared_granularity}")
    return Selection(tuple(found), key)
