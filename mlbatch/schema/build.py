"""Raw YAML mapping -> DatasetSchema: one function per section, each validating every
field it reads (the error names the field)."""
from __future__ import annotations

import re
from pathlib import Path

from mlbatch.config import shorten
from mlbatch.expr import TYPES, quote_column
from mlbatch.schema import fields as f
from mlbatch.schema.features import load_features
from mlbatch.schema.joins import load_joins
from mlbatch.schema.specs import (COLUMN_TYPES, DERIVED_FNS, FORMATS, LABEL_OPS, LABEL_TRANSFORMS,
                                  MAX_CLASSES, SPLIT_BY, TASKS, ColumnSpec, DatasetSchema,
                                  DerivedSpec,
                                  LabelSpec, LimitsSpec, PartitionSpec, SplitSpec, TableSpec)

TOP_LEVEL = {"name", "version", "tables", "main", "joins", "derived", "label", "filters",
             "split", "features", "limits", "identity", "partitions"}
GRANULARITIES = ("month", "day")
NUMERIC = ("int64", "float64")


def build(raw, source: str) -> DatasetSchema:
    f.check_keys("schema", raw, TOP_LEVEL, {"name", "tables", "main", "label", "split",
                                            "features"})
    version = raw.get("version", 1)
    if isinstance(version, bool) or not isinstance(version, (int, str)):
        raise f.err("version", f"expected an integer or a string, got {shorten(version)}")
    tables = _load_tables(raw["tables"])
    main = raw["main"]
    if not isinstance(main, str) or main not in tables:
        raise f.err("main", f"{shorten(main)} is not a declared table ({sorted(tables)})")
    joins, available = load_joins(raw.get("joins") or [], tables, main)
    derived = _load_derived(raw.get("derived") or [], available)
    label = _load_label(raw["label"], available)
    filters = _load_filters(raw.get("filters") or [], available)
    split = _load_split(raw["split"], available, tables[main])
    schema = DatasetSchema(
        name=f.string("name", raw["name"]), tables=tables, main=main, joins=joins,
        derived=derived, label=label, split=split, source=source, version=version,
        limits=_load_limits(raw.get("limits") or {}), filters=filters,
        identity=_load_identity(raw.get("identity") or [], tables[main]),
        partitions=_load_partitions(raw.get("partitions") or {}),
        **load_features(raw["features"], available))
    names = schema.feature_names
    for where, feature in _feature_fields(schema):
        f.feature_name(where, feature.name)
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise f.err("features", f"duplicate feature names {dupes}")
    if label.name in names:
        raise f.err("label.name", f"{shorten(label.name)} collides with a feature name")
    return schema


def _feature_fields(schema: DatasetSchema):
    """(field, feature) of every feature, the field as the schema file spells it."""
    for kind, items in (("numeric", schema.numeric), ("buckets", schema.buckets),
                        ("vocabularies", schema.vocabularies), ("hashes", schema.hashes)):
        for i, feature in enumerate(items):
            yield f"features.{kind}[{i}].column", feature
    for i, feature in enumerate(schema.crosses):
        yield f"features.crosses[{i}].name", feature


def _load_tables(raw) -> dict[str, TableSpec]:
    if not isinstance(raw, dict) or not raw:
        raise f.err("tables", "expected a non-empty mapping")
    return {n: _load_table(f"tables.{n}", str(n), t) for n, t in raw.items()}


def _column_name(where: str, name: str) -> str:
    """A column name expressions can write (in backquotes when it is not an identifier)."""
    if "`" in name:
        raise f.err(where, f"{shorten(name)} contains a backquote (`), which expressions "
                           f"use to quote column names")
    return name


def _load_column(where: str, name: str, spec) -> ColumnSpec:
    _column_name(where, name)
    if isinstance(spec, str):
        spec = {"type": spec}
    f.check_keys(where, spec, {"type", "required", "min", "max", "null_values", "allow_constant"},
                 {"type"})
    if spec["type"] not in COLUMN_TYPES:
        raise f.err(f"{where}.type", f"{shorten(spec['type'])} is not one of {COLUMN_TYPES}")
    if spec["type"] == "string" and ("min" in spec or "max" in spec):
        raise f.err(where, "min/max apply to numeric columns only")
    bounds = {k: f.number(f"{where}.{k}", spec[k]) for k in ("min", "max") if k in spec}
    if len(bounds) == 2 and bounds["min"] > bounds["max"]:
        raise f.err(where, f"min {bounds['min']} is greater than max {bounds['max']}")
    nulls = {} if "null_values" not in spec else \
        {"null_values": _null_tokens(f"{where}.null_values", spec["null_values"])}
    return ColumnSpec(name=name, type=spec["type"],
                      required=f.boolean(f"{where}.required", spec.get("required", False)),
                      allow_constant=f.boolean(f"{where}.allow_constant",
                                               spec.get("allow_constant", False)),
                      **bounds, **nulls)


