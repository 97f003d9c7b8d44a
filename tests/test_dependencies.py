"""Every module the package (or its tests) imports is a dependency pyproject.toml declares.

An undeclared import works only while some other package happens to pull it in (regex came
with tiktoken), and breaks the day that package stops.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
import sys
from importlib import metadata
from pathlib import Path

import pytest

import localize

ROOT = Path(__file__).resolve().parent.parent


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared(*, extra: str | None = None) -> set[str]:
    """Distribution names localize requires, plus those of one extra."""
    names = set()
    for requirement in metadata.requires("localize") or []:
        name = re.match(r"[A-Za-z0-9._-]+", requirement).group(0)
        marker = requirement.partition(";")[2]
        if not marker or (extra and re.search(rf"extra\s*==\s*['\"]{extra}['\"]", marker)):
            names.add(_canonical(name))
    return names


def _third_party_imports(folder: Path) -> dict[str, str]:
    """Top-level modules imported anywhere under `folder`, outside the stdlib and our own."""
    local = {path.stem for path in folder.glob("*.py")} | {"localize"}
    found: dict[str, str] = {}
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top not in sys.stdlib_module_names and top not in local:
                    found.setdefault(top, f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def _undeclared(imports: dict[str, str], declared: set[str]) -> list[str]:
    providers = metadata.packages_distributions()
    missing = []
    for module, where in sorted(imports.items()):
        distributions = {_canonical(dist) for dist in providers.get(module, [module])}
        if not distributions & declared:
            missing.append(f"{module} ({where}) comes from {', '.join(sorted(distributions))}")
    return missing


def test_every_package_import_is_a_declared_dependency() -> None:
    imports = _third_party_imports(ROOT / "localize")
    assert {"typer", "httpx", "regex", "tiktoken"} <= set(imports)  # the scan sees what is there
    assert _undeclared(imports, _declared()) == []


def test_every_test_import_is_declared_for_the_test_install() -> None:
    imports = _third_party_imports(ROOT / "tests")
    assert "pytest" in imports
    assert _undeclared(imports, _declared(extra="test")) == []


def test_an_undeclared_import_is_caught() -> None:
    """The check above can fail: regex without its declaration is reported with where it is used."""
    imports = _third_party_imports(ROOT / "localize")
    missing = _undeclared(imports, _declared() - {"regex"})
    assert len(missing) == 1 and missing[0].startswith("regex (localize/checking/validate.py:")


MODULES = sorted(info.name for info in pkgutil.walk_packages(localize.__path__, "localize."))


@pytest.mark.parametrize("name", [name for name in MODULES if name != "localize.__main__"])  # __main__ runs the CLI
def test_every_module_imports(name: str) -> None:
    assert importlib.import_module(name).__name__ == name
