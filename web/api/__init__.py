"""The REST API for integrators (IVR/CTI, other systems): bearer tokens, JSON in and out.

Contract (see README): tokens, processes, instances, tasks, escalations, incidents, callbacks,
inbound calls, customers, definitions. Errors are ``{"error", "message", "fields"}`` with
400/401/403/404/409/422.

One blueprint, ``api`` under ``/api/v1``; each module below adds its routes in its ``register(bp)``,
called from ``create_blueprint`` — importing a module registers nothing.

| module | routes |
|---|---|
| ``core`` | ``/auth/token``, ``/processes`` (list, start), ``/escalations``, ``/incidents`` |
| ``instances`` | ``/instances`` (list, read, suspend, resume) |
| ``tasks`` | ``/tasks`` (inbox, read, claim, unclaim, complete) |
| ``definitions`` | ``/definitions`` (deploy, versions, BPMN), ``/connectors/operations``, migration |
| ``callbacks`` | ``/callbacks`` |
| ``calls`` | ``/calls/inbound`` |
| ``customers`` | ``/customers/<phone>`` |
| ``dunning`` | ``/dunning/rounds`` (open, figures) |
| ``urging`` | ``/tasks/<id>/urge`` (催办) |
| ``exchanges`` | ``/exchanges`` (files exchanged with the centres over FTP) |
| ``roaming`` | ``/roaming/dispatches``, ``/roaming/receipts`` (signed, from partners), ``/roaming/transfers`` |
| ``reports`` | ``/reports/complaints`` (complaint statistics, JSON or CSV) |
| ``admin`` | ``/users``, ``/groups`` (administration), ``/users/me/password`` |
| ``roles`` | ``/roles``, ``/permissions`` (roles and their permissions, as data) |
| ``search`` | ``/search?q=`` (cases by number, phone, name, words) |
| ``calendars`` | ``/calendars`` (holidays and 调休 by year), ``/calling-hours/<kind>`` (administrators) |
| ``levels`` | ``/city-groups``, ``/tasks/<id>/city-transfer`` (转接到地市远程坐席), ``/instances/<id>/national-escalation`` (上报全国中心) |
| ``upgrades`` | ``/instances/<id>/upgrade`` (越级投诉, after intake) |

``guards`` holds who may call (bearer token, session, designer roles), ``shapes`` the JSON
bodies and summaries the modules share; a view declares what it takes and answers for the OpenAPI
document (``openapi``: ``/openapi.json``) with ``openapi.documented``; a route without it is still
listed, generically.
"""

from __future__ import annotations

from functools import cache

from flask import Blueprint, Flask

from ..extensions import csrf
from . import (
    admin,
    alerts,
    calendars,
    callbacks,
    calls,
    core,
    customers,
    definitions,
    dunning,
    exchanges,
    instances,
    levels,
    openapi,
    reports,
    roaming,
    roles,
    search,
    tasks,
    upgrades,
    urging,
)

_MODULES = (core, instances, tasks, definitions, callbacks, calls, customers, exchanges, dunning, roaming, reports,
            urging, alerts, admin, roles, calendars, search, levels, upgrades, openapi)


def create_blueprint() -> Blueprint:
    """A new ``api`` blueprint with every module's routes."""
    bp = Blueprint("api", __name__, url_prefix="/api/v1")
    for module in _MODULES:
        module.register(bp)
    return bp


@cache
def blueprint() -> Blueprint:
    """The process's ``api`` blueprint, built on first use; every app registers this same one."""
    return create_blueprint()


def register(app: Flask) -> None:
    """Register the API on ``app``, exempt from CSRF (a guard that accepts the browser's session
    for writing checks its CSRF token itself)."""
    bp = blueprint()
    csrf.exempt(bp)
    app.register_blueprint(bp)
