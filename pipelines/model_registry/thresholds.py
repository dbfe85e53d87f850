"""Blessing thresholds: value thresholds on the candidate, change thresholds against the
blessed version, both checked overall and on every declared slice.

    value:  METRIC>=X | METRIC<=X        auc>=0.62, rmse<=12.5
    change: METRIC>=D | METRIC<=D        candidate - blessed: auc>=-0.01 (at most 0.01 lower)
            METRIC>=P% | METRIC<=P%      relative to |blessed|: logloss<=+2% (at most 2% higher)
"""
from __future__ import annotations

import dataclasses
import math
import re

from mlbatch.metrics import TASKS
from mlbatch.errors import ThresholdError

METRICS = {"binary_classification": ("auc", "logloss", "accuracy", "eval_loss"),
           "regression": ("rmse", "mae", "eval_loss")}
ROUNDING = 1e-12  # a bound met up to floating-point rounding is met
_SPEC = re.compile(r"^\s*(?P<metric>[a-z_]+)\s*(?P<op>>=|<=)\s*(?P<bound>[-+]?[0-9.eE+-]+?)"
                   r"\s*(?P<pct>%)?\s*$")


@dataclasses.dataclass(frozen=True)
class Threshold:
    metric: str
    kind: str  # "value" | "change"
    op: str  # ">=" | "<="
    bound: float
    relative: bool = False  # change thresholds only: the bound is a share of |blessed|

    @property
    def text(self) -> str:
        if self.kind == "change":
            bound = f"{self.bound * 100:+g}%" if self.relative else f"{self.bound:+g}"
        else:
            bound = f"{self.bound:g}"
        return f"{self.metric}{self.op}{bound}"

    def check_task(self, task: str) -> None:
        if task not in TASKS:
            raise ThresholdError(f"unknown task {task!r}")
        if self.metric not in METRICS[task]:
            raise ThresholdError(f"--{self.kind} {self.text}: a {task} model has no metric "
                                 f"{self.metric!r} (one of {', '.join(METRICS[task])})")


def parse_threshold(text: str, kind: str) -> Threshold:
    """A ``--value`` or ``--change`` threshold (see the module docstring)."""
    m = _SPEC.match(text)
    try:
        bound = float(m.group("bound")) if m else math.nan
    except ValueError:
        bound = math.nan
    if not m or not math.isfinite(bound):
        raise ThresholdError(f"--{kind} {text!r}: write METRIC>=NUMBER or METRIC<=NUMBER"
                             + (" (or NUMBER% for a relative change)" if kind == "change"
                                else ""))
    relative = bool(m.group("pct"))
    if relative and kind != "change":
        raise ThresholdError(f"--{kind} {text!r}: only a change threshold can be relative (%)")
    return Threshold(m.group("metric"), kind, m.group("op"),
                     bound / 100 if relative else bound, relative)


def _change(th: Threshold, candidate: float, baseline: float) -> float | None:
    if not th.relative:
        return candidate - baseline
    return None if baseline == 0 else (candidate - baseline) / abs(baseline)


def check(th: Threshold, candidate: float | None, baseline: float | None,
          slice_value: object = None) -> dict:
    """One check's record: both numbers, the change and whether it passed (an undefined
    metric does not pass, and says so)."""
    out = {"metric": th.metric, "kind": th.kind, "op": th.op, "threshold": th.bound,
           "relative": th.relative, "text": th.text, "slice": slice_value,
           "candidate": candidate, "baseline": baseline, "change": None, "passed": False}
    if candidate is None or (th.kind == "change" and baseline is None):
        out["reason"] = f"{th.metric} is undefined on these rows"
        return out
    measured = candidate
    if th.kind == "change":
        measured = out["change"] = _change(th, candidate, baseline)
        if measured is None:
            out["reason"] = f"the blessed {th.metric} is 0: no relative change"
            return out
    slack = ROUNDING * max(1.0, abs(th.bound))  # 0.51 vs 0.5 is +2%, not +2.0000000000000018%
    out["passed"] = bool(measured >= th.bound - slack if th.op == ">=" else
                         measured <= th.bound + slack)
    return out


def describe(result: dict, slice_column: str | None = None) -> str:
    """A failed (or passed) check in one line, with the two numbers."""
    where = ("overall" if result["slice"] is None else
             f"slice {slice_column or ''}{'=' if slice_column else ''}{result['slice']}")
    if result["kind"] == "value":
        got = f"candidate {result['metric']} = {_num(result['candidate'])}"
    else:
        got = (f"candidate {_num(result['candidate'])} vs blessed {_num(result['baseline'])}, "
               f"change {_num(result['change'], result['relative'])}")
    verdict = "passes" if result["passed"] else "fails"
    tail = f" ({result['reason']})" if result.get("reason") else ""
    return f"{where}: {got} {verdict} {result['kind']} threshold {result['text']}{tail}"


def _num(value: float | None, relative: bool = False) -> str:
    if value is None:
        return "undefined"
    return f"{value * 100:+.3f}%" if relative else f"{value:.6g}"
