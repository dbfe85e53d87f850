"""python -m pipelines.model_registry [--registry STORE] [--json] COMMAND ...

    list [NAME]                    names, or one name's versions with their aliases
    show NAME@ALIAS | NAME/VERSION one version: URI, digest, metrics, aliases, history
    register NAME MODEL_DIR        registers a committed model (its next version)
    alias NAME ALIAS VERSION       sets or moves an alias (e.g. blessed, candidate)
    rollback NAME [ALIAS]          moves ALIAS (default blessed) back to its previous version
    history NAME [ALIAS]           every alias move, oldest first

The store: --registry, else $MLBATCH_REGISTRY (a SQLite lineage store; created by the
first write). Exit 2 names what is missing (docs/registry.md).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from mlbatch import logs
from mlbatch.artifacts import ArtifactError
from mlbatch.artifacts.registry import ENV, REF_PREFIX, parse_ref
from mlbatch.metrics import format_number
from pipelines.lineage import LineageError, LineageStore
from pipelines.model_registry.store import ModelRegistry, Version

PROG = "python -m pipelines.model_registry"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--registry", default=None, help=f"the store (default ${ENV})")
    p.add_argument("--json", action="store_true", help="print JSON")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("list").add_argument("name", nargs="?")
    sub.add_parser("show").add_argument("ref", help="NAME@ALIAS or NAME/VERSION")
    reg = sub.add_parser("register")
    reg.add_argument("name")
    reg.add_argument("model")
    alias = sub.add_parser("alias")
    alias.add_argument("name")
    alias.add_argument("alias")
    alias.add_argument("version", type=int)
    alias.add_argument("--reason", default=None)
    back = sub.add_parser("rollback")
    back.add_argument("name")
    back.add_argument("alias", nargs="?", default="blessed")
    back.add_argument("--reason", default=None)
    hist = sub.add_parser("history")
    hist.add_argument("name")
    hist.add_argument("alias", nargs="?")
    return p.parse_args(argv)


def _store(args: argparse.Namespace, write: bool) -> LineageStore:
    path = args.registry or os.environ.get(ENV)
    if not path:
        raise LineageError(f"no registry store: pass --registry or set {ENV}")
    if not write and not os.path.isfile(path):
        raise LineageError(f"registry store {path} does not exist")
    return LineageStore(path)


def _version_line(v: Version) -> str:
    metrics = " ".join(f"{k}={format_number(v.metrics[k], 6)}" for k in sorted(v.metrics)
                       if isinstance(v.metrics[k], (int, float)))
    note = v.metrics.get("loss_note")
    aliases = f"  [{', '.join(v.aliases)}]" if v.aliases else ""
    return (f"{v.name}/{v.version}{aliases}  {v.model_type}  {v.digest[:19]}  {v.uri}"
            + (f"\n    {metrics}" if metrics else "") + (f"\n    ({note})" if note else ""))


def _show(reg: ModelRegistry, ref: str) -> dict:
    name, alias, version = parse_ref(REF_PREFIX + ref)
    v = reg.get(name, alias if alias is not None else version)
    moves = [m for m in reg.history(name) if m["version"] == v.version]
    return {**v.to_dict(), "alias_moves": moves}


def _command(args: argparse.Namespace, reg: ModelRegistry) -> object:
    if args.command == "list":
        if args.name:
            return [v.to_dict() for v in reg.versions(args.name)]
        return {n: {"versions": len(reg.versions(n)), "aliases": reg.aliases(n)}
                for n in reg.names()}
    if args.command == "show":
        return _show(reg, args.ref)
    if args.command == "register":
        return reg.register(args.name, args.model).to_dict()
    if args.command == "alias":
        return reg.set_alias(args.name, args.alias, args.version, reason=args.reason)
    if args.command == "rollback":
        return reg.rollback(args.name, args.alias, reason=args.reason)
    return reg.history(args.name, args.alias)


def _text(args: argparse.Namespace, result: object) -> str:
    if args.command == "list" and args.name:
        return "\n".join(_version_line(Version(**v)) for v in result)
    if args.command == "list":
        return "\n".join(f"{n}  {d['versions']} versions  " + " ".join(
            f"{a}={v}" for a, v in d["aliases"].items()) for n, d in result.items())
    if args.command in ("alias", "rollback"):
        return (f"{result['model_name']}@{result['alias']}: {result.get('previous')} -> "
                f"{result['version']} ({result['action']})")
    if args.command == "history":
        return "\n".join(f"{m['at']}  {m['model_name']}@{m['alias']}: {m.get('previous')} -> "
                         f"{m['version']} ({m['action']}"
                         + (f", against {m['baseline']}" if m.get("baseline") else "") + ")"
                         for m in result)
    return json.dumps(result, indent=2, sort_keys=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    write = args.command in ("register", "alias", "rollback")
    try:
        with _store(args, write) as store:
            result = _command(args, ModelRegistry(store))
    except (ArtifactError, LineageError) as e:
        sys.stderr.write(f"{PROG}: error: {e}\n")
        return 2
    out = json.dumps(result, indent=2, sort_keys=True) if args.json else _text(args, result)
    sys.stdout.write(out + "\n")
    return 0


if __name__ == "__main__":
    logs.setup()
    sys.exit(main())