def _null_tokens(where: str, tokens) -> tuple[str, ...]:
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
        raise f.err(where, f"expected a list of strings, got {shorten(tokens)}")
    return tuple(tokens)


def _load_table(where: str, name: str, raw) -> TableSpec:
    f.check_keys(where, raw, {"path", "format", "null_tokens", "columns", "key", "allow_empty"},
                 {"path", "columns"})
    path = f.string(f"{where}.path", raw["path"])
    fmt = raw.get("format") or Path(path).suffix.lstrip(".")
    if fmt not in FORMATS:
        raise f.err(f"{where}.format", f"{shorten(fmt)} is not one of {FORMATS}")
    if not isinstance(raw["columns"], dict) or not raw["columns"]:
        raise f.err(f"{where}.columns", "expected a non-empty mapping of column -> spec")
    columns = tuple(_load_column(f"{where}.columns.{c}", str(c), spec)
                    for c, spec in raw["columns"].items())
    key = f.names(f"{where}.key", raw["key"]) if "key" in raw else ()
    for k in key:
        if k not in {c.name for c in columns}:
            raise f.err(f"{where}.key", f"key column {shorten(k)} is not a column of table {shorten(name)}")
    return TableSpec(name=name, path=path, format=fmt, columns=columns,
                     null_tokens=_null_tokens(f"{where}.null_tokens",
                                              raw.get("null_tokens", [""])), key=key,
                     allow_empty=f.boolean(f"{where}.allow_empty", raw.get("allow_empty", False)))


def _legacy_derived(where: str, d: dict) -> str:
    """The expression a legacy {fn, args} entry stands for."""
    if not isinstance(d["fn"], str) or d["fn"] not in DERIVED_FNS:
        raise f.err(f"{where}.fn", f"{shorten(d['fn'])} is not one of {sorted(DERIVED_FNS)} "
                                   f"(or write expr: instead)")
    n_args, template = DERIVED_FNS[d["fn"]]
    args = f.as_tuple(d["args"])
    if len(args) != n_args:
        raise f.err(f"{where}.args", f"{d['fn']} takes {n_args} arguments, got {len(args)}")
    if not isinstance(args[0], str):
        raise f.err(f"{where}.args", "the first argument must be a column")
    for a in args:
        if not isinstance(a, str) and (isinstance(a, bool) or not isinstance(a, (int, float))):
            raise f.err(f"{where}.args", f"{shorten(a)} is neither a column name nor a number")
    return template.format(*(quote_column(a) if isinstance(a, str) else repr(a) for a in args))


def _load_derived(raw, available: dict[str, str]) -> tuple[DerivedSpec, ...]:
    """Derived columns in order (each may read the ones before); adds them to available."""
    if not isinstance(raw, list):
        raise f.err("derived", f"expected a list, got {type(raw).__name__}")
    out = []
    for i, d in enumerate(raw):
        where = f"derived[{i}]"
        f.check_keys(where, d, {"name", "expr", "fn", "args", "allow_constant"}, {"name"})
        name = _column_name(f"{where}.name", f.string(f"{where}.name", d["name"]))
        if name in available:
            raise f.err(f"{where}.name", f"{shorten(name)} already exists")
        if ("expr" in d) == ("fn" in d or "args" in d):
            raise f.err(where, "give either expr: or the legacy fn: and args:")
        if "expr" in d:
            text, field = d["expr"], f"{where}.expr"
        else:
            f.check_keys(where, d, {"name", "fn", "args", "allow_constant"},
                         {"name", "fn", "args"})
            text, field = _legacy_derived(where, d), f"{where}.fn"
        expr = f.expression(field, text, available, TYPES, "")
        available[name] = expr.type
        out.append(DerivedSpec(name=name, expr=expr, allow_constant=f.boolean(
            f"{where}.allow_constant", d.get("allow_constant", False))))
    return tuple(out)


