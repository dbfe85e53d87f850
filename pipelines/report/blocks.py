"""What a report is made of: sections of text, tables and figures.

Sections are built once (``sections``) and rendered twice, to HTML (``html``) and to
Markdown (``markdown``): every number appears in both as the same formatted string.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any


@dataclasses.dataclass(frozen=True)
class Text:
    text: str
    kind: str = "p"  # "p" | "note" | "alert" | "ok" | "code"


@dataclasses.dataclass(frozen=True)
class Table:
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str = ""
    numeric: tuple[bool, ...] = ()  # per column: right-aligned
    shade: tuple[tuple[float | None, ...], ...] = ()  # per cell 0..1: background (HTML only)


@dataclasses.dataclass(frozen=True)
class Figure:
    name: str  # file stem, unique in the report: "data-counts"
    png: bytes
    alt: str
    caption: str = ""


@dataclasses.dataclass(frozen=True)
class Svg:
    """A figure drawn as inline SVG markup (no raster, no script); Markdown links the
    same markup written as ``figures/<name>.svg``."""
    name: str
    svg: str
    alt: str
    caption: str = ""


Block = Text | Table | Figure | Svg


@dataclasses.dataclass(frozen=True)
class Section:
    id: str  # HTML anchor: "data", "models", ...
    title: str
    blocks: tuple[Block, ...]
    present: bool = True  # False: its artifacts are not in this run
    shown: tuple[str, ...] = ()  # step names whose artifacts it shows


def absent(id: str, title: str, what: str) -> Section:
    """A section whose artifact is not in this run."""
    return Section(id, title, (Text(f"Not in this run: {what}.", "note"),), present=False)


class Digest(str):
    """A short cell with its whole text on hover (``full``; the HTML's ``title``): a
    digest, or a long list such as a blessing's every check."""
    full: str = ""


def fmt(value: Any) -> str:
    """The one value formatter of the report (HTML and Markdown alike): numbers with
    thousands separators, mappings as ``key value`` pairs, sequences comma-separated,
    never a Python repr."""
    if value is None:
        return "–"
    if isinstance(value, str):
        return value  # a Digest keeps its full digest
    if isinstance(value, dict):
        return ", ".join(f"{k} {fmt(v)}" for k, v in value.items()) or "–"
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(v) for v in value) or "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if value != 0 and (abs(value) >= 1e15 or abs(value) < 1e-3):
            return f"{value:.3g}"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.4g}"
    return str(value)


def table(columns: list[str], rows: list[list[Any]], caption: str = "") -> Table:
    """A table of formatted cells; columns whose values are all numbers align right."""
    def is_number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    numeric = tuple(any(is_number(r[i]) for r in rows)
                    and all(is_number(r[i]) or r[i] is None for r in rows)
                    for i in range(len(columns)))
    return Table(tuple(columns), tuple(tuple(fmt(v) for v in r) for r in rows), caption,
                 numeric)


def short_digest(digest: str | None, n: int = 12) -> str:
    """The first ``n`` hex digits of a digest ("sha256:..." or bare); the full one rides
    along as ``Digest.full`` (a hover title in HTML)."""
    if not digest:
        return "–"
    short = Digest(digest.split(":", 1)[-1][:n])
    short.full = digest
    return short
