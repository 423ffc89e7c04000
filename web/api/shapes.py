"""The API's JSON shapes: reading a request's body, writing instances, tasks and timestamps."""

from __future__ import annotations

from typing import Any

from flask import request
from sqlalchemy import select

from engine.errors import ValidationFailed
from engine.models import HumanTask, ProcessInstance
from engine.people import Group, User

from ..extensions import db
from ..views_helpers import task_sla_state
from .openapi import BOOLEAN, ID, INSTANT, INTEGER, STRING, component, nullable, obj

LIST_LIMIT = 200  # the most items a list answers with

# The schemas of the shapes below (OpenAPI, web/api/openapi.py): keep them in step.
DATA_BODY = obj({"data": {"type": "object", "description": "the case's or the form's fields"}}, [])
STATUS = {"type": "string", "enum": ["running", "completed", "cancelled", "error"]}
INSTANCE = component("Instance", obj({
    "id": ID, "reference": nullable(STRING), "process_key": STRING, "version": INTEGER, "status": STATUS,
    "suspended": BOOLEAN, "customer_phone": nullable(STRING), "created_at": nullable(INSTANT),
    "completed_at": nullable(INSTANT)}))
TASK = component("Task", obj({
    "id": ID, "name": STRING, "title": STRING, "instance_id": ID, "process_key": STRING,
    "reference": nullable(STRING), "group": nullable(STRING), "assignee": nullable(STRING), "status": STRING,
    "created_at": nullable(INSTANT), "due_at": nullable(INSTANT), "sla_state": STRING}))


def json_body() -> dict[str, Any]:
    """The request's JSON object ({} for an empty body); ValidationFailed for anything else."""
    body = request.get_json(silent=True)
    if body is None and request.get_data():
        raise ValidationFailed("the body is not valid JSON", {"body": "malformed JSON"})
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise ValidationFailed("the body must be a JSON object", {"body": "not an object"})
    return body


def data_field(body: dict[str, Any]) -> dict[str, Any]:
    """The body's ``data`` object ({} when absent)."""
    data = body.get("data", {})
    if not isinstance(data, dict):
        raise ValidationFailed("'data' must be an object", {"data": "not an object"})
    return data


def iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def instance_summary(instance: ProcessInstance) -> dict[str, Any]:
    # The contract's statuses are running | completed | cancelled | error: a case on hold (挂起)
    # is still running, with ``suspended`` true.
    suspended = instance.status == "suspended"
    return {"id": instance.id, "reference": instance.reference, "process_key": instance.process_key,
            "version": instance.definition.version, "status": "running" if suspended else instance.status,
            "suspended": suspended,
            "customer_phone": instance.customer_phone, "created_at": iso(instance.created_at),
            "completed_at": iso(instance.completed_at)}


def group_codes() -> dict[int, str]:
    return {gid: code for gid, code in db.session.execute(select(Group.id, Group.code))}


def usernames(ids: set[int]) -> dict[int, str]:
    return {uid: name for uid, name in db.session.execute(
        select(User.id, User.username).where(User.id.in_(ids)))}


def task_summary(task: HumanTask, groups: dict[int, str],
                 names: dict[int, str] | None = None) -> dict[str, Any]:
    if names is None:
        names = usernames({task.assignee_id} if task.assignee_id else set())
    return {"id": task.id, "name": task.name, "title": task.title, "instance_id": task.instance_id,
            "process_key": task.instance.process_key, "reference": task.instance.reference,
            "group": groups.get(task.group_id) if task.group_id else None,
            "assignee": names.get(task.assignee_id) if task.assignee_id else None,
            "status": task.status, "created_at": iso(task.created_at), "due_at": iso(task.due_at),
            "sla_state": task_sla_state(task)}
