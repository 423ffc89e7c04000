"""REST API: the file exchange with the national and network-management centres (DESIGN.md,
"File exchange over FTP"): ``GET /api/v1/exchanges``."""

from __future__ import annotations

from flask import Blueprint, g, jsonify

from engine.access import allowed
from processes import file_exchange

from ..errors import error_response
from ..extensions import db
from .guards import api_login_required
from .openapi import ID, INSTANT, INTEGER, STRING, documented, items_of, nullable, obj


def register(bp: Blueprint) -> None:
    bp.get("/exchanges")(list_exchanges)


@documented("Files exchanged with the centres over FTP", response=items_of(obj({
    "id": ID, "name": STRING, "direction": STRING, "kind": STRING, "status": STRING, "size": nullable(INTEGER),
    "sha256": nullable(STRING), "uploads": INTEGER, "sent_at": nullable(INSTANT),
    "acknowledged_at": nullable(INSTANT)})))
@api_login_required
def list_exchanges():
    if not allowed(g.api_user, "watch_exchanges"):
        return error_response(403, "forbidden", "only administrators and managers see the file exchange")
    return jsonify({"items": [file_exchange.as_item(r) for r in file_exchange.exchanges(db.session)]})
