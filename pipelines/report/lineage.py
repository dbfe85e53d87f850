"""The Lineage section: raw files -> features -> models -> predictions -> drift, drawn from
the ``lineage`` of every step's ``artifact.json`` (inputs matched by digest), so it needs
no lineage store."""
from __future__ import annotations

import collections
import dataclasses
import hashlib

from pipelines.report import figures
from pipelines.report.blocks import Figure, Section, Text, short_digest, table
from pipelines.report.run import Run, Step

MAX_FILES_SHOWN = 3  # more raw files of one role in one consumer become one node


@dataclasses.dataclass
class Node:
    key: str
    label: str
    kind: str  # "file" | artifact type | "failed"
    digest: str | None = None
    wall_s: float | None = None
    size: int | None = None
    inputs: list[str] = dataclasses.field(default_factory=list)
    uri: str | None = None  # a file node's path (to tell same-named files apart)


class Graph:
    def __init__(self, run: Run):
        self.run = run
        self.nodes: dict[str, Node] = {}
        self.steps = run.by_digest()

    def artifact(self, digest: str, type_: str, uri: str) -> Node:
        if digest not in self.nodes:
            step = self.steps.get(digest)
            label = step.name if step else f"{type_}: {uri.rstrip('/').rsplit('/', 1)[-1]}"
            wall = (step.manifest.doc.get("timings", {}).get("wall_s") if step else None)
            self.nodes[digest] = Node(digest, label, type_, digest, wall)
        return self.nodes[digest]

    def files(self, consumer: Node, entries: list[dict]) -> None:
        by_role = collections.defaultdict(list)
        for e in entries:
            by_role[e.get("role", "file")].append(e)
        for role, group in by_role.items():
            if len(group) > MAX_FILES_SHOWN:  # one node per set of files, whoever reads it
                ids = sorted(e.get("sha256") or e["uri"] for e in group)
                key = "files:" + hashlib.sha256("\n".join(ids).encode()).hexdigest()
                self.nodes.setdefault(key, Node(key, f"{len(group)} {role} files", "file",
                                                size=sum(e.get("size") or 0 for e in group)))
                self._edge(key, consumer)
                continue
            for e in group:
                key = e.get("sha256") or e["uri"]
                name = e["uri"].rstrip("/").rsplit("/", 1)[-1]
                self.nodes.setdefault(key, Node(key, name, "file", e.get("sha256"),
                                                size=e.get("size"), uri=e["uri"]))
                self._edge(key, consumer)

    def _edge(self, key: str, consumer: Node) -> None:
        if key not in consumer.inputs:
            consumer.inputs.append(key)

    def walk(self, consumer: Node, lineage: list[dict]) -> None:
        self.files(consumer, [e for e in lineage if e.get("kind") == "file"])
        for e in lineage:
            if e.get("kind") == "artifact" and e.get("digest"):
                node = self.artifact(e["digest"], e.get("type", "?"), e.get("uri", "?"))
                self._edge(node.key, consumer)
                self.walk(node, e.get("lineage", []))

    def add_step(self, step: Step) -> None:
        if step.manifest is None:
            node = self.nodes.setdefault(f"step:{step.name}", Node(
                f"step:{step.name}", step.name, step.status))
            for name in step.info.get("inputs", []):
                other = next((s for s in self.run.steps if s.name == name), None)
                if other is not None and other.manifest is not None:
                    self._edge(other.manifest.digest, node)
            return
        m = step.manifest
        self.walk(self.artifact(m.digest, m.type, m.root), m.doc.get("lineage", []))


def name_files_apart(nodes: dict[str, Node]) -> None:
    """Files of one name but different content (a period's flights.csv beside another's)
    are labelled with as many trailing path parts as tell them apart
    (``period=2013-10/flights.csv``), not by their hash."""
    by_label = collections.defaultdict(list)
    for n in nodes.values():
        if n.kind == "file" and n.uri:
            by_label[n.label].append(n)
    for same in (group for group in by_label.values() if len(group) > 1):
        parts = [n.uri.rstrip("/").split("/") for n in same]
        for depth in range(2, max(len(p) for p in parts) + 1):
            labels = ["/".join(p[-depth:]) for p in parts]
            if len(set(labels)) == len(labels):
                break
        for n, label in zip(same, labels):
            n.label = label


