"""REST API: callbacks (see README for the contract).

``POST /api/v1/callbacks`` is how the IVR asks for a callback (遇忙回叫: a caller who gave up
waiting) — or any system for a reply call or a return visit. It starts an ``outbound_callback``
case at once; the call itself is placed by an agent, within the calling hours, VIP first.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, g, jsonify, request
from sqlalchemy import select

from engine import access
from engine.access import allowed
from engine.clock import utcnow
from engine.models import ProcessInstance
from processes import outbound_calls as callbacks

from ..errors import error_response
from ..extensions import db
from ..views_helpers import engine
from .guards import api_login_required
from .openapi import BOOLEAN, ID, STRING, documented, nullable, obj

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,60}\Z")
CALLBACK = obj({  # what _fields accepts
    "phone": {"type": "string", "pattern": r"^\+?[0-9]{3,20}$", "description": "separators are ignored"},
    "reason": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": r"^[^\n]*\S[^\n]*$"},
    "priority": {"type": "integer", "minimum": 0, "maximum": 9, "default": 0},
    "kind": {"type": "string", "enum": list(callbacks.KINDS), "default": "ivr_callback"},
    "case_reference": {"type": "string", "minLength": 1, "maxLength": 40},
    "request_id": {"type": "string", "pattern": _REQUEST_ID.pattern}}, ["phone", "reason"])


def register(bp: Blueprint) -> None:
    bp.post("/callbacks")(request_callback)


def _fields(body: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """The validated request, and what is wrong with it (field → message)."""
    if not isinstance(body, dict):
        return {}, {"body": "must be a JSON object"}
    errors: dict[str, str] = {}
    phone = callbacks.normalize_phone(body.get("phone"))
    if phone is None:
        errors["phone"] = "required: the customer's number, 3 to 20 digits, optionally with a leading +"
    reason = body.get("reason")
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 200 or "\n" in reason:
        errors["reason"] = "required: one line of 1 to 200 characters"
    priority = body.get("priority", 0)
    if priority is None:
        priority = 0
    if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 9:
        errors["priority"] = "optional: an integer from 0 (default) to 9; higher is called sooner"
    kind = body.get("kind", "ivr_callback")
    if kind not in callbacks.KINDS:
        errors["kind"] = f"optional: one of {', '.join(callbacks.KINDS)} (default ivr_callback)"
    case_reference = body.get("case_reference")
    if case_reference is not None and not (isinstance(case_reference, str) and 0 < len(case_reference) <= 40):
        errors["case_reference"] = "optional: the number of the case the call is about"
    if kind == "return_visit" and not case_reference:
        errors.setdefault("case_reference", "required for a return visit: the number of the case visited")
    request_id = body.get("request_id")
    if request_id is not None and not (isinstance(request_id, str) and _REQUEST_ID.match(request_id)):
        errors["request_id"] = "optional: up to 60 letters, digits or . _ : @ -"
    return {"phone": phone, "reason": reason.strip() if isinstance(reason, str) else "", "priority": priority,
            "kind": kind, "case_reference": case_reference, "request_id": request_id}, errors


@documented("Ask for a callback, reply call or return visit (starts an outbound_callback case)",
            request=CALLBACK, status=201,
            response=obj({"id": ID, "reference": nullable(STRING), "status": STRING, "created": BOOLEAN}))
@api_login_required
def request_callback():
    user = g.api_user
    if not allowed(user, "start_callback"):
        return error_response(403, "forbidden", "requesting callbacks needs an agent, leader, manager or "
                                                "admin account")
    fields, errors = _fields(request.get_json(silent=True))
    if errors:
        return error_response(400, "bad_request", "the callback request is not valid", fields=errors)
    origin = None
    if fields["case_reference"]:
        origin = db.session.scalar(select(ProcessInstance).where(
            ProcessInstance.reference == fields["case_reference"]))
        if origin is None or not access.may_view_instance(db.session, user, origin):
            return error_response(422, "unknown_case", f"no case {fields['case_reference']}",
                                  fields={"case_reference": "no such case"})
    instance, created = callbacks.start_callback(
        db.session, engine(), phone=fields["phone"], reason=fields["reason"], kind=fields["kind"],
        priority=fields["priority"], now=utcnow(), requested_by=user, origin=origin,
        request_id=fields["request_id"])
    db.session.commit()
    return jsonify({"id": instance.id, "reference": instance.reference, "status": instance.status,
                    "created": created}), 201
