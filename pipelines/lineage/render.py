"""Lineage trees (``pipelines.lineage.graph``) as indented text, for people."""
from __future__ import annotations

import json
from typing import Any

_INDENT = "   "


def _metrics(node: dict) -> str:
    custom = node.get("custom_properties") or {}
    parts = [f"{k[len('metrics.'):]}={v:.6g}" for k, v in sorted(custom.items())
             if k.startswith("metrics.") and isinstance(v, float)]
    return " ".join(parts)


def _artifact_lines(node: dict, role: str | None, depth: int, seen: bool) -> list[str]:
    pad = _INDENT * depth
    label = f"[{role}] " if role else ""
    lines = [f"{pad}{label}{node['type']} {node['uri']}"]
    detail = [f"digest {node['digest']}", f"state {node['state']}"]
    props, custom = node.get("properties") or {}, node.get("custom_properties") or {}
    if "size" in props:
        detail.append(f"{props['size']:,} bytes")
    if custom.get("rows"):
        detail.append("rows " + json.dumps(custom["rows"], sort_keys=True))
    lines.append(f"{pad}  " + "  ".join(detail))
    metrics = _metrics(node)
    if metrics:
        lines.append(f"{pad}  metrics {metrics}")
    if seen:
        lines.append(f"{pad}  (lineage shown above)")
    return lines


def _execution_lines(e: dict, depth: int, arrow: str) -> list[str]:
    pad = _INDENT * depth
    when = f"{e['started'] or '?'} -> {e['ended'] or '?'}"
    elapsed = f", {e['elapsed_s']:.1f} s" if e.get("elapsed_s") is not None else ""
    key = f"  cache_key {e['cache_key']}" if e.get("cache_key") else ""
    lines = [f"{pad}{arrow} step {e['step']} [{e['type']}] on {e['runs_on']}: {e['state']}, "
             f"{when}{elapsed}", f"{pad}  run {e['pipeline_run']}{key}"]
    if e.get("params"):
        lines.append(f"{pad}  params " + json.dumps(e["params"], sort_keys=True, default=str))
    if e.get("error"):
        lines.append(f"{pad}  error {e['error']}")
    return lines


def _upstream(tree: dict, depth: int) -> list[str]:
    lines = _artifact_lines(tree["artifact"], tree["role"], depth, tree["seen"])
    producer = tree.get("produced_by")
    if tree["seen"]:
        return lines
    if producer is None:
        if tree["artifact"]["type"] != "file":
            lines.append(f"{_INDENT * depth}  (no recorded producer)")
        return lines
    lines += _execution_lines(producer["execution"], depth + 1, "<-")
    for reuse in producer["reused_by"]:
        lines.append(f"{_INDENT * (depth + 1)}  reused ({reuse['state']}) by "
                     f"{reuse['pipeline_run']}/{reuse['step']}")
    for other in producer["also_wrote"]:
        lines.append(f"{_INDENT * (depth + 1)}  also wrote [{other['role']}] {other['type']} "
                     f"{other['uri']} digest {other['digest']}")
    for child in producer["inputs"]:
        lines += _upstream(child, depth + 2)
    return lines


def _downstream(tree: dict, depth: int) -> list[str]:
    lines = _artifact_lines(tree["artifact"], tree["role"], depth, tree["seen"])
    for use in tree.get("consumed_by", []):
        lines += _execution_lines(use["execution"], depth + 1, f"-> (as {use['role']})")
        for child in use["outputs"]:
            lines += _downstream(child, depth + 2)
    return lines


def render(tree: dict[str, Any], direction: str = "upstream") -> str:
    """The tree as indented text: artifacts with digests, the steps between them with
    their parameters and timings."""
    lines = _upstream(tree, 0) if direction == "upstream" else _downstream(tree, 0)
    return "\n".join(lines) + "\n"
