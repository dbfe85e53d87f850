"""matplotlib figures of the report, as PNG bytes (embedded as data: URIs by ``html``).

Figures are at most 12.5 inches wide at 100 dpi, so they fit a 1280 px page unscaled.
"""
from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence

import numpy as np

DPI = 100
MAX_WIDTH_IN = 12.5
REFERENCE, CURRENT = "#4c72b0", "#dd8452"


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def to_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    _plt().close(fig)
    return buf.getvalue()


def figure(width_in: float, height_in: float):
    return _plt().figure(figsize=(min(width_in, MAX_WIDTH_IN), height_in))


def grid(n: int, cols: int, cell_h: float = 2.2) -> tuple[object, list]:
    """A figure of n small panels, ``cols`` per row (extra panels hidden)."""
    rows = max(1, math.ceil(n / cols))
    fig, axes = _plt().subplots(rows, cols, figsize=(MAX_WIDTH_IN, cell_h * rows),
                                squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def stacked_bars(rows: Sequence[str], parts: dict[str, Sequence[float]], title: str,
                 colors: Sequence[str] | None = None) -> bytes:
    """One horizontal bar per row, split into ``parts`` (name -> value per row)."""
    fig = figure(MAX_WIDTH_IN, 0.6 + 0.5 * len(rows))
    ax = fig.add_subplot()
    left = np.zeros(len(rows))
    for i, (name, values) in enumerate(parts.items()):
        values = np.asarray(values, float)
        ax.barh(list(rows), values, left=left, label=name,
                color=colors[i] if colors else None)
        left += values
    ax.invert_yaxis()
    ax.set_xlabel("records")
    ax.xaxis.set_major_formatter(thousands())
    ax.set_title(title, pad=24)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), fontsize="small",
              ncols=len(parts), frameon=False)
    fig.tight_layout()
    return to_png(fig)


def thousands():
    """A tick formatter with thousands separators (12,000, not 12000)."""
    from matplotlib.ticker import FuncFormatter
    return FuncFormatter(lambda v, _: f"{v:,.0f}" if abs(v) >= 1000 or v == int(v)
                         else f"{v:g}")


def compare_hist(ax, edges: Sequence[float] | None, reference: Sequence[float],
                 current: Sequence[float], labels: tuple[str, str], title: str,
                 categories: Sequence[str] | None = None, color: str = "black") -> None:
    """Reference vs current counts as shares, as two step outlines over bins (``edges``)
    or over category positions 0..k-1 labelled ``categories`` (few artists: cheap to draw
    for many panels). ``color``: the title's (breaches in red)."""
    ref = np.asarray(reference, float)
    cur = np.asarray(current, float)
    ref_s = ref / ref.sum() if ref.sum() else ref
    cur_s = cur / cur.sum() if cur.sum() else cur
    edges = (np.asarray(edges, float) if edges is not None
             else np.arange(len(ref_s) + 1, dtype=float) - 0.5)
    ax.stairs(ref_s, edges, label=labels[0], color=REFERENCE, fill=True, alpha=0.45)
    ax.stairs(cur_s, edges, label=labels[1], color=CURRENT, linewidth=1.5)
    ax.set_title(title, fontsize="small", color=color)
    ax.locator_params(axis="y", nbins=4)
    if categories is not None:
        ax.set_xticks(range(len(categories)), list(categories), rotation=60, ha="right",
                      rotation_mode="anchor")
    else:
        ax.locator_params(axis="x", nbins=4)
        ax.xaxis.set_major_formatter(thousands())
    ax.tick_params(labelsize="x-small")


def fit_title(title: str, cols: int) -> str:
    """A panel title short enough for its column (~100 px per 16 characters at 'small')."""
    room = int(MAX_WIDTH_IN * DPI / cols / 7.5)
    return title if len(title) <= room else title[:room - 1] + "…"


