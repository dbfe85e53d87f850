"""Questions asked of the lineage store: "which model scored this output, trained on which
data, blessed against which version" (``python -m pipelines.lineage which URI``).

``which_model(store, uri)`` answers for any recorded artifact: the step that produced it
and the raw files it read itself; each nearest model upstream of it (an artifact of a
model type: ``mlbatch.artifacts.models.MODEL_TYPES``; the artifact itself when it is one)
with the step that trained it, the feature artifacts it was trained on and the raw files
under those; the periods named in those steps' parameters; and the model's blessing.

Blessing is the registry's to answer: ``register_blessing_lookup(fn)`` adds a function
``fn(store, model_node) -> dict | None`` (a dict such as ``{"name", "version", "alias",
"blessed_against", "decision"}``); the first non-None answer is the model's ``blessing``.
With none registered, or none answering, ``blessing`` is None ("not recorded").
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mlbatch.artifacts.models import MODEL_TYPES
from pipelines.lineage.graph import find_artifact, upstream_tree
from pipelines.lineage.store import LineageStore

FEATURE_TYPES = ("features",)
FILE_TYPE = "file"

BlessingLookup = Callable[[LineageStore, dict], "dict | None"]
_BLESSING_LOOKUPS: list[BlessingLookup] = []


def register_blessing_lookup(lookup: BlessingLookup) -> None:
    """The registry's hook: ``lookup(store, model_node)`` says which version a model is
    and what it was blessed against (None: it does not know the model)."""
    if lookup not in _BLESSING_LOOKUPS:
        _BLESSING_LOOKUPS.append(lookup)


def unregister_blessing_lookup(lookup: BlessingLookup) -> None:
    if lookup in _BLESSING_LOOKUPS:
        _BLESSING_LOOKUPS.remove(lookup)


def _blessing(store: LineageStore, model: dict) -> dict | None:
    for lookup in _BLESSING_LOOKUPS:
        found = lookup(store, model)
        if found is not None:
            return found
    return None


# A blessing record (the registry's decision, read by a step that takes
# registry:NAME@ALIAS) reads every model it compared: the models a result was computed
# with are the ones its steps read directly, so the walk does not pass through one.
NOT_THROUGH = ("model_evaluation",)


def _nearest(tree: dict, types: tuple[str, ...]) -> list[dict]:
    """The nearest artifacts of ``types`` upstream of the tree's artifact (each the tree
    rooted at it), not looking past one found nor through a blessing record; each once."""
    out: dict[int, dict] = {}
    for child in (tree.get("produced_by") or {}).get("inputs", []):
        kind = child["artifact"]["type"]
        if kind in NOT_THROUGH:
            continue
        for f in [child] if kind in types else _nearest(child, types):
            out.setdefault(f["artifact"]["id"], f)
    return list(out.values())


def _files(tree: dict) -> list[dict]:
    """Every raw file upstream of the tree's artifact, once each, with the role it had."""
    out: dict[int, dict] = {}
    for child in (tree.get("produced_by") or {}).get("inputs", []):
        if child["artifact"]["type"] == FILE_TYPE:
            out.setdefault(child["artifact"]["id"], _file(child))
        for found in _files(child):
            out.setdefault(found["id"], found)
    return list(out.values())


def _file(tree: dict) -> dict:
    a = tree["artifact"]
    return {"id": a["id"], "uri": a["uri"], "role": tree.get("role"),
            "sha256": a["properties"].get("sha256"), "size": a["properties"].get("size")}


def _direct_files(tree: dict) -> list[dict]:
    return [_file(c) for c in (tree.get("produced_by") or {}).get("inputs", [])
            if c["artifact"]["type"] == FILE_TYPE]


def _step(tree: dict) -> dict | None:
    produced = tree.get("produced_by")
    if produced is None:
        return None
    e = produced["execution"]
    params = e.get("params") or {}
    return {"step": e["step"], "job": e["job"], "pipeline_run": e["pipeline_run"],
            "state": e["state"], "params": params,
            "periods": {k: v for k, v in params.items() if "period" in k.lower()}}


def _node(tree: dict) -> dict:
    a = tree["artifact"]
    return {"id": a["id"], "type": a["type"], "uri": a["uri"], "digest": a["digest"],
            "state": a["state"], "role": tree.get("role")}


def _model(store: LineageStore, model_tree: dict) -> dict:
    fresh = upstream_tree(store, model_tree["artifact"]["id"])  # not cut by "seen" nodes
    features = [{"features": _node(f), "produced_by": _step(f), "raw": _files(f)}
                for f in _nearest(fresh, FEATURE_TYPES)]
    node = {**_node(fresh), "role": model_tree.get("role")}
    return {"model": node, "trained_by": _step(fresh), "trained_on": features,
            "blessing": _blessing(store, node)}


def which_model(store: LineageStore, uri: str) -> dict[str, Any]:
    """{"artifact", "produced_by", "read", "models": [{"model", "trained_by",
    "trained_on": [{"features", "produced_by", "raw"}], "blessing"}]} for the artifact
    recorded at ``uri`` (see the module docstring); raises LineageError."""
    tree = upstream_tree(store, find_artifact(store, uri).id)
    models = [tree] if tree["artifact"]["type"] in MODEL_TYPES else _nearest(tree, MODEL_TYPES)
    return {"artifact": _node(tree), "produced_by": _step(tree), "read": _direct_files(tree),
            "models": [_model(store, m) for m in models]}


def _short(digest: str | None) -> str:
    return (digest or "-")[:19]


def _step_text(step: dict | None) -> str:
    if step is None:
        return "(no recorded producer)"
    periods = "".join(f", {k} {v}" for k, v in step["periods"].items())
    return f"step {step['step']} ({step['job']}) of run {step['pipeline_run']}{periods}"


def _file_lines(files: list[dict], pad: str) -> list[str]:
    return [f"{pad}{f['uri']}  sha256:{(f['sha256'] or '-')[:12]}  ({f['role']})"
            for f in files]


def render_which(answer: dict) -> str:
    """The answer of ``which_model`` as text."""
    a = answer["artifact"]
    lines = [f"{a['type']} {a['uri']}  {_short(a['digest'])}",
             f"  made by {_step_text(answer['produced_by'])}"]
    if answer["read"]:
        lines += ["  read data:", *_file_lines(answer["read"], "    ")]
    if not answer["models"]:
        lines.append("  no model upstream of it")
    for m in answer["models"]:
        model = m["model"]
        lines += [f"  model {model['type']} {model['uri']}  {_short(model['digest'])}",
                  f"    trained by {_step_text(m['trained_by'])}"]
        for f in m["trained_on"]:
            lines += [f"    trained on {f['features']['type']} {f['features']['uri']}  "
                      f"{_short(f['features']['digest'])}",
                      f"      made by {_step_text(f['produced_by'])} from:",
                      *_file_lines(f["raw"], "        ")]
        if not m["trained_on"]:
            lines.append("    trained on: no feature artifact recorded")
        blessing = m["blessing"]
        lines.append("    blessing: " + (", ".join(f"{k} {v}" for k, v in blessing.items())
                                         if blessing else "not recorded (no registry entry)"))
    return "\n".join(lines) + "\n"
