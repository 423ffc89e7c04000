"""REST API: process instances (cases) — list, read, put on hold and resume."""

from __future__ import annotations

from flask import Blueprint, g, jsonify, request
from sqlalchemy import select

from engine import access
from engine.clock import utcnow
from engine.models import ProcessInstance, instance_events, open_tasks_of_instance

from ..extensions import db
from ..views_helpers import engine
from .guards import api_login_required
from .openapi import ID, INSTANT, STRING, documented, items_of, nullable, obj
from .shapes import INSTANCE, LIST_LIMIT, TASK, group_codes, instance_summary, iso, json_body, task_summary

INSTANCE_DETAIL = {"allOf": [INSTANCE, obj({
    "suspended_at": nullable(INSTANT), "suspend_reason": nullable(STRING), "data": {"type": "object"},
    "tasks": {"type": "array", "items": TASK},
    "events": {"type": "array", "items": obj({"at": INSTANT, "kind": STRING, "actor": nullable(STRING),
                                              "message": nullable(STRING), "task_id": nullable(ID),
                                              "data": {}})}})]}


def register(bp: Blueprint) -> None:
    bp.get("/instances")(list_instances)
    bp.get("/instances/<int:instance_id>")(get_instance)
    bp.post("/instances/<int:instance_id>/suspend")(suspend_instance)
    bp.post("/instances/<int:instance_id>/resume")(resume_instance)


@documented("Cases the caller may see, newest first", response=items_of(INSTANCE),
            query={"customer_phone": STRING, "process_key": STRING, "status": STRING})
@api_login_required
def list_instances():
    query = select(ProcessInstance).order_by(ProcessInstance.id.desc())
    for arg, column in (("customer_phone", ProcessInstance.customer_phone),
                        ("process_key", ProcessInstance.process_key),
                        ("status", ProcessInstance.status)):
        if request.args.get(arg):
            query = query.where(column == request.args[arg])
    user = g.api_user
    rows = [i for i in db.session.scalars(query.limit(LIST_LIMIT))
            if access.may_view_instance(db.session, user, i)]
    return jsonify({"items": [instance_summary(i) for i in rows]})


@documented("A case: its data, open tasks and history", response=INSTANCE_DETAIL)
@api_login_required
def get_instance(instance_id: int):
    eng = engine()
    instance = eng.get_instance(db.session, instance_id, g.api_user)
    groups = group_codes()
    return jsonify({
        **instance_summary(instance),
        "suspended_at": iso(instance.suspended_at), "suspend_reason": instance.suspend_reason,
        "data": eng.workflow_data(db.session, instance),
        "tasks": [task_summary(t, groups) for t in open_tasks_of_instance(db.session, instance.id)],
        "events": [{"at": iso(e.at), "kind": e.kind, "actor": e.actor, "message": e.message,
                    "task_id": e.task_id, "data": e.data}
                   for e in instance_events(db.session, instance.id)],
    })


@documented("Put a case on hold (挂起)", request=obj({"reason": STRING}, []), request_required=False,
            response=INSTANCE)
@api_login_required
def suspend_instance(instance_id: int):
    reason = str(json_body().get("reason", ""))
    instance = engine().suspend(db.session, instance_id, reason, actor=g.api_user, now=utcnow())
    db.session.commit()
    return jsonify(instance_summary(instance))


@documented("Resume a case on hold", response=INSTANCE)
@api_login_required
def resume_instance(instance_id: int):
    instance = engine().resume(db.session, instance_id, actor=g.api_user, now=utcnow())
    db.session.commit()
    return jsonify(instance_summary(instance))
