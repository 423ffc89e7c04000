"""REST API: customers (see README for the contract).

``GET /api/v1/customers/<phone>`` — billing's 360 view of a number (masked) plus the number's
Kefu cases; ``?month=YYYY-MM`` adds that month's call details. Every call is an audited lookup.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, jsonify, request

from engine.access import allowed
from engine.clock import utcnow

from .. import customer_lookup as cl
from ..errors import error_response
from ..request_limits import db_int
from .guards import api_login_required
from .openapi import BOOLEAN, ID, INSTANT, STRING, documented, nullable, obj
from .shapes import iso

CUSTOMER = obj({"cases": {"type": "array", "items": obj({
    "id": ID, "reference": nullable(STRING), "process_key": STRING, "status": STRING, "suspended": BOOLEAN,
    "title": nullable(STRING), "created_at": nullable(INSTANT)})}}, ["cases"])
COUNT = {"type": "integer", "minimum": 0}

CALLS_LIMIT, CALLS_MAX = 200, 1000


def register(bp: Blueprint) -> None:
    bp.get("/customers/<phone>")(customer)


@documented("Billing's 360 view of a number (masked) and its cases; ?month adds call details",
            response=CUSTOMER, statuses=(503,), query={
                "month": {"type": "string", "pattern": cl.MONTH.pattern}, "limit": COUNT, "offset": COUNT,
                "call": ID, "reason": STRING, "note": STRING})
@api_login_required
def customer(phone: str):
    user = g.api_user
    if not allowed(user, "view_customer_data"):
        return error_response(403, "forbidden", "customer data is for agents, handlers, leaders and managers")
    call = request.args.get("call", type=db_int)
    reason = cl.Reason(request.args.get("reason", "").strip()[:cl.REASON_LIMIT] or "api",
                       request.args.get("note", "").strip()[:cl.REASON_LIMIT])
    try:
        cl.check_phone(phone)
        month = cl.check_month(request.args.get("month"))
        limit = min(max(request.args.get("limit", CALLS_LIMIT, type=db_int), 0), CALLS_MAX)
        offset = max(request.args.get("offset", 0, type=db_int), 0)
        body: dict[str, Any] = cl.lookup(user, phone, reason, call, utcnow(), channel="api")
        if month:
            items = cl.call_details(phone, month, limit=limit, offset=offset)
            body["call_details"] = {"month": month, "offset": offset, "limit": limit, "items": items}
    except cl.LookupFailed as exc:
        return error_response(exc.status, exc.code, exc.message)
    body["cases"] = [{"id": i.id, "reference": i.reference, "process_key": i.process_key,
                      "status": "running" if i.status == "suspended" else i.status,
                      "suspended": i.status == "suspended", "title": i.title,
                      "created_at": iso(i.created_at)} for i in cl.cases_of(phone)]
    return jsonify(body)
