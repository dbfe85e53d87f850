"""Two runs side by side: ``python -m pipelines compare RUN_A RUN_B``.

For each step of either run (run.json's steps, in A's order then B's extra ones), what its
output depended on and what it measured, read from the run directory alone:

* ``params.<name>``: the step's args as written (the cache record's ``parts.params``);
* ``code``: the job's code version (SHA-256 of its source files), the producer's git
  commit, and the run's library versions (run.json ``versions``);
* ``data``: the digest of each upstream artifact it read (``input.<step>``), of each raw
  argument (``raw.<arg>``), and of each raw file its artifact lists (``file.<role>``),
  then its own output's digest;
* ``periods``: every parameter or artifact config field whose name holds ``period``;
* ``metrics``: every number in its artifact's ``metrics`` (nested keys dotted) and its
  key figures.

Every row says whether A and B differ. ``render`` prints the changed rows of each section
and every metric (``--all``: every row); ``--json`` gives the whole comparison.
"""
from __future__ import annotations

import logging
import os
from typing import Any

from mlbatch.artifacts import ArtifactError, read_manifest
from mlbatch.errors import UsageError
from mlbatch.metrics import format_number
from mlbatch.storage import StorageError
from pipelines import cache, run_file

LOGGER = logging.getLogger(__name__)

SECTIONS = ("run", "params", "code", "data", "periods", "metrics")
_SHORT = 12  # hex digits shown of a digest


class CompareError(ValueError, UsageError):
    """A run directory cannot be compared (no or unreadable run.json); names the path."""


def _load(run_dir: str) -> dict:
    try:
        doc = run_file.read_run(run_dir)
    except run_file.RunFileError as e:
        raise CompareError(str(e)) from None
    if doc is None:
        raise CompareError(f"{run_dir}: no {run_file.RUN_FILE} (not a pipeline run directory)")
    return doc


def _flat(prefix: str, value: Any, out: dict[str, Any]) -> None:
    """Numbers (and short strings) of a nested dict under dotted keys."""
    if isinstance(value, dict):
        for key in sorted(value):
            _flat(f"{prefix}.{key}" if prefix else str(key), value[key], out)
    elif isinstance(value, bool) or value is None:
        out[prefix] = value
    elif isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value):
        out[prefix] = ", ".join(map(str, value))
    elif isinstance(value, (int, float)) or (isinstance(value, str) and len(value) <= 80):
        out[prefix] = value


def _manifest(output: str):
    try:
        return read_manifest(output)
    except (ArtifactError, FileNotFoundError, StorageError) as e:
        LOGGER.info("%s: no readable artifact (%s)", output, e)
        return None


def _periods(params: dict, config: dict) -> dict[str, Any]:
    found = {}
    for where, doc in (("params", params), ("config", config)):
        for key, value in doc.items():
            if "period" in key.lower() and value is not None:
                found[f"{where}.{key}"] = value if not isinstance(value, list) else ", ".join(
                    map(str, value))
    return found


def step_facts(run_dir: str, step: dict, versions: dict) -> dict[str, dict[str, Any]]:
    """{section: {field: value}} of one step of a run (see the module docstring)."""
    output = os.path.join(run_dir, step.get("output") or step["name"])
    record = cache.stored(output) or {}
    parts = record.get("parts", {})
    manifest = _manifest(output)
    doc = manifest.doc if manifest is not None else {}
    facts: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
    facts["run"]["status"] = step.get("status")
    facts["run"]["cache_key"] = step.get("cache_key")
    _flat("", parts.get("params", {}), facts["params"])
    facts["code"]["job"] = step.get("job")
    facts["code"]["code_version"] = parts.get("code")
    facts["code"]["git_commit"] = (doc.get("producer") or {}).get("git_commit")
    _flat("versions", versions, facts["code"])
    for name, digest in sorted(parts.get("inputs", {}).items()):
        facts["data"][f"input.{name}"] = digest
    for name, digest in sorted(parts.get("raw", {}).items()):
        facts["data"][f"raw.{name}"] = digest
    for entry in doc.get("inputs", []):
        if entry.get("kind") == "file":
            label = f"file.{entry.get('role')}[{os.path.basename(str(entry.get('uri')))}]"
            facts["data"][label] = "sha256:" + str(entry.get("sha256"))
    facts["data"]["output"] = doc.get("digest")
    facts["periods"] = _periods(parts.get("params", {}), doc.get("config") or {})
    _flat("", doc.get("metrics") or {}, facts["metrics"])
    figures = {k: v for k, v in (step.get("key_figures") or {}).items()
               if k not in ("digest", "type")}
    _flat("key_figures", figures, facts["metrics"])
    return facts


