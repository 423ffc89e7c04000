"""REST API: urging a step (催办) — ``POST /api/v1/tasks/<id>/urge`` (see DESIGN.md, "Urging")."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, current_app, g, jsonify

from engine.clock import utcnow
from engine.errors import ValidationFailed
from processes import urging

from ..extensions import db
from .guards import api_login_required
from .openapi import ID, INSTANT, STRING, documented, obj
from .shapes import json_body


def register(bp: Blueprint) -> None:
    bp.post("/tasks/<int:task_id>/urge")(urge_task)


@documented("Urge a step (催办)", request=obj({"note": STRING}, required=()), request_required=False,
            response=obj({"id": ID, "task_id": ID, "at": INSTANT, "by": STRING}), status=201, statuses=(429,))
@api_login_required
def urge_task(task_id: int):
    note = json_body().get("note", "")
    if not isinstance(note, str) or len(note) > 500:
        raise ValidationFailed("note must be a text of at most 500 characters", {"note": "text, ≤ 500 characters"})
    gap = timedelta(minutes=int(current_app.config.get("KEFU_URGE_MINUTES") or 30))
    row = urging.urge(db.session, task_id, g.api_user, note, utcnow(), gap)
    db.session.commit()
    return jsonify({"id": row.id, "task_id": row.task_id, "at": row.at.isoformat(), "by": row.by_name}), 201
