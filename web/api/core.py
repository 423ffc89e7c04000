"""REST API: tokens, processes (list, start), escalations and incidents.

Instances and tasks have their own modules (``instances``, ``tasks``); the routes join the
blueprint through ``register``.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, jsonify

from engine import definitions, outbox
from engine.access import allowed
from engine.clock import utcnow
from engine.errors import Forbidden

from ..auth import Throttled, authenticate, issue_token
from ..errors import error_response
from ..escalations import visible_escalations
from ..extensions import db
from ..views_helpers import engine
from .guards import api_login_required
from .openapi import ID, INSTANT, INTEGER, STRING, documented, items_of, nullable, obj
from .shapes import DATA_BODY, data_field, iso, json_body

INCIDENT = obj({"id": ID, "job_id": ID, "instance_id": nullable(ID), "element_id": nullable(STRING),
                "operation": STRING, "kind": STRING, "message": STRING, "opened_at": INSTANT,
                "resolved_at": nullable(INSTANT), "resolved_by": nullable(STRING)})


def register(bp: Blueprint) -> None:
    bp.post("/auth/token")(token)
    bp.post("/auth/logout")(logout)
    bp.get("/processes")(processes)
    bp.post("/processes/<key>/instances")(start_instance)
    bp.get("/escalations")(escalations)
    bp.get("/incidents")(incidents)
    bp.post("/incidents/<int:incident_id>/retry")(retry_incident)


@documented("A bearer token for a user name and password",
            request=obj({"username": STRING, "password": STRING}),
            response=obj({"token": STRING, "username": STRING, "roles": {"type": "array", "items": STRING}}),
            statuses=(401, 429))
def token():
    body = json_body()
    try:
        user = authenticate(str(body.get("username", "")), str(body.get("password", "")))
    except Throttled as exc:
        return error_response(429, "too_many_attempts", str(exc))
    if user is None:
        return error_response(401, "unauthorized", "wrong user name or password")
    return jsonify({"token": issue_token(user), "username": user.username,
                    "roles": sorted(user.role_set)})


@documented("Revoke every token of the caller", status=204)
@api_login_required
def logout():
    """Revoke every token of the caller (this one included)."""
    g.api_user.revoke_tokens()
    db.session.commit()
    return "", 204


@documented("The deployed processes, latest versions",
            response=items_of(obj({"key": STRING, "version": INTEGER, "name": STRING})))
@api_login_required
def processes():
    return jsonify({"items": [{"key": d.key, "version": d.version, "name": d.name}
                              for d in definitions.latest_versions(db.session)]})


@documented("Start a case of a process", request=DATA_BODY, request_required=False, status=201,
            response=obj({"id": ID, "status": STRING, "reference": nullable(STRING)}))
@api_login_required
def start_instance(key: str):
    data = data_field(json_body())
    instance = engine().start(db.session, key, data, actor=g.api_user, now=utcnow())
    db.session.commit()
    return jsonify({"id": instance.id, "status": instance.status,
                    "reference": instance.reference}), 201


@documented("Open escalation alerts the caller may see", response=items_of(obj({
    "id": ID, "instance_id": ID, "reference": nullable(STRING), "task_id": nullable(ID), "title": STRING,
    "level": INTEGER, "target": STRING, "holder": STRING, "due_at": INSTANT, "raised_at": INSTANT,
    "overdue_seconds": INTEGER, "acknowledged_at": nullable(INSTANT), "acknowledged_by": nullable(STRING)})))
@api_login_required
def escalations():
    user = g.api_user
    if not allowed(user, "read_escalations"):
        return jsonify({"items": []})
    now = utcnow()
    return jsonify({"items": [{
        "id": a.escalation.id, "instance_id": a.escalation.instance_id,
        "reference": a.instance.reference, "task_id": a.escalation.task_id,
        "title": a.escalation.title, "level": a.escalation.level, "target": a.escalation.target,
        "holder": a.holder, "due_at": iso(a.escalation.due_at),
        "raised_at": iso(a.escalation.raised_at), "overdue_seconds": int(a.overdue_seconds),
        "acknowledged_at": iso(a.escalation.acknowledged_at), "acknowledged_by": a.acknowledged_by or None,
    } for a in visible_escalations(user, now)]})


@documented("Open connector incidents (administrators)", response=items_of(INCIDENT))
@api_login_required
def incidents():
    if not allowed(g.api_user, "administer"):
        raise Forbidden("only administrators see incidents")
    return jsonify({"items": [_incident(i) for i in outbox.open_incidents(db.session)]})


@documented("Retry an incident's job (administrators)", response=INCIDENT)
@api_login_required
def retry_incident(incident_id: int):
    if not allowed(g.api_user, "administer"):
        raise Forbidden("only administrators retry incidents")
    incident = outbox.retry_incident(db.session, incident_id, actor=g.api_user.username, now=utcnow())
    db.session.commit()
    return jsonify(_incident(incident))


def _incident(incident: outbox.Incident) -> dict[str, Any]:
    return {"id": incident.id, "job_id": incident.job_id, "instance_id": incident.instance_id,
            "element_id": incident.element_id, "operation": incident.operation, "kind": incident.kind,
            "message": incident.message, "opened_at": iso(incident.opened_at),
            "resolved_at": iso(incident.resolved_at), "resolved_by": incident.resolved_by}
