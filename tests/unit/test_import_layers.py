"""The shared library imports no daemon code, and the agent loads nothing of the API server."""
from __future__ import annotations

import ast
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
DAEMONS = {"agent", "apiserver"}


def imported_roots(tree: ast.AST) -> set[str]:
    """The top-level package of every import anywhere in a module: at module level, under
    `if TYPE_CHECKING:`, in functions and classes (relative imports stay in their package)."""
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_imported_roots_sees_nested_and_type_checking_imports() -> None:
    source = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from agent.x import y\n"
              "def f():\n    import apiserver.z\nclass C:\n    from . import sibling\n")
    assert imported_roots(ast.parse(source)) == {"typing", "agent", "apiserver"}


def test_shipmate_imports_no_daemon_package() -> None:
    offenders = {}
    for path in sorted((ROOT / "shipmate").rglob("*.py")):
        daemons = imported_roots(ast.parse(path.read_text(), str(path))) & DAEMONS
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
