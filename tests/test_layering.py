"""The dependency direction of docs/architecture.md, checked on every import of the product:

    web → processes → slas → engine → connectors.base;  connectors and peers stand alone.

Only web imports Flask; only engine imports SpiffWorkflow; no product package imports tests, and
nothing imports web."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FLASK = {"flask", "flask_login", "flask_babel", "flask_wtf", "flask_sqlalchemy", "flask_migrate"}
PRODUCT = ("engine", "slas", "connectors", "processes", "peers", "web")


def _imports(package: str) -> set[tuple[str, str]]:
    """(file, imported module) for every absolute import in ``package`` (relative ones stay inside)."""
    found = set()
    for path in (ROOT / package).rglob("*.py"):
        tree = ast.parse(path.read_text("utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update((str(path.relative_to(ROOT)), a.name) for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add((str(path.relative_to(ROOT)), node.module))
    return found


# package → top-level modules it must never import (a back-arrow or a layer it may not see)
FORBIDDEN = {
    "engine": FLASK | {"web", "slas", "processes", "peers", "tests"},
    "slas": FLASK | {"web", "processes", "peers", "tests", "SpiffWorkflow"},
    "processes": FLASK | {"web", "peers", "tests", "SpiffWorkflow"},
    "connectors": FLASK | {"web", "slas", "processes", "engine", "peers", "tests", "SpiffWorkflow"},
    "peers": FLASK | {"web", "slas", "processes", "engine", "connectors", "tests", "pytest"},
    "web": {"tests", "SpiffWorkflow"},
}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_dependencies_point_one_way(package: str) -> None:
    bad = sorted(f"{file} imports {module}" for file, module in _imports(package)
                 if module.split(".")[0] in FORBIDDEN[package])
    assert bad == []


def test_every_product_package_is_checked() -> None:
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()} - {"tests", "bench", "migrations"}
    assert packages == set(PRODUCT) and set(FORBIDDEN) == set(PRODUCT)


def test_engine_uses_only_the_connector_interface() -> None:
    """The engine runs operations through connectors.base; it never imports a protocol client."""
    bad = sorted(f"{file} imports {module}" for file, module in _imports("engine")
                 if module.split(".")[0] == "connectors" and module != "connectors.base")
    assert bad == []


def test_processes_use_only_the_connector_interface() -> None:
    """Product processes call peers through operations (the outbox), never a protocol client."""
    bad = sorted(f"{file} imports {module}" for file, module in _imports("processes")
                 if module.split(".")[0] == "connectors" and module not in ("connectors.base",)
                 and not module.startswith("connectors.billing.simulator"))
    assert bad == []
