"""The dependency direction of DESIGN.md: only web imports Flask; only engine imports SpiffWorkflow;
engine imports neither slas nor web; slas does not import web."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _imports(package: str) -> set[tuple[str, str]]:
    found = set()
    for path in (ROOT / package).rglob("*.py"):
        tree = ast.parse(path.read_text("utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update((str(path.relative_to(ROOT)), a.name.split(".")[0]) for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add((str(path.relative_to(ROOT)), node.module.split(".")[0]))
    return found


@pytest.mark.parametrize(("package", "forbidden"), [
    ("engine", {"flask", "flask_login", "flask_babel", "flask_wtf", "flask_sqlalchemy", "web", "slas"}),
    ("slas", {"flask", "flask_login", "flask_babel", "flask_wtf", "flask_sqlalchemy", "web", "SpiffWorkflow"}),
])
def test_dependencies_point_one_way(package: str, forbidden: set[str]) -> None:
    bad = sorted(f"{file} imports {module}" for file, module in _imports(package) if module in forbidden)
    assert bad == []


def test_connectors_know_nothing_of_flask_or_the_product() -> None:
    forbidden = {"flask", "flask_login", "flask_babel", "flask_wtf", "flask_sqlalchemy", "web", "slas",
                 "SpiffWorkflow"}
    bad = sorted(f"{file} imports {module}" for file, module in _imports("connectors") if module in forbidden)
    assert bad == []


def test_engine_uses_only_the_connector_interface() -> None:
    """The engine runs operations through connectors.base; it never imports a protocol client."""
    bad = []
    for path in (ROOT / "engine").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            bad += [f"{path.name} imports {n}" for n in names
                    if n.split(".")[0] == "connectors" and n != "connectors.base"]
    assert bad == []


def test_only_engine_imports_spiffworkflow() -> None:
    bad = sorted(f"{file}" for file, module in _imports("web") if module == "SpiffWorkflow")
    assert bad == []
