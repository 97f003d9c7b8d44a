"""The house's shape, checked from the source: localize/'s modules import each other without a
cycle (each step depends only on the steps before it), the run's core stays small, and a shop
is one module plus a line in the registry."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "localize"


def module_name(path: Path) -> str:
    """`pipeline`, `shops`, `shops.akeneo`: a module's name inside the package."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_nodes(tree: ast.Module) -> list[ast.AST]:
    """The module's nodes but those under `if TYPE_CHECKING:` (imported for annotations only,
    never at run time, so they cannot make a cycle)."""
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            skipped.update(id(child) for part in node.body for child in ast.walk(part))
    return [node for node in ast.walk(tree) if id(node) not in skipped]


def imports_of(path: Path, *, annotations: bool = False) -> set[str]:
    """The package's own modules a module imports at run time (relative imports, `from . import x`
    too); with `annotations`, those it imports for type annotations only as well."""
    package = module_name(path).split(".") if path.name == "__init__.py" else module_name(path).split(".")[:-1]
    found: set[str] = set()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree) if annotations else _runtime_nodes(tree):
        if not isinstance(node, ast.ImportFrom) or node.level == 0:
            continue
        base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
        if node.module:
            found.add(".".join([*base, *node.module.split(".")]))
        else:
            found.update(".".join([*base, alias.name]) for alias in node.names)
    return found


def module_graph(*, annotations: bool = False) -> dict[str, set[str]]:
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        # `from .shops.akeneo import x` names a module; `from .shops import Shop` names the package.
        targets = imports_of(path, annotations=annotations)
        graph[name] = {target if target in modules else target.rpartition(".")[0] for target in targets}
    return graph


def test_no_import_cycles_among_the_modules() -> None:
    """Not even through an import made for annotations only: each step depends only on those before it."""
    graph = module_graph(annotations=True)
    assert {"sending.pipeline", "sending.batch", "output.store", "reading.catalog", "shops", "shops.akeneo"} <= set(
        graph
    )  # the scan sees it all
    assert "shops" in graph["reading.catalog"] and "shops.base" in graph["shops.akeneo"]  # ...and its imports
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


def test_the_run_imports_few_of_the_packages_modules() -> None:
    """pipeline.py drives a run through the package's steps: planning (plan.py) and the
    exchange (runner.py) have homes of their own, as shops, checks and files do. It stays under
    800 lines and names at most 15 of the package's modules, annotation-only imports included
    (it named 28 when the runner lived in it)."""
    pipeline = PACKAGE / "sending" / "pipeline.py"
    assert len(pipeline.read_text(encoding="utf-8").splitlines()) < 800
    assert len(module_graph(annotations=True)["sending.pipeline"]) <= 15


def test_no_module_outside_shops_names_a_shops_module() -> None:
    """Adding a shop touches shops/ alone: the rest of the package asks the registry (or the
    Translate & Adapt round trip, which the store-string jobs are built from)."""
    outside = {name: found for name, found in module_graph().items() if not name.startswith("shops")}
    named = {
        (name, target)
        for name, found in outside.items()
        for target in found
        if target.startswith("shops.") and target != "shops.translate_adapt"
    }
    assert named == set()


def reaches(graph: dict[str, set[str]], start: str) -> set[str]:
    """Every module `start` imports, directly or through others."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        for target in graph.get(todo.pop(), ()):
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def test_planning_never_imports_the_runner() -> None:
    """plan.py decides what becomes of each job; the runner (pipeline, batch) carries it out.
    The live run, --check and the dry run all ask the planner, which knows nothing of sending."""
    graph = module_graph()
    plan, pipeline, estimate, check = "planning.plan", "sending.pipeline", "planning.estimate", "planning.staleness"
    assert plan in graph["sending.runner"] and plan in graph[estimate] and plan in graph[check]
    assert reaches(graph, plan).isdisjoint({pipeline, "sending.runner", "sending.batch", "sending.relay", estimate})
    assert reaches(graph, check).isdisjoint({pipeline, "sending.runner", "sending.batch", "sending.relay"})


def test_shops_import_nothing_above_them() -> None:
    """A shop reads and writes files: it knows the catalog's rows, OUT's layout and its own
    settings, not the steps that run jobs or parse options (config asks the registry, not back)."""
    graph = module_graph(annotations=True)
    above = {
        "reading.catalog",
        "planning.jobs",
        "planning.plan",
        "planning.estimate",
        "planning.preview",
        "sending.pipeline",
        "sending.runner",
        "sending.batch",
        "sending.relay",
        "output.merge",
        "cli",
        "config",
    }
    shops = {name: found for name, found in graph.items() if name == "shops" or name.startswith("shops.")}
    runtime = module_graph()
    assert shops and all(found.isdisjoint(above - {"config"}) for found in shops.values())
    assert "shops" not in graph["config"] and all("config" not in runtime[name] for name in shops)


# The stages a listing passes, each a folder; beside them the shops, and the few modules every
# stage leans on.
STAGES = ("reading", "planning", "sending", "checking", "output", "people", "shops")
FOUNDATIONS = {"cli", "config", "errors", "locales", "cost", "tokenizer", "progress", "redact"}


def test_the_folders_are_the_stages() -> None:
    """A newcomer finds where a change goes from the folder names: every module sits in the
    stage it serves, each stage's package says what it holds, and only foundations stay on top."""
    top = {path.stem for path in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    assert top == FOUNDATIONS
    for stage in STAGES:
        package = PACKAGE / stage / "__init__.py"
        assert package.is_file() and ast.get_docstring(ast.parse(package.read_text(encoding="utf-8")))
