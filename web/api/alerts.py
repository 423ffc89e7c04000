"""REST API: a supervisor acknowledges an escalation alert —
``POST /api/v1/escalations/<id>/acknowledge`` (slas/alerts.py; the alerts page does the same)."""

from __future__ import annotations

from flask import Blueprint, g, jsonify

from engine.access import allowed
from engine.clock import utcnow
from engine.errors import Forbidden
from slas import alerts

from ..extensions import db
from .guards import api_login_required
from .openapi import ID, INSTANT, INTEGER, documented, obj
from .shapes import iso


def register(bp: Blueprint) -> None:
    bp.post("/escalations/<int:escalation_id>/acknowledge")(acknowledge)


@documented("Acknowledge an escalation alert (seen, on it); the first acknowledgement stands",
            response=obj({"id": ID, "level": INTEGER, "acknowledged_at": INSTANT, "acknowledged_by": ID}))
@api_login_required
def acknowledge(escalation_id: int):
    if not allowed(g.api_user, "read_escalations"):
        raise Forbidden("only leaders and managers act on escalation alerts")
    esc = alerts.acknowledge(db.session, escalation_id, g.api_user, utcnow())
    db.session.commit()
    return jsonify({"id": esc.id, "level": esc.level, "acknowledged_at": iso(esc.acknowledged_at),
                    "acknowledged_by": esc.acknowledged_by_id})
