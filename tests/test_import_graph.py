"""The project's import graph, read with ``ast`` (nothing is imported or run): no cycle
between modules, and the layers of docs/ARCHITECTURE.md hold: the shared ground
(``mlbatch``) imports no job and no pipeline code, and no job imports another job."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("mlbatch", "beam_jobs", "ray_jobs", "pipelines", "scripts")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[:len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def imported(path: Path, module: str, modules: dict[str, Path]) -> set[str]:
    """Project modules that ``path`` imports anywhere (function-level imports included):
    ``from a import b`` is an edge to ``a.b`` when that is a module, else to ``a``."""
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(node, module, path.name == "__init__.py")
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                targets.add(sub if sub in modules else source)
    return {t for t in targets if t in modules and t != module}


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    return {m: imported(p, m, modules) for m, p in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a closed path of modules, or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if state.get(start):
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return None


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_the_graph_covers_the_packages_and_sees_function_level_imports(graph):
    assert {"mlbatch.artifacts.manifest", "pipelines.lineage.store", "pipelines.report.build",
            "beam_jobs.monitor.drift", "ray_jobs.xgboost.driver"} <= set(graph)
    # pipelines/lineage_hook.py imports the lineage store inside its function
    assert "pipelines.lineage" in graph["pipelines.lineage_hook"]


@pytest.mark.parametrize("edges, cycle", [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, ["a", "b", "c", "a"]),
    ({"a": {"b", "c"}, "b": {"c"}, "c": set()}, None),
    ({"a": set(), "b": {"c"}, "c": {"b"}}, ["b", "c", "b"]),
])
def test_find_cycle(edges, cycle):
    assert find_cycle(edges) == cycle


def test_no_import_cycle(graph):
    assert find_cycle(graph) is None


def _imports_from(graph: dict[str, set[str]], importer: str, imported_pkg: str) -> list[str]:
    return sorted(f"{m} -> {t}" for m, ts in graph.items()
                  if m == importer or m.startswith(importer + ".")
                  for t in ts if t == imported_pkg or t.startswith(imported_pkg + "."))


@pytest.mark.parametrize("importer, forbidden", [
    ("mlbatch", "pipelines"), ("mlbatch", "beam_jobs"), ("mlbatch", "ray_jobs"),
    ("mlbatch", "scripts"), ("beam_jobs", "ray_jobs"), ("beam_jobs", "pipelines"),
    ("ray_jobs", "beam_jobs"), ("ray_jobs", "pipelines"), ("beam_jobs", "scripts"),
    ("ray_jobs", "scripts"), ("pipelines", "beam_jobs"), ("pipelines", "ray_jobs"),
    ("pipelines", "scripts"), ("beam_jobs.common", "beam_jobs.tabular"),
])
def test_layers(graph, importer, forbidden):
    assert _imports_from(graph, importer, forbidden) == []


def test_no_job_imports_another_jobs_modules(graph):
    """A job package imports only itself, its half's ``common`` (and, for the Beam jobs that
    read raw tables, ``beam_jobs.tabular``) and ``mlbatch`` (Tune loads the trainers'
    ``tuning`` plug-ins by name, ``importlib``, at run time)."""
    crossing = []
    for m, targets in graph.items():
        half, _, rest = m.partition(".")
        if half not in ("beam_jobs", "ray_jobs") or not rest or rest.startswith("common"):
            continue
        job = rest.split(".")[0]
        for t in targets:
            t_half, _, t_rest = t.partition(".")
            t_job = t_rest.split(".")[0]
            if t_half == half and t_job not in (job, "common", "tabular", ""):
                crossing.append(f"{m} -> {t}")
    assert sorted(crossing) == []


def test_no_function_over_60_lines_in_the_shared_ground():
    """The issue's bar for the library packages (STYLE.md asks ~50)."""
    long = [f"{p.relative_to(ROOT)}:{n.lineno} {n.name} ({n.end_lineno - n.lineno + 1} lines)"
            for pkg in ("mlbatch", "pipelines") for p in sorted((ROOT / pkg).rglob("*.py"))
            for n in ast.walk(ast.parse(p.read_text()))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            and n.end_lineno - n.lineno + 1 > 60]
    assert long == []


def test_models_are_read_only_through_the_model_contract():
    """Outside ``mlbatch.artifacts`` no module calls a model type's own reader: scoring,
    monitoring, the report and the pipeline's figures go through ``load_model``."""
    readers = {"load_xgboost_model", "load_jax_model"}
    users = sorted(f"{module_name(p)}: {n.id if isinstance(n, ast.Name) else n.attr}"
                   for m, p in project_modules().items() if not m.startswith("mlbatch.artifacts")
                   for n in ast.walk(ast.parse(p.read_text()))
                   if (isinstance(n, ast.Name) and n.id in readers)
                   or (isinstance(n, ast.Attribute) and n.attr in readers))
    assert users == []


def exception_classes(sources: dict[str, str]) -> dict[str, list[str]]:
    """Per exception class name, the modules defining it. A class is an exception when a
    base (its last name: ``errors.UsageError`` -> ``UsageError``) is a built-in exception
    or an exception class of ``sources`` (followed to a fixed point)."""
    import builtins

    known = {n for n, v in vars(builtins).items()
             if isinstance(v, type) and issubclass(v, BaseException)}
    classes = [(m, n.name, {b.id if isinstance(b, ast.Name) else b.attr for b in n.bases
                            if isinstance(b, (ast.Name, ast.Attribute))})
               for m, text in sources.items() for n in ast.walk(ast.parse(text))
               if isinstance(n, ast.ClassDef)]
    found: dict[str, set[str]] = {}
    while True:
        new = {(m, name) for m, name, bases in classes
               if bases & (known | set(found)) and m not in found.get(name, ())}
        if not new:
            return {name: sorted(ms) for name, ms in found.items()}
        for m, name in new:
            found.setdefault(name, set()).add(m)


@pytest.mark.parametrize("sources, twice", [
    ({"a": "class AError(ValueError): pass", "b": "class AError(errors.UsageError): pass",
      "errors": "class UsageError(Exception): pass"}, {"AError": ["a", "b"]}),
    ({"a": "class Refused(base.Base): pass", "b": "class Refused(RuntimeError): pass",
      "base": "class Base(KeyError): pass"}, {"Refused": ["a", "b"]}),
    ({"a": "class Spec: pass", "b": "class Spec: pass"}, {}),
])
def test_exception_classes_finds_a_name_defined_twice(sources, twice):
    found = exception_classes(sources)
    assert {n: ms for n, ms in found.items() if len(ms) > 1} == twice


def test_each_exception_class_is_defined_once():
    """One failure, one class: a kind of failure several packages raise lives in
    ``mlbatch.errors`` (ClusterError, PlacementError, WorkerError, ThresholdError), on
    its UsageError / JobError base, and the old import paths re-export it."""
    sources = {m: p.read_text() for m, p in project_modules().items()}
    found = exception_classes(sources)
    assert {n: ms for n, ms in found.items() if len(ms) > 1} == {}
    assert {"UsageError", "JobError", "ClusterError", "PlacementError", "WorkerError",
            "ThresholdError"} <= {n for n, ms in found.items() if ms == ["mlbatch.errors"]}
