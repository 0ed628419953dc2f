"""Import layers, checked from the source (ast, no import is executed): the shared library imports no
daemon code, the agent loads nothing of the API server, and apiserver's own layers.

Every import counts: module level, inside functions and under `if TYPE_CHECKING:` — a
type-only edge is still a dependency between layers, so cycles are fixed by moving code
down a layer, not by hiding the import.
  - Nothing outside apiserver/http/ imports apiserver.http, except apiserver/main.py
    (the composition root that builds the server).
  - No import cycle among apiserver modules (no strongly connected component of more
    than one module).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "apiserver"
HTTP = "apiserver.http"
# The composition root may import every layer.
HTTP_IMPORTERS_ALLOWED = {"apiserver.main"}
# Generated code (protoc output) is left out: it is not ours to arrange.
GENERATED = ("apiserver.storage.etcd_gen",)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def apiserver_modules() -> dict[str, Path]:
    modules = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        name = module_name(path)
        if not name.startswith(GENERATED):
            modules[name] = path
    return modules


def resolve_relative(importer: str, is_package: bool, level: int, module: str | None) -> str:
    base = importer.split(".")
    if not is_package:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def imported_names(importer: str, path: Path) -> set[str]:
    """Every dotted name `path` imports: `from a import b` gives a.b (b may be a module, else
    owning_module resolves a.b to a)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = (
                resolve_relative(importer, is_package, node.level, node.module)
                if node.level
                else node.module or ""
            )
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def owning_module(name: str, modules: dict[str, Path]) -> str | None:
    """The apiserver module `name` refers to: itself, or the closest enclosing module."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph() -> dict[str, set[str]]:
    modules = apiserver_modules()
    graph: dict[str, set[str]] = {}
    for importer, path in modules.items():
        edges = set()
        for name in imported_names(importer, path):
            if not name.startswith(PACKAGE) or name.startswith(GENERATED):
                continue
            target = owning_module(name, modules)
            # Importing a.b also runs a/__init__.py, but that is Python's package machinery, not
            # a dependency of ours: the edge goes to the module named.
            if target and target != importer:
                edges.add(target)
        graph[importer] = edges
    return graph


def strongly_connected_components(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm, iterative (the graph has hundreds of nodes)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[set[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in graph:
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                components.append(component)
    return components


def is_http(module: str) -> bool:
    return module == HTTP or module.startswith(HTTP + ".")


def test_only_http_and_the_composition_root_import_http():
    offenders = sorted(
        f"{importer} imports {target}"
        for importer, targets in import_graph().items()
        if not is_http(importer) and importer not in HTTP_IMPORTERS_ALLOWED
        for target in targets
        if is_http(target)
    )
    assert offenders == []


def test_no_import_cycles_among_apiserver_modules():
    cycles = [sorted(c) for c in strongly_connected_components(import_graph()) if len(c) > 1]
    assert cycles == []


def test_the_graph_sees_function_level_and_type_checking_imports(tmp_path):
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from apiserver.api import API\n"
        "def f():\n"
        "    from . import registry\n"
        "    import apiserver.errors\n"
    )
    path = tmp_path / "mod.py"
    path.write_text(source)
    names = imported_names("apiserver.kinds.mod", path)
    assert {"apiserver.api.API", "apiserver.kinds.registry", "apiserver.errors"} <= names


def test_tarjan_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    components = [c for c in strongly_connected_components(graph) if len(c) > 1]
    assert components == [{"a", "b", "c"}]


# ---------------------------------------------------------------- shipmate/ and the agent
DAEMONS = {"agent", "apiserver"}


def test_shipmate_imports_no_daemon_package() -> None:
    offenders = {}
    for path in sorted((ROOT / "shipmate").rglob("*.py")):
        daemons = {name.split(".")[0] for name in imported_names(module_name(path), path)} & DAEMONS
        if daemons:
            offenders[str(path.relative_to(ROOT))] = sorted(daemons)
    assert offenders == {}


def test_the_agent_entry_point_loads_nothing_of_the_api_server() -> None:
    probe = ("import agent.main, sys; "
             "print(sorted(m for m in sys.modules if m.split('.')[0] == 'apiserver'))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stdout.strip() == "[]"
