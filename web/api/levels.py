"""REST API: the organisational levels — ``GET /api/v1/city-groups`` (the city centres' groups),
``POST /api/v1/tasks/<id>/city-transfer`` (转接到地市远程坐席, processes/city_transfer.py) and
``POST /api/v1/instances/<id>/national-escalation`` (上报全国中心, processes/national.py)."""

from __future__ import annotations

from flask import Blueprint, current_app, g, jsonify

from engine.clock import utcnow
from processes import city_transfer, national

from ..extensions import db
from ..views_helpers import engine
from .guards import api_login_required
from .openapi import ID, INSTANT, STRING, documented, items_of, nullable, obj
from .shapes import json_body

GROUP = obj({"code": STRING, "name": STRING, "name_en": STRING, "city": nullable(STRING)})


def register(bp: Blueprint) -> None:
    bp.get("/city-groups")(list_city_groups)
    bp.post("/tasks/<int:task_id>/city-transfer")(transfer_task)
    bp.post("/instances/<int:instance_id>/national-escalation")(escalate_instance)


@documented("The city centres' groups (地市中心) steps can be transferred to", response=items_of(GROUP))
@api_login_required
def list_city_groups():
    return jsonify({"items": [{"code": c.code, "name": c.name, "name_en": c.name_en, "city": c.city}
                              for c in city_transfer.city_groups(db.session)]})


@documented("Transfer an open step to a city's remote seat (转接到地市远程坐席)",
            request=obj({"group": STRING, "reason": STRING}),
            response=obj({"task_id": ID, "group": STRING, "city": nullable(STRING), "at": INSTANT}))
@api_login_required
def transfer_task(task_id: int):
    body = json_body()
    group, reason = body.get("group"), body.get("reason")
    now = utcnow()
    task = city_transfer.transfer_to_city(db.session, task_id, group if isinstance(group, str) else "",
                                          reason if isinstance(reason, str) else "", actor=g.api_user, now=now)
    target = task.group_id
    db.session.commit()
    chosen = next(c for c in city_transfer.city_groups(db.session) if c.id == target)
    return jsonify({"task_id": task.id, "group": chosen.code, "city": chosen.city, "at": now.isoformat()})


@documented("Escalate a complaint to the national center (上报全国中心) over the roaming exchange",
            request=obj({"reason": STRING}),
            response=obj({"instance_id": ID, "serial_no": STRING, "partner": STRING, "status": STRING}), status=201)
@api_login_required
def escalate_instance(instance_id: int):
    reason = json_body().get("reason")
    eng = engine()
    instance = eng.get_instance(db.session, instance_id, g.api_user)
    row = national.escalate(db.session, current_app.extensions["kefu_roaming"].partners, instance,
                            eng.workflow_data(db.session, instance), reason if isinstance(reason, str) else "",
                            engine=eng, actor=g.api_user, now=utcnow())
    db.session.commit()
    return jsonify({"instance_id": instance_id, "serial_no": row.serial_no, "partner": row.partner,
                    "status": row.status}), 201
