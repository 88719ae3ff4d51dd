"""The package's layers hold: the core never imports a tool, no import cycle, modules stay short.

Read from the source (AST), so the rules hold for every module, imported by a test or not.
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "urlb"
MAX_LINES = 360  # "modules stay under ~350 lines" (DESIGN.md), with a little slack


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imported(node: ast.AST, current: str) -> list[str]:
    """Modules named by an import statement."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        base = node.module or ""  # the package uses absolute imports only (checked below)
        assert not node.level, f"{current}: relative import; use absolute `from urlb... import`"
        names = [f"{base}.{alias.name}" for alias in node.names]
        return [base, *[n for n in names if n in MODULES]]
    return []


def all_imports(name: str) -> set[str]:
    """Every urlb module ``name`` imports anywhere (function bodies included)."""
    tree = ast.parse(MODULES[name].read_text())
    return {m for node in ast.walk(tree) for m in imported(node, name) if m.startswith("urlb")}


def test_the_core_never_imports_a_tool() -> None:
    core = [name for name in MODULES if not name.startswith("urlb.tools")]
    leaks = {name: sorted(m for m in all_imports(name) if m.startswith("urlb.tools")) for name in core}
    leaks = {name: tools for name, tools in leaks.items() if tools}
    assert not leaks, f"core modules importing tools (offer a hook instead): {leaks}"


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` (module -> modules it imports) as a path, or None.
    A package importing its own submodule is not a cycle (``urlb.envs`` -> ``urlb.envs.walker``)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        path.append(name)
        for dep in sorted(graph.get(name, ())):
            if state.get(dep) == 1 and not name.startswith(dep + "."):
                return path[path.index(dep) :] + [dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        path.pop()
        state[name] = 2
        return None

    for name in graph:
        if name not in state and (cycle := visit(name)):
            return cycle
    return None


def test_no_import_cycle() -> None:
    # Every import counts, those inside functions too: a lazy import only hides a cycle.
    cycle = find_cycle({name: {m for m in all_imports(name) if m in MODULES and m != name} for name in MODULES})
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_find_cycle_reports_cycles_and_only_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"p.sub": {"p"}, "p": set()}) is None


def test_modules_stay_short() -> None:
    long = {name: n for name, p in MODULES.items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them): {long}"
