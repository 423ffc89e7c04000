"""REST API: human tasks — the inbox, a task with its form, claim (or take the next), unclaim and complete."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, g, jsonify, request

from engine import next_task
from engine.clock import utcnow
from engine.errors import NotFound, ValidationFailed
from engine.models import HumanTask, ProcessInstance, inbox_query
from processes import urging
from slas.status import sla_state

from ..extensions import db
from ..views_helpers import engine
from .guards import api_login_required, reads_only
from .openapi import ID, INSTANT, STRING, documented, items_of, nullable, obj
from .shapes import (
    DATA_BODY,
    LIST_LIMIT,
    STATUS,
    TASK,
    data_field,
    group_codes,
    instance_summary,
    iso,
    json_body,
    task_summary,
    usernames,
)

TASK_DETAIL = {"allOf": [TASK, obj({
    "form": {"type": "object"}, "data": {"type": "object"},
    "urges": {"type": "array", "items": obj({"at": INSTANT, "by": nullable(STRING), "note": nullable(STRING)})}})]}


# The list reads plain columns, the task's and three of its case's: building 200 tasks and their
# 200 cases as ORM objects was most of the request's time (the agent's most frequent request).
LIST_COLUMNS = (HumanTask.id, HumanTask.name, HumanTask.title, HumanTask.instance_id, HumanTask.group_id,
                HumanTask.assignee_id, HumanTask.status, HumanTask.created_at, HumanTask.due_at,
                HumanTask.warn_at, ProcessInstance.process_key, ProcessInstance.reference,
                ProcessInstance.status.label("case_status"))


def register(bp: Blueprint) -> None:
    bp.get("/tasks")(list_tasks)
    bp.get("/tasks/<int:task_id>")(get_task)
    bp.post("/tasks/next")(claim_next)
    bp.post("/tasks/<int:task_id>/claim")(claim)
    bp.post("/tasks/<int:task_id>/unclaim")(unclaim)
    bp.post("/tasks/<int:task_id>/complete")(complete)


@documented("Open human tasks: mine (assigned to me) or those of my groups", response=items_of(TASK),
            query={"scope": {"type": "string", "enum": ["mine", "group"], "default": "mine"}})
@api_login_required
@reads_only
def list_tasks():
    scope = request.args.get("scope", "mine")
    if scope not in ("mine", "group"):
        raise ValidationFailed("scope must be mine or group", {"scope": "mine | group"})
    user = g.api_user
    query = (inbox_query(user.id, user.group_ids, scope).with_only_columns(*LIST_COLUMNS)
             .join_from(HumanTask, ProcessInstance, HumanTask.instance_id == ProcessInstance.id)
             .limit(LIST_LIMIT))
    rows = db.session.execute(query).all()
    groups = group_codes()
    names = usernames({r.assignee_id for r in rows if r.assignee_id})
    now = utcnow()
    return jsonify({"items": [_listed(r, groups, names, now) for r in rows]})


def _listed(row: Any, groups: dict[int, str], names: dict[int, str], now: datetime) -> dict[str, Any]:
    """``shapes.task_summary`` of a listed row."""
    return {"id": row.id, "name": row.name, "title": row.title, "instance_id": row.instance_id,
            "process_key": row.process_key, "reference": row.reference,
            "group": groups.get(row.group_id) if row.group_id else None,
            "assignee": names.get(row.assignee_id) if row.assignee_id else None,
            "status": row.status, "created_at": iso(row.created_at), "due_at": iso(row.due_at),
            "sla_state": sla_state(row.due_at, row.warn_at, suspended=row.case_status == "suspended", now=now)
            if row.status == "open" else "none"}


@documented("A task with its form and data", response=TASK_DETAIL)
@api_login_required
def get_task(task_id: int):
    eng = engine()
    task = eng.get_task(db.session, task_id, g.api_user)
    body = task_summary(task, group_codes())
    body["form"] = eng.form_of(db.session, task)
    body["data"] = eng.task_data(db.session, task) if task.status == "open" else {}
    body["urges"] = [{"at": u.at.isoformat(), "by": u.by_name, "note": u.note}
                     for u in urging.urges_of(db.session, task.id)]
    return jsonify(body)


@documented("Claim a task (200 again for its holder)", response=TASK)
@api_login_required
def claim(task_id: int):
    task = engine().claim(db.session, task_id, g.api_user, utcnow())
    body = task_summary(task, group_codes())  # read in the step's transaction: none after commit
    db.session.commit()
    return jsonify(body)


@documented("Take the next task (取下一单): the first free task of my groups, due soonest, claimed at once; "
            "404 when none waits", request=obj({"name": STRING}), request_required=False, response=TASK)
@api_login_required
def claim_next():
    body = json_body()
    name = body.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > 80):
        raise ValidationFailed("name must be a step's name", {"name": "a step name (text, at most 80)"})
    task = next_task.claim_next(engine(), db.session, g.api_user, utcnow(), name or None)
    if task is None:
        raise NotFound("no free task waits in your groups")
    body = task_summary(task, group_codes())
    db.session.commit()
    return jsonify(body)


@documented("Give a task back to its group", response=TASK)
@api_login_required
def unclaim(task_id: int):
    task = engine().unclaim(db.session, task_id, g.api_user, utcnow())
    body = task_summary(task, group_codes())
    db.session.commit()
    return jsonify(body)


@documented("Complete a task with its form's data", request=DATA_BODY, request_required=False,
            response=obj({"id": ID, "status": STRING, "instance_id": ID, "instance_status": STATUS}))
@api_login_required
def complete(task_id: int):
    data = data_field(json_body())
    task = engine().complete_task(db.session, task_id, data, actor=g.api_user, now=utcnow())
    instance = task.instance
    # The answer is read before the commit, which expires every object: reading it after would
    # open a second transaction (on SQLite a second wait for the write lock) to reload them.
    body = {"id": task.id, "status": task.status, "instance_id": instance.id,
            "instance_status": instance_summary(instance)["status"]}
    db.session.commit()
    return jsonify(body)