def _row(section: str, step: str, field: str, a: Any, b: Any, present: tuple[bool, bool]
         ) -> dict:
    return {"section": section, "step": step, "field": field, "a": a, "b": b,
            "changed": a != b or present[0] != present[1]}


def compare_runs(run_a: str, run_b: str) -> dict:
    """The comparison of two run directories: {"a", "b": run summaries, "rows": [...],
    "changed": ["step: section field", ...]}; raises CompareError."""
    docs = [_load(run_a), _load(run_b)]
    runs = [{"run_dir": os.path.abspath(r), **{k: d.get(k) for k in (
        "pipeline", "spec", "spec_digest", "started", "ended", "status")}}
        for r, d in zip((run_a, run_b), docs)]
    rows = [_row("run", "", key, runs[0][key], runs[1][key], (True, True))
            for key in ("pipeline", "spec_digest", "status", "started")]
    steps = [{s["name"]: s for s in d["steps"]} for d in docs]
    names = list(steps[0]) + [n for n in steps[1] if n not in steps[0]]
    for name in names:
        facts = [step_facts(r, st[name], d.get("versions") or {}) if name in st else None
                 for r, st, d in zip((run_a, run_b), steps, docs)]
        for section in SECTIONS:
            sides = [f[section] if f else {} for f in facts]
            for field in list(sides[0]) + [k for k in sides[1] if k not in sides[0]]:
                rows.append(_row(section, name, field, sides[0].get(field),
                                 sides[1].get(field), (field in sides[0], field in sides[1])))
    changed = [f"{r['step']}: {r['section']} {r['field']}" if r["step"] else f"run {r['field']}"
               for r in rows
               if r["changed"] and r["field"] not in ("started", "cache_key")]
    return {"a": runs[0], "b": runs[1], "rows": rows, "changed": changed}


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return format_number(value, 6)  # 1,720,924 (a loss in dollars), not 1.72092e+06
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    text = str(value)
    if text.startswith("sha256:") and len(text) > 7 + _SHORT:
        return text[:7 + _SHORT]
    return text


def _delta(a: Any, b: Any) -> str:
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b))
    if not numbers or a == b:
        return ""
    return (("+" if b >= a else "-") + format_number(abs(b - a), 6)
            + (f" ({(b - a) / abs(a):+.1%})" if a else ""))


def render(comparison: dict, unchanged: bool = False) -> str:
    """The comparison as text: the changed rows per section and every metric (all rows
    with ``unchanged``), then the list of what changed."""
    a, b = comparison["a"], comparison["b"]
    lines = [f"A: {a['run_dir']}  ({a['pipeline']}, started {a['started']}, {a['status']})",
             f"B: {b['run_dir']}  ({b['pipeline']}, started {b['started']}, {b['status']})"]
    for section in SECTIONS:
        rows = [r for r in comparison["rows"] if r["section"] == section]
        shown = [r for r in rows if unchanged or r["changed"] or section == "metrics"]
        same = len(rows) - len(shown)
        lines += ["", f"{section}" + (f" ({same} unchanged rows not shown)" if same else "")]
        if not shown:
            continue
        table = [["step", "field", "A", "B", ""]]
        table += [[r["step"], r["field"], _cell(r["a"]), _cell(r["b"]),
                   ("changed " + _delta(r["a"], r["b"])).rstrip() if r["changed"] else ""]
                  for r in shown]
        widths = [max(len(row[i]) for row in table) for i in range(5)]
        lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()
                  for row in table]
    changed = comparison["changed"]
    lines += ["", f"what changed ({len(changed)}):" if changed else "nothing changed"]
    lines += [f"  {c}" for c in changed]
    return "\n".join(lines) + "\n"