def _legacy_label(lab: dict, available: dict[str, str]) -> str:
    col = lab["column"]
    if not isinstance(col, str) or available.get(col) not in NUMERIC:
        raise f.err("label.column", f"{shorten(col)} is not a numeric column")
    if lab["task"] == "regression":
        if "op" in lab or "value" in lab:
            raise f.err("label", "op and value apply to binary labels only (regression "
                                 "labels are the column itself, or an expr:)")
        return quote_column(col)
    if lab.get("op") not in LABEL_OPS:
        raise f.err("label.op", f"a binary label needs op in {LABEL_OPS} and a value, "
                                f"got {shorten(lab.get('op'))}")
    if "value" not in lab:
        raise f.err("label.value", f"missing: a binary label is `{col} {lab['op']} value`")
    value = f.number("label.value", lab["value"])
    return f"{quote_column(col)} {lab['op']} {shorten(value)}"


def _load_label(lab, available: dict[str, str]) -> LabelSpec:
    f.check_keys("label", lab, {"name", "task", "column", "op", "value", "transform", "expr",
                                "classes", "other"}, {"name", "task"})
    name = f.string("label.name", lab["name"])
    if name in available:
        raise f.err("label.name", f"{shorten(name)} is already a column; name the label otherwise")
    if lab["task"] not in TASKS:
        raise f.err("label.task", f"{shorten(lab['task'])} is not one of {TASKS}")
    if ("expr" in lab) == ("column" in lab):
        raise f.err("label", "give either expr: or column: (with op: and value: for a "
                             "binary label)")
    if "expr" in lab and ("op" in lab or "value" in lab):
        raise f.err("label", "op and value belong to the column: form; write them into expr:")
    multi = lab["task"] == "multiclass_classification"
    if multi:
        return _load_multiclass_label(lab, name, available)
    if "classes" in lab or "other" in lab:
        raise f.err("label.classes", "classes and other belong to multiclass_classification")
    binary = lab["task"] == "binary_classification"
    text = lab["expr"] if "expr" in lab else _legacy_label(lab, available)
    expr = f.expression("label.expr" if "expr" in lab else "label", text, available,
                        ("bool",) if binary else NUMERIC,
                        "a binary label must be true/false (e.g. a comparison)" if binary
                        else "a regression label must be a number")
    transform = lab.get("transform")
    if transform not in LABEL_TRANSFORMS:
        raise f.err("label.transform", f"{shorten(transform)} is not one of {LABEL_TRANSFORMS}")
    if transform and binary:
        raise f.err("label.transform", "a label transform applies to regression labels only")
    column = lab.get("column") or (expr.columns[0] if len(expr.columns) == 1 else None)
    return LabelSpec(name=name, task=lab["task"], column=column, op=lab.get("op"),
                     value=lab.get("value"), transform=transform, expr=expr)


def _load_multiclass_label(lab: dict, name: str, available: dict[str, str]) -> LabelSpec:
    """`expr:` (a string: a column name is one) with declared `classes:` and an optional
    `other:` class for every undeclared value (the last class)."""
    for key in ("column", "op", "value", "transform"):
        if key in lab:
            raise f.err(f"label.{key}", "a multiclass label is `expr:` (a string) with "
                                        "`classes:`; drop " + key)
    if "classes" not in lab:
        raise f.err("label.classes", "missing: a multiclass label declares its classes "
                                     "(a list of at least 2 strings, or {top_k: K})")
    raw = lab["classes"]
    if isinstance(raw, dict):
        return _top_k_label(lab, name, available)
    if not isinstance(raw, list) or not all(isinstance(c, str) and c for c in raw):
        raise f.err("label.classes", f"expected a list of class names, got {shorten(raw)}")
    classes = tuple(raw)
    other = f.string("label.other", lab["other"]) if "other" in lab else None
    classes = classes + ((other,) if other is not None else ())
    dup = sorted({c for c in classes if classes.count(c) > 1})
    if dup:
        raise f.err("label.classes", f"class {shorten(dup[0])} appears twice (other "
                                     "included)")
    if not 2 <= len(classes) <= MAX_CLASSES:
        raise f.err("label.classes", f"{len(classes)} classes (other included); a multiclass "
                                     f"label needs 2 to {MAX_CLASSES}")
    expr = f.expression("label.expr", lab["expr"], available, ("string",),
                        "a multiclass label must be a string (a column, or e.g. a cast)")
    column = expr.columns[0] if len(expr.columns) == 1 else None
    return LabelSpec(name=name, task=lab["task"], column=column, expr=expr,
                     classes=classes, other=other)


