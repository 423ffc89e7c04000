"""What peers sent us, put where it belongs: delivery receipts onto the case's history, customers'
SMS replies into the case that waits for them. Runs in every tick (after the jobs)."""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from engine import peer_events
from engine.errors import Conflict, KefuError
from engine.runtime import Engine

log = logging.getLogger("kefu.inbound")
SMS_REPLY = "sms_reply"          # the BPMN message a case waits on for a customer's SMS reply
RECEIPT_GRACE = timedelta(minutes=10)  # a receipt may overtake the recording of its submit
# A text has one final receipt: a text already in one of these states takes no other (a second
# final receipt with its id is for another text the SMSC gave the id after a restart, or a repeat).
FINAL_STATES = frozenset({"delivered", "undeliverable", "expired", "rejected"})


def process_inbound(session: Session, engine: Engine, now: datetime, limit: int = 500) -> int:
    """Handle stored inbound events; returns how many were settled."""
    settled = 0
    for event_id in [e.id for e in peer_events.pending_inbound(session, limit)]:
        session.commit()
        # Locked until settled: the worker, the scheduler and the web's job waker all settle what
        # peers sent, and without the lock two of them could settle one receipt twice (PostgreSQL).
        event = session.get(peer_events.InboundEvent, event_id, with_for_update=True, populate_existing=True)
        if event is None or event.processed_at is not None:
            session.rollback()
            continue
        try:
            outcome = _handle(session, engine, event, now)
        except Conflict:
            session.rollback()  # the case is being changed right now: next tick
            continue
        except KefuError as exc:
            session.rollback()
            event = session.get(peer_events.InboundEvent, event_id, with_for_update=True, populate_existing=True)
            if event is None or event.processed_at is not None:
                session.rollback()
                continue
            outcome = f"failed: {exc}"
        if outcome is None:
            session.rollback()
            continue
        event.processed_at, event.outcome = now, outcome[:200]
        session.commit()
        settled += 1
    return settled


def _handle(session: Session, engine: Engine, event: peer_events.InboundEvent, now: datetime) -> str | None:
    if event.kind == "smpp_receipt":
        return _receipt(session, event, now)
    if event.kind == "sms_mo":
        return _route_reply(session, engine, event, now)
    return f"ignored ({event.kind})"


def _receipt(session: Session, event: peer_events.InboundEvent, now: datetime) -> str | None:
    """A delivery receipt goes to the text it reports on, told apart from older texts the SMSC gave
    the same id (before a restart) by its submit date, its handset number and the one final receipt
    a text gets. None (kept, tried at the next tick) while no recorded text fits: its own text's id
    may not be recorded yet — never an older text instead."""
    detail = event.payload.get("detail")
    detail = detail if isinstance(detail, dict) else {}
    state = str(event.payload.get("state", "unknown"))
    called_at = _instant(detail.get("submitted_at"))
    row = peer_events.update_reference(
        session, "smpp", event.ref or "", state, now, {"to_state": event.payload.get("state")},
        job_key=detail.get("submit_tag") or None, called_at=called_at, address=detail.get("source") or None,
        settled=FINAL_STATES if state in FINAL_STATES else ())
    if row is None:
        if now - event.received_at < RECEIPT_GRACE:
            return None
        return "unknown message id: no text the SMSC gave this id fits the receipt (sent to, submit date)"
    event.instance_id = row.instance_id
    return f"message {row.state}"


def _instant(value: object) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) and value else None
    except ValueError:
        return None
    return parsed if parsed is not None and parsed.tzinfo is not None else None


def _route_reply(session: Session, engine: Engine, event: peer_events.InboundEvent, now: datetime) -> str:
    """A customer's SMS goes to the newest of their cases that waits for a reply."""
    phone = _national(event.payload.get("from", ""))
    text = str(event.payload.get("text", "")).strip()
    instance = engine.waiting_for_message(session, SMS_REPLY, phone)
    if instance is None:
        return "no case waits for a reply from this number"
    engine.deliver_message(session, instance.id, SMS_REPLY,
                           {"text": text, "from": phone, "choice": _choice(text)}, now)
    event.instance_id = instance.id
    return f"delivered to case {instance.reference or instance.id}"


def _national(number: str) -> str:
    digits = re.sub(r"\D", "", number)
    return digits[2:] if digits.startswith("86") and len(digits) == 13 else digits


def _choice(text: str) -> str | None:
    """The first digit 1–3 of a survey reply ("1", "1 满意", "回复2") or a word for it."""
    match = re.search(r"[1-3]", text)
    if match:
        return match.group(0)
    for word, choice in (("不满意", "3"), ("基本满意", "2"), ("满意", "1")):
        if word in text:
            return choice
    return None
