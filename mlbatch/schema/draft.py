"""Profiles of raw tables (mlbatch.schema.profile) -> the text of a draft schema YAML that
loads and runs as is: every column typed exactly, the null tokens seen, a label picked
(the user should pick their own: the alternatives are listed), the main table's usable
columns as features, and what was left out or could be joined, as comments."""
from __future__ import annotations

import json

from mlbatch.expr import quote_column
from mlbatch.schema.profile import ColumnProfile, InferError, TableProfile

VOCAB_MAX = 1000  # more distinct strings than this: hashed instead of a vocabulary
HASH_BUCKETS = 1000


def q(text: str) -> str:
    """A YAML double-quoted scalar (JSON string syntax is valid YAML)."""
    return json.dumps(text)


def _nulls_note(c: ColumnProfile) -> str:
    if not c.nulls:
        return "no nulls"
    return "nulls: " + ", ".join(f"{'null' if t is None else repr(t)} x{n}"
                                 for t, n in c.nulls.most_common())


def _column_line(c: ColumnProfile) -> str:
    spec = {"type": c.type} | ({"required": True} if not c.nulls and c.rows else {})
    body = ", ".join(f"{k}: {str(v).lower() if isinstance(v, bool) else v}"
                     for k, v in spec.items())
    notes = [f"{c.distinct} distinct", _nulls_note(c)]
    if c.min is not None:
        notes.insert(0, f"range {c.min} .. {c.max}")
    if c.timestamp:
        notes.append(f"timestamp: ISO 8601, zone {c.timestamp}" + (
            " (no zone: wall-clock time, give it with from_zone(timestamp(x), 'Area/City'))"
            if c.timestamp == "naive" else ""))
    return f"      {q(c.name)}: {{{body}}}   # {'; '.join(notes)}"


def _table_lines(t: TableProfile) -> list[str]:
    lines = [f"  {t.name}:", f"    path: {q(t.path.name)}   # relative to --input; "
             f"{t.rows} rows profiled", f"    format: {t.format}",
             f"    null_tokens: [{', '.join(q(x) for x in t.null_tokens)}]"]
    if any(c.type == "string" and any(isinstance(k, str) and k for k in c.nulls)
           for c in t.columns):
        lines.append("    # a string column's 'NA' may be a real value: give that column "
                     "null_values: [\"\"]")
    for key in t.keys:
        lines.append(f"    # candidate key: [{', '.join(key)}] (unique, never null)")
    lines.append("    columns:")
    lines += [_column_line(c) for c in t.columns]
    lines += [f"    # left out: {s}" for s in t.skipped]
    return lines


def _label(t: TableProfile) -> ColumnProfile:
    """The numeric column with the fewest nulls (the last one on a tie), not a key."""
    keys = {k for key in t.keys for k in key}
    numeric = [c for c in t.columns if c.type in ("int64", "float64") and c.distinct > 1
               and c.name not in keys]
    if not numeric:
        raise InferError(f"{t.path}: no numeric column to draft a label from; write the "
                         f"schema's label by hand")
    return min(reversed(numeric), key=lambda c: c.null_count)


def _label_lines(t: TableProfile, label: ColumnProfile) -> list[str]:
    names = {c.name for c in t.columns}
    name = next(n for n in (f"{label.name}_label", f"{label.name}_target", "__label")
                if n not in names)
    others = [c.name for c in t.columns if c.type in ("int64", "float64")
              and c.name != label.name]
    return ["label:   # PICK YOUR LABEL: this draft regresses on the numeric column with the "
            "fewest nulls", f"  # other numeric columns: {others}",
            "  # a binary label: task: binary_classification, expr: \"<column> > <value>\"",
            f"  name: {q(name)}", "  task: regression", f"  expr: {q(quote_column(label.name))}"]


def _feature_kind(c: ColumnProfile, keys: set[str]) -> tuple[str | None, str]:
    """(features section or None, the line's spec or why the column is left out)."""
    if c.null_count == c.rows:
        return None, "all null"
    if c.distinct <= 1:
        return None, "constant"
    if c.name in keys:
        return None, "a candidate key (an identifier, not a feature)"
    if c.timestamp:
        return None, (f"a timestamp: derive parts, e.g. {{name: {c.name}_hour, expr: "
                      f"{q('hour(timestamp(' + quote_column(c.name) + '))')}}}")
    if c.type in ("int64", "float64"):
        return "numeric", f"{{column: {q(c.name)}, scale: z_score, fill: mean}}"
    if c.distinct <= VOCAB_MAX:
        return "vocabularies", f"{{column: {q(c.name)}, top_k: {min(c.distinct, VOCAB_MAX)}}}"
    return "hashes", f"{{column: {q(c.name)}, hash_buckets: {HASH_BUCKETS}}}"


def _feature_lines(t: TableProfile, label: ColumnProfile) -> list[str]:
    keys = {key[0] for key in t.keys if len(key) == 1}
    sections: dict[str, list[str]] = {"numeric": [], "vocabularies": [], "hashes": []}
    left_out = [f"  # {label.name}: the label's source (a feature would leak it)"]
    for c in t.columns:
        if c.name == label.name:
            continue
        kind, spec = _feature_kind(c, keys)
        if kind:
            sections[kind].append(f"    - {spec}")
        else:
            left_out.append(f"  # {c.name}: {spec}")
    lines = ["features:   # candidates: every usable column of the main table; drop what "
             "would not be known at prediction time"]
    for kind, items in sections.items():
        if items:
            lines += [f"  {kind}:", *items]
    if not any(sections.values()):
        raise InferError(f"{t.path}: no column is usable as a feature")
    return lines + ["  # left out:", *left_out]


def _join_lines(tables: list[TableProfile], main: TableProfile) -> list[str]:
    """Commented joins: a lookup table's single-column key that the main table also has."""
    names = {c.name for c in main.columns}
    out = []
    for t in tables:
        for key in t.keys if t is not main else ():
            if len(key) == 1 and key[0] in names:
                out.append(f"#   - {{table: {t.name}, keys: [{key[0]}], prefix: {t.name}_}}   "
                           f"# declare key: [{key[0]}] on {t.name} first")
    return ["# joins (candidates; uncomment to use):", *out] if out else []


def render(tables: list[TableProfile], main: str | None = None, name: str | None = None) -> str:
    """The draft schema's text (see the module docstring)."""
    by_name = {t.name: t for t in tables}
    if len(by_name) != len(tables):
        raise InferError(f"two files give the same table name: {[t.name for t in tables]}")
    if main is not None and main not in by_name:
        raise InferError(f"--main {main!r} is not one of the tables {sorted(by_name)}")
    m = by_name[main] if main else tables[0]
    label = _label(m)
    lines = ["# A DRAFT inferred by python -m mlbatch.schema.infer: it loads and runs as is;",
             "# review the types, the label and the features (docs/schema.md).",
             f"name: {q(name or m.name)}", "version: 1", "tables:"]
    for t in tables:
        lines += _table_lines(t)
    lines += [f"main: {m.name}", *_join_lines(tables, m), *_label_lines(m, label),
              "split: {by: row, eval_fraction: 0.2}   # or by: key, key: [columns]",
              *_feature_lines(m, label)]
    return "\n".join(lines) + "\n"
