"""Per-join accounting and the checks on prepared columns (issue #20), from the counts and
the column profile the pipeline gathered (transforms.PrepareExamplesFn, ProfileFn).

Per join, in summary.json: main rows matched and unmatched (these reconcile with the
main table's valid rows), lookup rows kept, duplicate keys dropped, lookup rows used and
unused, what the unmatched rows' features are filled with, and an as-of join's `as_of`
(time, lookup time, tolerance as written and in microseconds) and its unmatched rows by
cause: `late` (the key's latest earlier lookup row is beyond the tolerance), `too_early`
(the key's lookup rows are all later) and `missed` (no lookup row has the key, or the
row's key or time is null); late + too_early + missed = unmatched. Per prepared column
(train and eval rows, before any fill): rows, nulls, null share, constant or not.

A derived column that is all null or constant although a source of it varies, or far
more null than its sources, and a feature's source column that is all null (e.g. every
row missed a join), fail the run (``column_problems``), unless the schema declares
``allow_constant: true`` for it: then a warning only. A constant feature source column,
or a derived column of constant sources, is a warning (a slice of one day of flights has
one weekday).
"""
from __future__ import annotations

import logging

from mlbatch.schema import DatasetSchema

LOGGER = logging.getLogger(__name__)
NULL_RISE_LIMIT = 0.5  # a derived column this much more null than its most null source
CATEGORY_FILL = "missing: a category of its own"


def _joined_columns(schema: DatasetSchema, table: str) -> set[str]:
    """The prepared columns a join brings, and the derived columns reading them."""
    j = next(j for j in schema.joins if j.table == table)
    cols = {j.prefix + c.name for c in schema.tables[table].columns if c.name not in j.on}
    for d in schema.derived:
        if cols & set(d.expr.columns):
            cols.add(d.name)
    return cols


def filled_with(schema: DatasetSchema, table: str) -> dict[str, str]:
    """Feature name -> what it holds on a row the join did not match."""
    cols, out = _joined_columns(schema, table), {}
    for f in [*schema.numeric, *schema.buckets]:
        if f.column in cols:
            out[f.name] = "the train mean" if f.fill == "mean" else f"{f.fill!r}"
    for f in [*schema.vocabularies, *schema.hashes]:
        if f.column in cols:
            out[f.name] = CATEGORY_FILL
    for f in schema.crosses:
        if cols & set(f.columns):
            out[f.name] = "its inputs' fills"
    return out


def join_summary(schema: DatasetSchema, counts: dict, used: dict[str, int]) -> dict:
    """Per join (lookup table name) its accounting; see the module docstring."""
    c = lambda k: int(counts.get(k, 0))  # noqa: E731
    out = {}
    for j in schema.joins:
        t = j.table
        kept = c(f"{t}_valid") - c(f"{t}_duplicate_keys_dropped")
        n_used = int(used.get(t, 0))
        out[t] = {"keys": list(j.on), "matched": c(f"join_{t}_matched"),
                  "unmatched": c(f"join_{t}_unmatched"), "lookup_rows": kept,
                  "duplicate_keys_dropped": c(f"{t}_duplicate_keys_dropped"),
                  "lookup_rows_used": n_used, "lookup_rows_unused": kept - n_used,
                  "unmatched_filled_with": filled_with(schema, t)}
        if j.as_of:  # why unmatched rows found none: late + too_early + missed = unmatched
            out[t].update({k: c(f"join_{t}_{k}") for k in ("late", "too_early", "missed")})
            out[t]["as_of"] = {"time": j.as_of.time.text, "lookup_time": j.as_of.lookup_time.text,
                               "tolerance": j.as_of.tolerance,
                               "tolerance_us": j.as_of.tolerance_us}
    return out


def column_summary(profile: dict) -> dict:
    """Per profiled column: rows, nulls, null_share, constant (at most one distinct
    non-null value)."""
    out = {}
    for col, (rows, nulls, lo, hi) in sorted(profile.items()):
        out[col] = {"rows": int(rows), "nulls": int(nulls),
                    "null_share": nulls / rows if rows else None,
                    "constant": bool(rows) and (lo is None or lo == hi)}
    return out


