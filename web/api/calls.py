"""REST API: calls (see README for the contract).

``POST /api/v1/calls/inbound`` lets CTI middleware that does not speak AMI report a call ringing
an agent's extension: the same call record and screen pop as a ringing seen on the AMI link.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from flask import Blueprint, current_app, g, jsonify, request

from engine.access import allowed
from engine.clock import utcnow
from processes import telephony

from ..errors import error_response
from ..extensions import db
from .guards import api_login_required
from .openapi import BOOLEAN, ID, STRING, documented, obj

_PHONE = re.compile(r"^\+?\d{3,20}\Z", re.ASCII)
_SEPARATORS = re.compile(r"[\s\-()]")
_EXTENSION = re.compile(r"^\d{2,8}\Z", re.ASCII)
_CALL_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,80}\Z")
INBOUND = obj({"caller": {"type": "string", "pattern": _PHONE.pattern},
               "extension": {"type": "string", "pattern": _EXTENSION.pattern},
               "call_id": {"type": "string", "pattern": _CALL_ID.pattern},
               "recording_ref": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": r"^[^\n]*$"}},
              ["caller", "extension"])


def register(bp: Blueprint) -> None:
    bp.post("/calls/inbound")(inbound_call)


def _inbound_fields(body: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """The validated fields of an inbound-call notice, and what is wrong with them."""
    if not isinstance(body, dict):
        return {}, {"body": "must be a JSON object"}
    errors: dict[str, str] = {}
    caller = _SEPARATORS.sub("", str(body.get("caller") or "")) if isinstance(body.get("caller"), str | int) else ""
    if not _PHONE.match(caller):
        errors["caller"] = "required: the caller's number, 3 to 20 digits, optionally with a leading +"
    extension = str(body.get("extension") or "").strip() if isinstance(body.get("extension"), str | int) else ""
    if not _EXTENSION.match(extension):
        errors["extension"] = "required: the agent's extension, 2 to 8 digits"
    call_id = body.get("call_id")
    if call_id is not None and not (isinstance(call_id, str | int) and _CALL_ID.match(str(call_id))):
        errors["call_id"] = "optional: up to 80 letters, digits or . _ : @ -"
    recording = body.get("recording_ref")
    if recording is not None and not (isinstance(recording, str) and 0 < len(recording) <= 200
                                      and "\n" not in recording):
        errors["recording_ref"] = "optional: a single line of at most 200 characters"
    fields = {"caller": caller, "extension": extension,
              "call_id": str(call_id) if call_id is not None else None, "recording_ref": recording}
    return fields, errors


@documented("Report a call ringing an agent's extension (a screen pop)", request=INBOUND, status=202,
            response=obj({"call": ID, "call_id": STRING, "agent": STRING, "popped": BOOLEAN}))
@api_login_required
def inbound_call():
    user = g.api_user
    if not allowed(user, "report_calls"):
        return error_response(403, "forbidden", "reporting calls needs an agent, leader or admin account")
    fields, errors = _inbound_fields(request.get_json(silent=True))
    if errors:
        return error_response(400, "bad_request", "the inbound call notice is not valid", fields=errors)
    agent = telephony.agent_for_extension(db.session, fields["extension"])
    if agent is None:
        return error_response(422, "unknown_extension",
                              f"no active user has extension {fields['extension']}",
                              fields={"extension": "no active user has this extension"})
    level = telephony.customer_level(current_app.extensions.get("kefu_billing"), fields["caller"])
    call, pop = telephony.record_inbound(
        db.session, caller=fields["caller"], extension=fields["extension"],
        call_id=fields["call_id"] or f"api-{uuid.uuid4().hex}", now=utcnow(), source="api", agent=agent,
        recording_ref=fields["recording_ref"], level=level)
    db.session.commit()
    return jsonify({"call": call.id, "call_id": call.call_id, "agent": agent.username,
                    "popped": pop is not None}), 202
