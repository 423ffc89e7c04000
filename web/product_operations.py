"""Operations the product itself offers to BPMN service tasks (not a peer's): e.g. the allowed
calling hours of callbacks. Registered beside the connectors' operations by ``build_registry``."""

from __future__ import annotations

from flask import Flask

from connectors.base import Operation


def operations(app: Flask) -> list[Operation]:
    """The product's own operations."""
    return []
