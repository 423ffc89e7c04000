"""REST API: the managers' statistics (DESIGN.md "Reports (contract)").

``GET /api/v1/reports/complaints?from=YYYY-MM-DD&to=YYYY-MM-DD&by=category|channel|department|city|day``
→ ``{"items": [{key, label, received, closed, first_reply_in_time, handled_in_time, replied,
overdue, escalations, satisfied, unsatisfied}], "totals": {…}}`` (integer counts of the complaints
received in the period, Beijing days, both ends included; what each count means is in
``processes/complaint_facts.py``). ``Accept: text/csv`` or ``?format=csv`` gives the same table as
CSV with Chinese headers (UTF-8 with a byte-order mark). Managers (``read_reports``).
"""

from __future__ import annotations

from flask import Blueprint, g, jsonify, request

from engine import access
from engine.errors import ValidationFailed
from processes import complaint_facts

from ..errors import error_response
from ..reports import complaint_table, csv_response
from .guards import api_login_required
from .openapi import INTEGER, STRING, documented, nullable, obj

DAY = {"type": "string", "format": "date", "x-required": True}
FIGURES = {m: INTEGER for m in complaint_facts.MEASURES}


def register(bp: Blueprint) -> None:
    bp.get("/reports/complaints")(complaints)


def _wants_csv() -> bool:
    if request.args.get("format"):
        return request.args["format"] == "csv"
    return request.accept_mimetypes.best_match(["application/json", "text/csv"]) == "text/csv"


@documented("Complaint statistics of a period by a dimension (JSON, or CSV with Accept: text/csv)",
            response=obj({"items": {"type": "array", "items": obj({"key": nullable(STRING), "label": STRING,
                                                                  **FIGURES})},
                          "totals": obj(FIGURES)}),
            response_media=("application/json", "text/csv"),
            query={"from": DAY, "to": DAY, "by": {"type": "string", "enum": list(complaint_facts.DIMENSIONS),
                                                  "x-required": True},
                   "format": {"type": "string", "enum": ["json", "csv"]}})
@api_login_required
def complaints():
    if not access.allowed(g.api_user, "read_reports"):
        return error_response(403, "forbidden", "reports are for managers and administrators")
    fmt = request.args.get("format")
    try:
        if fmt not in (None, "json", "csv"):
            raise ValidationFailed("unknown format", {"format": "json or csv"})
        period = complaint_facts.check_period(request.args.get("from"), request.args.get("to"),
                                              request.args.get("by"))
    except ValidationFailed as exc:
        return error_response(422, "validation_failed", exc.message, fields=exc.fields)
    table = complaint_table(period)
    return csv_response(period, table) if _wants_csv() else jsonify(table)
