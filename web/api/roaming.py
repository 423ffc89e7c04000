"""REST API: the roaming complaint exchange between provincial deployments (DESIGN.md, "Roaming
complaint transfer"). ``POST /roaming/dispatches`` and ``POST /roaming/receipts`` are called by
partner deployments and authenticated by their signature (no bearer token); ``GET
/roaming/transfers`` lists both directions for signed-in users."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, current_app, g, jsonify, request

from connectors.roaming import signing
from engine.access import allowed
from engine.clock import utcnow
from engine.errors import KefuError
from processes import roaming, roaming_partners

from ..errors import error_response
from ..extensions import db
from .guards import api_login_required
from .openapi import BOOLEAN, ID, INSTANT, STRING, documented, items_of, nullable, obj

SIGNED = {name: STRING for name in (signing.COMPANY_HEADER, signing.TIMESTAMP_HEADER, signing.SIGNATURE_HEADER)}
ACK = obj({"ack": {"const": "ok"}, "serial_no": STRING})

log = logging.getLogger("kefu.roaming")


def register(bp: Blueprint) -> None:
    bp.post("/roaming/dispatches")(receive_dispatch)
    bp.post("/roaming/receipts")(receive_receipt)
    bp.get("/roaming/transfers")(list_transfers)


def _exchange() -> roaming.Roaming:
    return current_app.extensions["kefu_roaming"]


def _sender(names: tuple[str, ...]) -> tuple[roaming_partners.Partner, dict[str, str]]:
    """The verified sender and the request's fields (401/403/422 otherwise)."""
    raw = request.get_data(cache=True)
    timestamp = request.headers.get(signing.TIMESTAMP_HEADER)
    signature = request.headers.get(signing.SIGNATURE_HEADER)
    partner = roaming.sender(_exchange().partners, request.headers.get(signing.COMPANY_HEADER),
                             lambda: signing.fresh(timestamp),
                             lambda secret: signing.valid(secret, timestamp, raw, signature))
    return partner, roaming.parse_body(raw, names, partner)


def _ack(serial_no: str) -> Any:
    return jsonify({"ack": "ok", "serial_no": serial_no})


@documented("A partner province's dispatch of a complaint (signed, no bearer token)",
            request=obj({name: STRING for name in roaming.DISPATCH_FIELDS}), headers=SIGNED, response=ACK,
            statuses=(401,))
def receive_dispatch():
    exchange = _exchange()
    sender, body = _sender(roaming.DISPATCH_FIELDS)
    now = utcnow()
    row = roaming.receive_dispatch(db.session, exchange.partners, sender, body, now)
    row_id, started = row.id, row.instance_id is not None
    db.session.commit()  # acknowledged: the success mark is owed whatever happens next
    if not started:
        try:  # the home province's case at once; the tick starts it if this fails
            row = db.session.get(roaming.RoamingTransfer, row_id)
            if row is not None and row.instance_id is None:
                roaming.start_case(db.session, exchange.engine, exchange.partners, row, now)
                db.session.commit()
        except KefuError as exc:
            db.session.rollback()
            log.warning("dispatch %s: case not started yet: %s", body["serial_no"], exc)
    return _ack(body["serial_no"])


@documented("A partner province's receipt for a dispatched complaint (signed, no bearer token)",
            request=obj({name: STRING for name in roaming.RECEIPT_FIELDS}), headers=SIGNED, response=ACK,
            statuses=(401,))
def receive_receipt():
    exchange = _exchange()
    sender, body = _sender(roaming.RECEIPT_FIELDS)
    now = utcnow()
    row = roaming.receive_receipt(db.session, exchange.partners, sender, body, now)
    row_id = row.id
    db.session.commit()
    try:  # into the waiting case at once; the tick delivers it if the case is busy
        row = db.session.get(roaming.RoamingTransfer, row_id)
        if row is not None:
            roaming.deliver_receipt(db.session, exchange.engine, row, now)
            db.session.commit()
    except KefuError as exc:
        db.session.rollback()
        log.warning("receipt %s: not delivered yet: %s", body["dispatch_serial_no"], exc)
    return _ack(body["dispatch_serial_no"])


@documented("Roaming complaint transfers in both directions", response=items_of(obj({
    "serial_no": STRING, "direction": STRING, "partner": STRING, "status": STRING, "instance_id": nullable(ID),
    "first_reply_due": nullable(INSTANT), "final_reply_due": nullable(INSTANT), "receipt": {},
    "company_code": STRING, "late": nullable(BOOLEAN), "created_at": nullable(INSTANT),
    "acknowledged_at": nullable(INSTANT), "answered_at": nullable(INSTANT), "closed_at": nullable(INSTANT)})))
@api_login_required
def list_transfers():
    if not allowed(g.api_user, "watch_roaming"):
        return error_response(403, "forbidden", "you may not see roaming transfers")
    return jsonify({"items": [roaming.as_item(r) for r in roaming.transfers(db.session)]})
