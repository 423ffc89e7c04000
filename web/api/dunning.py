"""REST API: dunning rounds (欠费催缴; DESIGN.md "Dunning (contract)").

``POST /api/v1/dunning/rounds {"month": "YYYY-MM"}`` opens the round of a billing month from
billing's unpaid bills (201 the first time, 200 with the same round after);
``GET /api/v1/dunning/rounds/<id>`` gives its figures: subscribers and amounts (integer fen) and
subscribers per stage.
"""

from __future__ import annotations

from flask import Blueprint, current_app, g, jsonify, request

from connectors.base import PermanentError, TransientError
from engine import access
from engine.clock import utcnow
from engine.errors import ValidationFailed
from processes import dunning

from ..errors import error_response
from ..extensions import db
from ..views_helpers import engine
from .guards import api_login_required
from .openapi import ID, INTEGER, STRING, documented, obj

ROUND = obj({"id": ID, "month": STRING, "subscribers": INTEGER, "amount_due": INTEGER})


def register(bp: Blueprint) -> None:
    bp.post("/dunning/rounds")(open_round)
    bp.get("/dunning/rounds/<int:round_id>")(get_round)


def _forbidden():
    return error_response(403, "forbidden", "dunning rounds are for managers and administrators")


@documented("Open the dunning round of a billing month (200 with the same round after the first time)",
            request=obj({"month": {"type": "string", "pattern": dunning.MONTH.pattern}}), status=(201, 200),
            response=ROUND, statuses=(503,))
@api_login_required
def open_round():
    if not access.allowed(g.api_user, "run_dunning"):
        return _forbidden()
    body = request.get_json(silent=True)
    month = body.get("month") if isinstance(body, dict) else None
    try:
        month = dunning.check_month(month)
    except ValidationFailed as exc:
        return error_response(422, "validation_failed", exc.message, fields=exc.fields)
    service: dunning.Dunning = current_app.extensions["kefu_dunning"]
    try:
        row, created = service.open_round(db.session, engine(), month, utcnow(), opened_by=g.api_user.username)
    except TransientError as exc:
        db.session.rollback()
        return error_response(503, "billing_unavailable", str(exc))
    except PermanentError as exc:
        db.session.rollback()
        return error_response(422, "validation_failed", str(exc), fields={"month": str(exc)})
    return jsonify({"id": row.id, "month": row.month, "subscribers": row.subscribers,
                    "amount_due": row.amount_due}), 201 if created else 200


@documented("A dunning round's figures", response={"allOf": [ROUND, obj({
    "status": STRING, "amount_recovered": INTEGER, "stages": {"type": "object"}})]})
@api_login_required
def get_round(round_id: int):
    if not access.allowed(g.api_user, "run_dunning"):
        return _forbidden()
    row = db.session.get(dunning.DunningRound, round_id)
    if row is None:
        return error_response(404, "not_found", f"dunning round {round_id} not found")
    return jsonify(dunning.round_summary(db.session, row))
