"""REST API: callbacks (routes join ``api.bp``; see README for the contract)."""

from __future__ import annotations

from .api import bp  # noqa: F401