def _top_k_label(lab: dict, name: str, available: dict[str, str]) -> LabelSpec:
    """`classes: {top_k: K}`: the K most frequent values of the train split, every other
    value `other` (default "other"), resolved by the feature job (resolve_classes)."""
    raw = lab["classes"]
    unknown = sorted(set(raw) - {"top_k"})
    if unknown or "top_k" not in raw:
        raise f.err("label.classes", f"expected a list of class names or {{top_k: K}}, got "
                                     f"{shorten(raw)}")
    k = f.integer("label.classes.top_k", raw["top_k"], 1, MAX_CLASSES - 1)
    other = f.string("label.other", lab.get("other", "other"))
    expr = f.expression("label.expr", lab["expr"], available, ("string",),
                        "a multiclass label must be a string (a column, or e.g. a cast)")
    column = expr.columns[0] if len(expr.columns) == 1 else None
    return LabelSpec(name=name, task=lab["task"], column=column, expr=expr,
                     classes=(other,), other=other, top_k=k)


def _load_filters(raw, available: dict[str, str]) -> tuple:
    if not isinstance(raw, list):
        raise f.err("filters", f"expected a list of boolean expressions, got {shorten(raw)}")
    return tuple(f.expression(f"filters[{i}]", text, available, ("bool",),
                              "a filter must be true/false (e.g. a comparison)")
                 for i, text in enumerate(raw))


def _load_partitions(raw) -> PartitionSpec:
    """``partitions: {key: period, granularity: month}``: the raw data's Hive period
    folders (``period=2013-10/``), read with the feature job's --periods."""
    f.check_keys("partitions", raw, {"key", "granularity"})
    key = f.string("partitions.key", raw.get("key", "period"))
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        raise f.err("partitions.key", f"{shorten(key)} is not a folder key (letters, digits, _)")
    granularity = raw.get("granularity")
    if granularity is not None and granularity not in GRANULARITIES:
        raise f.err("partitions.granularity", f"{shorten(granularity)} is not one of "
                                              f"{GRANULARITIES}")
    return PartitionSpec(key=key, granularity=granularity)


def _load_identity(names, main: TableSpec) -> tuple[str, ...]:
    """The main-table columns that name a row in any file of the dataset (e.g. a
    flight's date, carrier, number and origin): late labels join on them."""
    key = f.names("identity", names) if names else ()
    for k in key:
        if k not in main.column_names:
            raise f.err("identity", f"unknown column {shorten(k)} (not a column of table "
                                    f"{main.name!r})")
    return key


def _load_split(sp, available: dict[str, str], main: TableSpec) -> SplitSpec:
    f.check_keys("split", sp, {"by", "key", "eval_fraction", "salt"}, {"eval_fraction"})
    by = sp.get("by", "key")
    if by not in SPLIT_BY:
        raise f.err("split.by", f"{shorten(by)} is not one of {SPLIT_BY}")
    if by == "key" and "key" not in sp:
        raise f.err("split", "give key: [columns], or by: row | content for a table "
                             "without a natural key")
    if by != "key" and "key" in sp:
        raise f.err("split.key", f"by: {by} hashes the whole record; drop key:")
    key = f.names("split.key", sp["key"]) if by == "key" else ()
    for k in key:
        if k not in available:
            raise f.err("split.key", f"unknown column {shorten(k)}")
    if by == "content":
        key = tuple(main.column_names)
    return SplitSpec(key=key, by=by,
                     eval_fraction=f.share("split.eval_fraction", sp["eval_fraction"], True),
                     salt=f.string("split.salt", sp["salt"], allow_int=True)
                     if "salt" in sp else "")


def _load_limits(raw) -> LimitsSpec:
    f.check_keys("limits", raw, {"max_dead_letter_share", "max_dead_letters"})
    share = raw.get("max_dead_letter_share", LimitsSpec.max_dead_letter_share)
    cap = raw.get("max_dead_letters")
    return LimitsSpec(max_dead_letter_share=f.share("limits.max_dead_letter_share", share),
                      max_dead_letters=None if cap is None else
                      f.integer("limits.max_dead_letters", cap, 0))
