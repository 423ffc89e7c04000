"""REST API: ``POST /api/v1/instances/<id>/upgrade {"source": "hotline_10015"|"ministry"|
"national_center", "note"?}`` flags a running complaint as upgraded (越级投诉) after intake, as the
case page's action does (web/upgraded.py); the rule is slas/upgrades.py. Leaders and managers
(``flag_upgraded``); a second flag or a closed case is 409, an unknown source 422."""

from __future__ import annotations

from flask import Blueprint, g, jsonify

from engine import access
from engine.clock import utcnow
from engine.people import User
from slas import upgrades

from ..errors import error_response
from ..extensions import db
from ..views_helpers import engine
from .guards import api_login_required
from .openapi import ID, INSTANT, STRING, documented, nullable, obj
from .shapes import json_body

SOURCE = {"type": "string", "enum": list(upgrades.SOURCES)}


def register(bp: Blueprint) -> None:
    bp.post("/instances/<int:instance_id>/upgrade")(upgrade_instance)


@documented("Flag a running complaint as upgraded (越级投诉): stricter limits, a supervising manager",
            request=obj({"source": SOURCE, "note": STRING}, ["source"]),
            response=obj({"instance_id": ID, "source": STRING, "note": STRING, "flagged_at": INSTANT,
                          "supervisor": nullable(STRING)}), status=201)
@api_login_required
def upgrade_instance(instance_id: int):
    if not access.allowed(g.api_user, "flag_upgraded"):
        return error_response(403, "forbidden", "only leaders and managers may flag an upgraded complaint")
    body = json_body()
    source, note = body.get("source"), body.get("note", "")
    if not isinstance(note, str):
        return error_response(422, "validation_failed", "the note must be text", fields={"note": "not a string"})
    instance = engine().get_instance(db.session, instance_id, g.api_user)  # 404 outside the user's reach
    row = upgrades.flag(db.session, instance, source if isinstance(source, str) else "", actor=g.api_user,
                        now=utcnow(), note=note)
    db.session.commit()
    supervisor = db.session.get(User, row.supervisor_id) if row.supervisor_id else None
    return jsonify({"instance_id": instance_id, "source": row.source, "note": row.note,
                    "flagged_at": row.flagged_at.isoformat(),
                    "supervisor": supervisor.username if supervisor else None}), 201
