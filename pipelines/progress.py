"""What a run shows while it runs: one line per step, and the table at the end.

On a terminal the step lines are redrawn in place (elapsed time ticking); otherwise
(a log, a pipe, CI) one plain line is written each time a step changes state.
"""
from __future__ import annotations

import shutil
import sys
from typing import TextIO

_UP = "\x1b[{n}F"  # cursor to the start of the line n lines up
_CLEAR = "\x1b[2K"


def _elapsed(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds}s"


def step_line(state, name_width: int = 14) -> str:
    rows = state.key_figures.get("rows")
    rows_text = f"{rows:,} rows" if isinstance(rows, int) else ""
    detail = state.error or state.reason or ""
    return (f"{state.name:<{name_width}} {state.status:<9} {_elapsed(state.elapsed_s):>6} "
            f"{rows_text:>13}  {detail}").rstrip()


class Progress:
    """Live step lines on ``stream``."""

    def __init__(self, states: list, stream: TextIO | None = None, live: bool | None = None):
        self.states = states
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self._drawn = 0
        self._last: dict[str, str] = {}
        self._name_width = max([14, *(len(s.name) for s in states)])

    def start(self, title: str) -> None:
        self.stream.write(title + "\n")
        if self.live:
            self._draw()
        else:
            for s in self.states:
                self._plain(s)
        self.stream.flush()

    def update(self, state=None) -> None:
        """A step changed state (or, ``state`` None, time passed)."""
        if self.live:
            self._draw()
        elif state is not None:
            self._plain(state)
        self.stream.flush()

    def _plain(self, state) -> None:
        if self._last.get(state.name) != state.status:
            self._last[state.name] = state.status
            self.stream.write(step_line(state, self._name_width) + "\n")

    def _draw(self) -> None:
        width = max(shutil.get_terminal_size().columns - 1, 20)  # a wrapped line breaks the redraw
        out = [_UP.format(n=self._drawn)] if self._drawn else []
        out += [_CLEAR + step_line(s, self._name_width)[:width] + "\n" for s in self.states]
        self.stream.write("".join(out))
        self._drawn = len(self.states)

    def table(self, rows: list[list[str]], footer: list[str]) -> None:
        """The final table: one row per step, columns padded; then the footer lines."""
        header = ["step", "status", "ran on", "output", "key figure"]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        lines = ["", "  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip(),
                 "  ".join("-" * w for w in widths)]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        self.stream.write("\n".join([*lines, *footer]) + "\n")
        self.stream.flush()
