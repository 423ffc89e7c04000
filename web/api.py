"""The REST API for integrators (IVR/CTI, other systems): bearer tokens, JSON in and out.

Contract (see README): tokens, processes, instances, tasks, escalations. Errors are
``{"error", "message", "fields"}`` with 400/401/403/404/409/422.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Blueprint, g, jsonify, request
from flask_login import current_user
from sqlalchemy import select

from engine import definitions, outbox
from engine.clock import utcnow
from engine.errors import Forbidden, ValidationFailed
from engine.models import (
    HumanTask,
    ProcessInstance,
    inbox_query,
    instance_events,
    open_tasks_of_instance,
)
from engine.people import Group, User

from .auth import authenticate, issue_token, user_from_token
from .errors import error_response
from .escalations import visible_escalations
from .extensions import db
from .views_helpers import engine, task_sla_state

bp = Blueprint("api", __name__, url_prefix="/api/v1")
LIST_LIMIT = 200


def bearer_user() -> User | None:
    """The user of the request's ``Authorization: Bearer`` token (None without a valid one)."""
    header = request.headers.get("Authorization", "")
    return user_from_token(header[7:].strip()) if header.lower().startswith("bearer ") else None


def api_login_required(view: Callable) -> Callable:
    """A bearer token, or (for reading only) the browser's signed-in session."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        user = bearer_user()
        if user is None and request.method == "GET" and current_user.is_authenticated:
            user = current_user._get_current_object()
        if user is None:
            return error_response(401, "unauthorized", "a valid bearer token is required")
        g.api_user = user
        return view(*args, **kwargs)

    return wrapped


def _json_body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if body is None and request.get_data():
        raise ValidationFailed("the body is not valid JSON", {"body": "malformed JSON"})
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise ValidationFailed("the body must be a JSON object", {"body": "not an object"})
    return body


def _data_field(body: dict[str, Any]) -> dict[str, Any]:
    data = body.get("data", {})
    if not isinstance(data, dict):
        raise ValidationFailed("'data' must be an object", {"data": "not an object"})
    return data


@bp.post("/auth/token")
def token():
    body = _json_body()
    user = authenticate(str(body.get("username", "")), str(body.get("password", "")))
    if user is None:
        return error_response(401, "unauthorized", "wrong user name or password")
    return jsonify({"token": issue_token(user), "username": user.username,
                    "roles": sorted(user.role_set)})


@bp.get("/processes")
@api_login_required
def processes():
    return jsonify({"items": [{"key": d.key, "version": d.version, "name": d.name}
                              for d in definitions.latest_versions(db.session)]})


@bp.post("/processes/<key>/instances")
@api_login_required
def start_instance(key: str):
    data = _data_field(_json_body())
    instance = engine().start(db.session, key, data, actor=g.api_user, now=utcnow())
    db.session.commit()
    return jsonify({"id": instance.id, "status": instance.status,
                    "reference": instance.reference}), 201


@bp.get("/instances")
@api_login_required
def list_instances():
    query = select(ProcessInstance).order_by(ProcessInstance.id.desc())
    for arg, column in (("customer_phone", ProcessInstance.customer_phone),
                        ("process_key", ProcessInstance.process_key),
                        ("status", ProcessInstance.status)):
        if request.args.get(arg):
            query = query.where(column == request.args[arg])
    user = g.api_user
    eng = engine()
    rows = [i for i in db.session.scalars(query.limit(LIST_LIMIT))
            if eng.may_view_instance(db.session, user, i)]
    return jsonify({"items": [_instance_summary(i) for i in rows]})


def _instance_summary(instance: ProcessInstance) -> dict[str, Any]:
    # The contract's statuses are running | completed | cancelled | error: a case on hold (挂起)
    # is still running, with ``suspended`` true.
    suspended = instance.status == "suspended"
    return {"id": instance.id, "reference": instance.reference, "process_key": instance.process_key,
            "version": instance.definition.version, "status": "running" if suspended else instance.status,
            "suspended": suspended,
            "customer_phone": instance.customer_phone, "created_at": _iso(instance.created_at),
            "completed_at": _iso(instance.completed_at)}


@bp.get("/instances/<int:instance_id>")
@api_login_required
def get_instance(instance_id: int):
    eng = engine()
    instance = eng.get_instance(db.session, instance_id, g.api_user)
    groups = _group_codes()
    return jsonify({
        **_instance_summary(instance),
        "suspended_at": _iso(instance.suspended_at), "suspend_reason": instance.suspend_reason,
        "data": eng.workflow_data(db.session, instance),
        "tasks": [_task_summary(t, groups) for t in open_tasks_of_instance(db.session, instance.id)],
        "events": [{"at": _iso(e.at), "kind": e.kind, "actor": e.actor, "message": e.message,
                    "task_id": e.task_id, "data": e.data}
                   for e in instance_events(db.session, instance.id)],
    })


@bp.post("/instances/<int:instance_id>/suspend")
@api_login_required
def suspend_instance(instance_id: int):
    reason = str(_json_body().get("reason", ""))
    instance = engine().suspend(db.session, instance_id, reason, actor=g.api_user, now=utcnow())
    db.session.commit()
    return jsonify(_instance_summary(instance))


@bp.post("/instances/<int:instance_id>/resume")
@api_login_required
def resume_instance(instance_id: int):
    instance = engine().resume(db.session, instance_id, actor=g.api_user, now=utcnow())
    db.session.commit()
    return jsonify(_instance_summary(instance))


def _group_codes() -> dict[int, str]:
    return {gid: code for gid, code in db.session.execute(select(Group.id, Group.code))}


def _usernames(ids: set[int]) -> dict[int, str]:
    return {uid: name for uid, name in db.session.execute(
        select(User.id, User.username).where(User.id.in_(ids)))}


def _task_summary(task: HumanTask, groups: dict[int, str],
                  names: dict[int, str] | None = None) -> dict[str, Any]:
    if names is None:
        names = _usernames({task.assignee_id} if task.assignee_id else set())
    return {"id": task.id, "name": task.name, "title": task.title, "instance_id": task.instance_id,
            "process_key": task.instance.process_key, "reference": task.instance.reference,
            "group": groups.get(task.group_id) if task.group_id else None,
            "assignee": names.get(task.assignee_id) if task.assignee_id else None,
            "status": task.status, "created_at": _iso(task.created_at), "due_at": _iso(task.due_at),
            "sla_state": task_sla_state(task)}


@bp.get("/tasks")
@api_login_required
def list_tasks():
    scope = request.args.get("scope", "mine")
    if scope not in ("mine", "group"):
        raise ValidationFailed("scope must be mine or group", {"scope": "mine | group"})
    user = g.api_user
    rows = list(db.session.scalars(inbox_query(user.id, user.group_ids, scope).limit(LIST_LIMIT)))
    groups = _group_codes()
    names = _usernames({t.assignee_id for t in rows if t.assignee_id})
    return jsonify({"items": [_task_summary(t, groups, names) for t in rows]})


@bp.get("/tasks/<int:task_id>")
@api_login_required
def get_task(task_id: int):
    eng = engine()
    task = eng.get_task(db.session, task_id, g.api_user)
    body = _task_summary(task, _group_codes())
    body["form"] = eng.form_of(db.session, task)
    body["data"] = eng.task_data(db.session, task) if task.status == "open" else {}
    return jsonify(body)


@bp.post("/tasks/<int:task_id>/claim")
@api_login_required
def claim(task_id: int):
    task = engine().claim(db.session, task_id, g.api_user, utcnow())
    db.session.commit()
    return jsonify(_task_summary(task, _group_codes()))


@bp.post("/tasks/<int:task_id>/unclaim")
@api_login_required
def unclaim(task_id: int):
    task = engine().unclaim(db.session, task_id, g.api_user, utcnow())
    db.session.commit()
    return jsonify(_task_summary(task, _group_codes()))


@bp.post("/tasks/<int:task_id>/complete")
@api_login_required
def complete(task_id: int):
    data = _data_field(_json_body())
    task = engine().complete_task(db.session, task_id, data, actor=g.api_user, now=utcnow())
    db.session.commit()
    instance = task.instance
    return jsonify({"id": task.id, "status": task.status, "instance_id": instance.id,
                    "instance_status": _instance_summary(instance)["status"]})


@bp.get("/escalations")
@api_login_required
def escalations():
    user = g.api_user
    if not user.has_role("manager", "leader"):
        return jsonify({"items": []})
    now = utcnow()
    return jsonify({"items": [{
        "id": a.escalation.id, "instance_id": a.escalation.instance_id,
        "reference": a.instance.reference, "task_id": a.escalation.task_id,
        "title": a.escalation.title, "level": a.escalation.level, "target": a.escalation.target,
        "holder": a.holder, "due_at": _iso(a.escalation.due_at),
        "raised_at": _iso(a.escalation.raised_at), "overdue_seconds": int(a.overdue_seconds),
    } for a in visible_escalations(user, now)]})


@bp.get("/incidents")
@api_login_required
def incidents():
    if not g.api_user.has_role("admin"):
        raise Forbidden("only administrators see incidents")
    return jsonify({"items": [_incident(i) for i in outbox.open_incidents(db.session)]})


@bp.post("/incidents/<int:incident_id>/retry")
@api_login_required
def retry_incident(incident_id: int):
    if not g.api_user.has_role("admin"):
        raise Forbidden("only administrators retry incidents")
    incident = outbox.retry_incident(db.session, incident_id, actor=g.api_user.username, now=utcnow())
    db.session.commit()
    return jsonify(_incident(incident))


def _incident(incident: outbox.Incident) -> dict[str, Any]:
    return {"id": incident.id, "job_id": incident.job_id, "instance_id": incident.instance_id,
            "element_id": incident.element_id, "operation": incident.operation, "kind": incident.kind,
            "message": incident.message, "opened_at": _iso(incident.opened_at),
            "resolved_at": _iso(incident.resolved_at), "resolved_by": incident.resolved_by}


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None
