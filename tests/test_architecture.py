"""The house's shape, checked from the source: localize/'s modules import each other without a
cycle (each step depends only on the steps before it)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "localize"


def imports_of(path: Path) -> set[str]:
    """The package's own modules a module imports (relative imports, `from . import x` too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
    return found


def test_no_import_cycles_among_the_modules() -> None:
    graph = {path.stem: imports_of(path) for path in PACKAGE.glob("*.py")}
    assert {"pipeline", "batch", "store", "catalog"} <= set(graph)  # the scan sees the package
    cycles = []

    def visit(module: str, trail: list[str]) -> None:
        if module in trail:
            cycles.append(trail[trail.index(module) :] + [module])
            return
        for imported in sorted(graph.get(module, ())):
            visit(imported, [*trail, module])

    for module in sorted(graph):
        visit(module, [])
    assert cycles == []