def hist_grid(panels: list[dict], labels: tuple[str, str], cols: int = 4) -> bytes:
    """Small multiples of ``compare_hist``: each panel {"title", "edges", "reference",
    "current", "labels"? (category names), "alert"? (a red title)}; one legend. Rows with
    category labels get the room their rotated labels need (constrained layout)."""
    has_labels = any(p.get("labels") for p in panels)
    fig, axes = grid(len(panels), cols, cell_h=2.9 if has_labels else 2.2)
    fig.set_layout_engine("constrained", h_pad=0.06, w_pad=0.04)
    for ax, p in zip(axes, panels):
        compare_hist(ax, p.get("edges"), p["reference"], p["current"], labels,
                     fit_title(p["title"], cols), p.get("labels"),
                     "#c0392b" if p.get("alert") else "black")
    if axes:
        axes[0].legend(fontsize="x-small")
    return to_png(fig)


def lines(series: dict[str, tuple[Sequence[float], Sequence[float]]], *, title: str,
          xlabel: str, ylabel: str = "", diagonal: bool = False,
          width: float = 6.0, height: float = 4.0) -> bytes:
    """Named (x, y) lines on one axes (``diagonal``: the y = x chance line)."""
    fig = figure(width, height)
    ax = fig.add_subplot()
    for name, (x, y) in series.items():
        ax.plot(x, y, label=name, marker="o" if len(x) < 30 else None, markersize=3)
    if diagonal:
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return to_png(fig)


def barh(labels: Sequence[str], values: Sequence[float], *, title: str, xlabel: str) -> bytes:
    fig = figure(7.0, 0.6 + 0.28 * len(labels))
    ax = fig.add_subplot()
    ax.barh(list(labels), list(values), color=REFERENCE)
    ax.xaxis.set_major_formatter(thousands())
    ax.invert_yaxis()
    ax.set(title=title, xlabel=xlabel)
    ax.tick_params(axis="y", labelsize="small")
    fig.tight_layout()
    return to_png(fig)


def scatter_grid(panels: list[tuple[str, Sequence, Sequence]], ylabel: str,
                 highlight: Callable[[int], bool] | None = None, cols: int = 4) -> bytes:
    """One scatter per (xlabel, x, y) panel; point i drawn in orange when highlight(i)."""
    fig, axes = grid(len(panels), cols, cell_h=2.6)
    for ax, (name, x, y) in zip(axes, panels):
        colors = [CURRENT if highlight and highlight(i) else REFERENCE for i in range(len(x))]
        numeric = all(isinstance(v, (int, float)) for v in x)
        xs = list(x) if numeric else [str(v) for v in x]
        ax.scatter(xs, list(y), c=colors, s=18)
        ax.set_xlabel(name, fontsize="small")
        ax.set_ylabel(ylabel, fontsize="small")
        ax.tick_params(labelsize="x-small")
    fig.tight_layout()
    return to_png(fig)


def histogram(values: Sequence[float], *, title: str, xlabel: str, bins: int = 30) -> bytes:
    fig = figure(6.0, 3.2)
    ax = fig.add_subplot()
    ax.hist(np.asarray(values, float), bins=bins, color=REFERENCE)
    ax.set(title=title, xlabel=xlabel, ylabel="rows")
    fig.tight_layout()
    return to_png(fig)


def residuals(series: dict[str, tuple[np.ndarray, np.ndarray]], *, title: str) -> bytes:
    """Residual (prediction - label) against the label, one panel per model."""
    fig, axes = grid(len(series), min(len(series), 3), cell_h=3.2)
    for ax, (name, (label, pred)) in zip(axes, series.items()):
        ax.scatter(label, pred - label, s=4, alpha=0.4, color=REFERENCE)
        ax.axhline(0, color="grey", linewidth=1)
        ax.set(title=f"{name}: {title}", xlabel="label", ylabel="prediction - label")
    fig.tight_layout()
    return to_png(fig)
