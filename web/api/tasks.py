"""REST API: human tasks — the inbox, a task with its form, claim, unclaim and complete."""

from __future__ import annotations

from flask import Blueprint, g, jsonify, request

from engine.clock import utcnow
from engine.errors import ValidationFailed
from engine.models import inbox_query
from processes import urging

from ..extensions import db
from ..views_helpers import engine
from .guards import api_login_required
from .openapi import ID, INSTANT, STRING, documented, items_of, nullable, obj
from .shapes import (
    DATA_BODY,
    LIST_LIMIT,
    STATUS,
    TASK,
    data_field,
    group_codes,
    instance_summary,
    json_body,
    task_summary,
    usernames,
)

TASK_DETAIL = {"allOf": [TASK, obj({
    "form": {"type": "object"}, "data": {"type": "object"},
    "urges": {"type": "array", "items": obj({"at": INSTANT, "by": nullable(STRING), "note": nullable(STRING)})}})]}


def register(bp: Blueprint) -> None:
    bp.get("/tasks")(list_tasks)
    bp.get("/tasks/<int:task_id>")(get_task)
    bp.post("/tasks/<int:task_id>/claim")(claim)
    bp.post("/tasks/<int:task_id>/unclaim")(unclaim)
    bp.post("/tasks/<int:task_id>/complete")(complete)


@documented("Open human tasks: mine (assigned to me) or those of my groups", response=items_of(TASK),
            query={"scope": {"type": "string", "enum": ["mine", "group"], "default": "mine"}})
@api_login_required
def list_tasks():
    scope = request.args.get("scope", "mine")
    if scope not in ("mine", "group"):
        raise ValidationFailed("scope must be mine or group", {"scope": "mine | group"})
    user = g.api_user
    rows = list(db.session.scalars(inbox_query(user.id, user.group_ids, scope).limit(LIST_LIMIT)))
    groups = group_codes()
    names = usernames({t.assignee_id for t in rows if t.assignee_id})
    return jsonify({"items": [task_summary(t, groups, names) for t in rows]})


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
    db.session.commit()
    return jsonify(task_summary(task, group_codes()))


@documented("Give a task back to its group", response=TASK)
@api_login_required
def unclaim(task_id: int):
    task = engine().unclaim(db.session, task_id, g.api_user, utcnow())
    db.session.commit()
    return jsonify(task_summary(task, group_codes()))


@documented("Complete a task with its form's data", request=DATA_BODY, request_required=False,
            response=obj({"id": ID, "status": STRING, "instance_id": ID, "instance_status": STATUS}))
@api_login_required
def complete(task_id: int):
    data = data_field(json_body())
    task = engine().complete_task(db.session, task_id, data, actor=g.api_user, now=utcnow())
    db.session.commit()
    instance = task.instance
    return jsonify({"id": task.id, "status": task.status, "instance_id": instance.id,
                    "instance_status": instance_summary(instance)["status"]})
