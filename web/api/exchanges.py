"""REST API: the file exchange with the national and network-management centres (DESIGN.md,
"File exchange over FTP"): ``GET /api/v1/exchanges``."""

from __future__ import annotations

from flask import Blueprint, g, jsonify

from engine.access import allowed
from processes import file_exchange

from ..errors import error_response
from ..extensions import db
from .guards import api_login_required


def register(bp: Blueprint) -> None:
    bp.get("/exchanges")(list_exchanges)


@api_login_required
def list_exchanges():
    if not allowed(g.api_user, "watch_exchanges"):
        return error_response(403, "forbidden", "only administrators and managers see the file exchange")
    return jsonify({"items": [file_exchange.as_item(r) for r in file_exchange.exchanges(db.session)]})