def _allowed(schema: DatasetSchema, col: str) -> bool:
    for d in schema.derived:
        if d.name == col:
            return d.allow_constant
    for t in [schema.main_table, *(schema.tables[j.table] for j in schema.joins)]:
        prefix = "" if t.name == schema.main else next(
            j.prefix for j in schema.joins if j.table == t.name)
        for c in t.columns:
            if prefix + c.name == col:
                return c.allow_constant
    return False


def _sources_vary(d, columns: dict) -> bool:
    """Whether some source of a derived column is neither all null nor constant (then a
    constant or all-null result is the expression's doing, not the input's)."""
    return any(not columns[c]["constant"] for c in d.expr.columns if c in columns)


def _verdicts(schema: DatasetSchema, columns: dict) -> list[tuple[str, str, bool]]:
    """(column, what is wrong, fatal) for each derived column that is all null or
    constant (fatal when a source of it varies: the expression lost the information) or
    far more null than its sources (fatal), each feature source column that is all null
    (fatal) or constant (a warning: a slice of one day has one weekday)."""
    derived = {d.name: d for d in schema.derived}
    sources = set(schema.transform_inputs())
    out = []
    for col, s in columns.items():
        if col not in derived and col not in sources:
            continue  # only read by a derived column: judged through it
        what = ("derived column" if col in derived else "feature source column") + f" {col!r}"
        if col in derived:
            what += f" ({derived[col].expr.text!r})"
        varied = col in derived and _sources_vary(derived[col], columns)
        if s["nulls"] == s["rows"]:
            out.append((col, f"{what} is null on all {s['rows']} rows",
                        varied or col in sources))
        elif s["constant"]:
            out.append((col, f"{what} is constant over all {s['rows']} rows", varied))
        elif col in derived:
            src = [columns[c]["null_share"] for c in derived[col].expr.columns if c in columns]
            base = max(src, default=0.0)
            if s["null_share"] - base > NULL_RISE_LIMIT:
                out.append((col, f"{what} is null on {100 * s['null_share']:.1f}% of rows, "
                                 f"its sources on at most {100 * base:.1f}%", True))
    return out


def column_problems(schema: DatasetSchema, summary: dict) -> str | None:
    """Why the prepared columns make the features useless (None: they do not). What is
    not fatal, or allowed by a column's `allow_constant: true`, is logged and listed in
    summary["column_warnings"] instead."""
    rows = summary["stages"]["train"] + summary["stages"]["eval"]
    if rows == 0:
        return (f"no usable rows: table {schema.main!r} gave {summary['stages']['valid']} "
                f"valid rows, none of them train or eval")
    problems, warnings = [], []
    for col, why, fatal in _verdicts(schema, summary.get("columns") or {}):
        if fatal and not _allowed(schema, col):
            problems.append(why)
        else:
            warnings.append(why + (" (allow_constant)" if fatal else ""))
            LOGGER.warning("%s", warnings[-1])
    summary["column_warnings"] = warnings
    if not problems:
        return None
    return ("unusable columns (set allow_constant: true on the column or derived column if "
            "this is expected): " + "; ".join(problems))


def fill_summary(schema: DatasetSchema, summary: dict) -> dict:
    """Per numeric feature: its source column's null share over train and eval rows
    before the fill, and the share of train values still missing after it (measured in
    the transformed train split)."""
    columns, stats = summary.get("columns") or {}, summary.get("train_feature_stats") or {}
    out = {}
    for f in schema.numeric:
        before = columns.get(f.column, {}).get("null_share")
        st = stats.get(f.name) or {}
        after = (st["missing_after_fill"] / st["count"]
                 if st.get("count") and "missing_after_fill" in st else None)
        out[f.name] = {"column": f.column, "fill": f.fill, "null_share_before_fill": before,
                       "null_share_after_fill": after}
    return out
