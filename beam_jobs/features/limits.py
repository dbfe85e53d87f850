"""How much bad input a run may absorb: dead-letter reasons counted in the pipeline, and
the schema's limits (`limits:`, as BigQuery's max_bad_records) checked after it.

The reasons are counted by a Beam combine over the dead letters, keyed by table and by
the reason with the record's own values taken out (quoted values, byte offsets), so
"distance: not a finite number: 'far'" and "... 'near'" count as one reason.
"""
from __future__ import annotations

import re

import apache_beam as beam

from mlbatch.schema import LimitsSpec

TOP_REASONS = 10  # kept per table in summary.json
SHOWN_REASONS = 5  # quoted in a failure
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_BYTE = re.compile(r"\bat byte \d+")


def normalize_reason(reason: str) -> str:
    """A dead-letter reason without the record's own values."""
    return _BYTE.sub("at byte N", _QUOTED.sub("<value>", reason))


class ReasonCountFn(beam.CombineFn):
    """(count, first (source, line)) of the dead letters that share a key."""

    def create_accumulator(self):
        return 0, None

    def add_input(self, acc, where):
        count, first = acc
        return count + 1, where if first is None else min(first, where)

    def merge_accumulators(self, accs):
        count, first = 0, None
        for k, f in accs:
            count += k
            if f is not None:
                first = f if first is None else min(first, f)
        return count, first

    def extract_output(self, acc):
        return acc


class CountReasons(beam.PTransform):
    """Dead letters -> one list of (table, reason, count, source, first line)."""

    def expand(self, dead_letters):
        return (dead_letters
                | "KeyByReason" >> beam.Map(lambda d: (
                    (d["table"], normalize_reason(d["reason"])), (d["source"], d["line"])))
                | "CountPerReason" >> beam.CombinePerKey(ReasonCountFn())
                | "Flat" >> beam.Map(lambda kv: (*kv[0], kv[1][0], *kv[1][1]))
                | "ToList" >> beam.combiners.ToList())


def top_reasons(counted: list, tables) -> dict[str, list[dict]]:
    """Per table, its most common reasons (count descending, then reason)."""
    out: dict[str, list[dict]] = {t: [] for t in tables}
    for table, reason, count, source, line in sorted(counted, key=lambda r: (-r[2], r[1])):
        if len(out.setdefault(table, [])) < TOP_REASONS:
            out[table].append({"reason": reason, "count": int(count),
                               "first": f"{source}:{line}"})
    return out


def check_limits(summary: dict, limits: LimitsSpec, share: float | None = None) -> str | None:
    """Why the run's dead letters exceed the limits (None: within them). `share`
    overrides the schema's max_dead_letter_share (--max-dead-letter-share)."""
    max_share = limits.max_dead_letter_share if share is None else share
    problems = []
    for name, t in summary["tables"].items():
        read, dead = t["read"], t["dead_letter"]
        over_share = read and dead / read > max_share
        over_cap = limits.max_dead_letters is not None and dead > limits.max_dead_letters
        if not (over_share or over_cap):
            continue
        limit = (f"the limit of {100 * max_share:g}% (limits.max_dead_letter_share or "
                 f"--max-dead-letter-share)" if over_share else
                 f"the limit of {limits.max_dead_letters} (limits.max_dead_letters)")
        reasons = "; ".join(f"{r['count']} x {r['reason']} (first {r['first']})" for r in
                            summary.get("dead_letter_reasons", {}).get(name, [])[:SHOWN_REASONS])
        problems.append(f"table {name!r}: {dead} of {read} records read "
                        f"({100 * dead / read:.2f}%) are dead letters, above {limit}; "
                        f"most common reasons: {reasons}")
    if not problems:
        return None
    return "too many dead letters: " + " | ".join(problems)
