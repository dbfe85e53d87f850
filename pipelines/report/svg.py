"""Small inline SVG line charts over periods (no raster, no script, no font from outside).

A chart is a value per period for one or more series, each a line with dots, plus
optional dashed reference lines (thresholds, the eval-split figure); periods are evenly
spaced category ticks in the order given.
"""
from __future__ import annotations

import dataclasses
import html
import math

WIDTH, HEIGHT = 292, 176
LEFT, RIGHT, TOP, BOTTOM = 44, 10, 22, 40
COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#8172b3", "#937860")
ALERT = "#c0392b"
MAX_TICK_CHARS = 10


@dataclasses.dataclass(frozen=True)
class Series:
    label: str
    values: tuple[float | None, ...]  # one per period; None: no value for that period
    dashed: bool = False  # a reference line (threshold), drawn grey and dashed
    breach: tuple[bool, ...] = ()  # per period: drawn as a red dot


def _ticks(lo: float, hi: float) -> list[float]:
    """About four round ticks covering [lo, hi]."""
    span = hi - lo or abs(hi) or 1.0
    step = 10 ** math.floor(math.log10(span / 4))
    for m in (1, 2, 5, 10):
        if span / (step * m) <= 5:
            step *= m
            break
    start = math.floor(lo / step) * step
    return [start + i * step for i in range(int(math.ceil((hi - start) / step)) + 1)]


def _num(v: float) -> str:
    return f"{v:.3g}"


def _text(x: float, y: float, s: str, anchor: str = "middle", size: int = 10,
          colour: str = "#333", extra: str = "", tip: str = "") -> str:
    title = f"<title>{html.escape(tip)}</title>" if tip else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" '
            f'fill="{colour}"{extra}>{title}{html.escape(s)}</text>')


def _axes(periods: list[str], ticks: list[float], xs, ys) -> list[str]:
    out = [f'<line x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH - RIGHT}" '
           f'y2="{HEIGHT - BOTTOM}" stroke="#999"/>']
    for t in ticks:
        out.append(f'<line x1="{LEFT}" y1="{ys(t):.1f}" x2="{WIDTH - RIGHT}" y2="{ys(t):.1f}" '
                   'stroke="#eee"/>')
        out.append(_text(LEFT - 4, ys(t) + 3, _num(t), "end", 9, "#555"))
    for i, p in enumerate(periods):
        label = p if len(p) <= MAX_TICK_CHARS else p[:MAX_TICK_CHARS - 1] + "…"
        out.append(_text(xs(i), HEIGHT - BOTTOM + 12, label, size=9, colour="#555",
                         extra=' class="tick"', tip=p if label != p else ""))
    return out


def _finite(v: float | None) -> bool:
    return v is not None and math.isfinite(v)


def _series(s: Series, colour: str, xs, ys) -> list[str]:
    pts = [(xs(i), ys(v)) for i, v in enumerate(s.values) if _finite(v)]
    style = 'stroke="#888" stroke-dasharray="4 3"' if s.dashed else f'stroke="{colour}"'
    out = []
    if len(pts) > 1:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
        out.append(f'<polyline fill="none" stroke-width="1.6" {style} points="{path}"/>')
    if not s.dashed:
        for i, v in enumerate(s.values):
            if not _finite(v):
                continue
            red = i < len(s.breach) and s.breach[i]
            out.append(f'<circle cx="{xs(i):.1f}" cy="{ys(v):.1f}" r="{3.2 if red else 2.4}" '
                       f'fill="{ALERT if red else colour}" class="{"breach" if red else "point"}">'
                       f"<title>{html.escape(s.label)}: {_num(v)}</title></circle>")
    elif len(pts) == 1:
        x, y = pts[0]
        out.append(f'<line x1="{x - 12:.1f}" y1="{y:.1f}" x2="{x + 12:.1f}" y2="{y:.1f}" {style}/>')
    return out


def _colours(series: list[Series]) -> list[str]:
    """The colour of each series: grey for reference lines, the palette for the rest."""
    palette = iter(COLOURS * (len(series) // len(COLOURS) + 1))
    return ["#888" if s.dashed else next(palette) for s in series]


def _legend(series: list[Series]) -> list[str]:
    out, x = [], LEFT - 30
    for s, colour in zip(series, _colours(series)):
        out.append(f'<line x1="{x}" y1="{HEIGHT - 10}" x2="{x + 12}" y2="{HEIGHT - 10}" '
                   f'stroke="{colour}" stroke-width="2"'
                   + (' stroke-dasharray="4 3"/>' if s.dashed else "/>"))
        out.append(_text(x + 15, HEIGHT - 7, s.label, "start", 8, "#444"))
        x += 20 + 4.4 * len(s.label)
    return out


def standalone(markup: str) -> str:
    """An inline ``<svg>`` as a file of its own (the namespace a file needs; inline HTML
    needs none, and the page names no URL)."""
    return markup.replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1)


def line_chart(title: str, periods: list[str], series: list[Series], *,
               alert: bool = False) -> str:
    """One chart as an ``<svg>`` element: ``series`` over ``periods``, titled ``title``
    (red when ``alert``)."""
    values = [v for s in series for v in s.values if _finite(v)]
    lo, hi = (min(0.0, *values), max(values)) if values else (0.0, 1.0)
    ticks = _ticks(lo, hi if hi > lo else lo + 1.0)
    y0, y1 = ticks[0], ticks[-1]
    n = max(len(periods), 1)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def xs(i: int) -> float:
        return LEFT + plot_w * ((i + 0.5) / n)

    def ys(v: float) -> float:
        return TOP + plot_h * (1 - (v - y0) / ((y1 - y0) or 1.0))
    body = [_text(WIDTH / 2, 14, title, size=11, colour=ALERT if alert else "#222",
                  extra=' font-weight="600" class="title"')]
    body += _axes(periods, ticks, xs, ys)
    for s, colour in zip(series, _colours(series)):
        body += _series(s, colour, xs, ys)
    body += _legend(series)
    return (f'<svg width="{WIDTH}" height="{HEIGHT}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif">' + "".join(body)
            + "</svg>")