def build_graph(run: Run) -> dict[str, Node]:
    g = Graph(run)
    for step in run.steps:  # committed steps first: failed ones point at them
        if step.manifest is not None:
            g.add_step(step)
    for step in run.steps:
        if step.manifest is None:
            g.add_step(step)
    name_files_apart(g.nodes)
    return g.nodes


def depths(nodes: dict[str, Node]) -> dict[str, int]:
    """Longest path from a source: the column of each node."""
    out: dict[str, int] = {}

    def depth(key: str, seen: frozenset = frozenset()) -> int:
        if key not in out:
            parents = [p for p in nodes[key].inputs if p in nodes and p not in seen]
            out[key] = 1 + max((depth(p, seen | {key}) for p in parents), default=-1)
        return out[key]
    for key in nodes:
        depth(key)
    return out


def _box_text(n: Node) -> str:
    lines = [n.label if len(n.label) <= 28 else n.label[:27] + "…"]
    if n.kind != "file":
        lines.append(n.kind + (f" · {short_digest(n.digest, 8)}" if n.digest else ""))
    elif n.digest:
        lines.append(f"sha256 {short_digest(n.digest, 8)}")
    if n.wall_s is not None:
        lines.append(f"{n.wall_s:.1f} s")
    return "\n".join(lines)


def draw(nodes: dict[str, Node]) -> bytes:
    col = depths(nodes)
    columns = collections.defaultdict(list)
    for key in nodes:
        columns[col[key]].append(key)
    n_cols, n_rows = max(columns) + 1, max(len(v) for v in columns.values())
    fig = figures.figure(figures.MAX_WIDTH_IN, max(2.5, 0.85 * n_rows + 0.6))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(-0.6, n_cols - 0.4)
    ax.set_ylim(-0.6, n_rows - 0.4)
    ax.axis("off")
    pos = {}
    for c, keys in columns.items():
        offset = (n_rows - len(keys)) / 2
        for r, key in enumerate(keys):
            pos[key] = (c, n_rows - 1 - (offset + r))
    colors = {"file": "#eeeeee", "failed": "#f4b6b6", "skipped": "#dddddd"}
    for key, n in nodes.items():
        for p in n.inputs:
            if p in pos:
                ax.annotate("", xy=pos[key], xytext=pos[p], arrowprops=dict(
                    arrowstyle="->", color="#777777", shrinkA=38, shrinkB=38))
    for key, n in nodes.items():
        ax.text(*pos[key], _box_text(n), ha="center", va="center", fontsize=7.5,
                bbox=dict(boxstyle="round", facecolor=colors.get(n.kind, "#dbe6f4"),
                          edgecolor="#555555"))
    return figures.to_png(fig)


def lineage_section(run: Run) -> Section:
    nodes = build_graph(run)
    if not nodes:
        return Section("lineage", "Lineage", (Text("Not in this run: no step committed an "
                                                   "artifact.", "note"),), present=False)
    by_key = {k: n.label for k, n in nodes.items()}
    rows = [[n.label, n.kind, short_digest(n.digest), n.size, n.wall_s,
             ", ".join(by_key.get(p, p) for p in n.inputs)] for n in nodes.values()]
    return Section("lineage", "Lineage", (
        Figure("lineage", draw(nodes), "lineage graph", "From raw files to every artifact of "
               "the run (from each artifact.json's lineage, matched by digest)"),
        table(["node", "kind", "digest / sha256", "bytes", "wall s", "inputs"], rows,
              "Lineage nodes")), shown=tuple(s.name for s in run.steps if s.manifest))
