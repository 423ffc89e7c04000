"""Escalation to the national centre (上报全国中心): a complaint that needs national coordination
(several provinces, a national product, a regulator's referral) is sent to the national centre over
the roaming exchange's transport — the same signed electronic dispatch (电子派单, ``roaming.dispatch``,
retried by the outbox), to the partner marked ``"national": true`` in the partners file — and the
centre's electronic receipt (电子回单) comes back into the case as a line of its history with the
centre's answer.

The complaint itself goes on meanwhile (its own steps and clocks are untouched); one escalation per
case is open at a time. The caller commits.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine import access, outbox
from engine.errors import Conflict, Forbidden, NotFound, ValidationFailed
from engine.models import RUNNING, SUSPENDED, ProcessInstance, record_event
from engine.people import User

from .roaming import (
    CATEGORIES,
    CLOSED,
    DISPATCH_ATTEMPTS,
    FINAL_REPLY,
    FIRST_REPLY,
    OUT,
    SENT,
    SERVICE_PHONE,
    Partners,
    RoamingTransfer,
    _iso,
)

ESCALATED, ANSWERED_EVENT = "national_escalated", "national_answered"
REASON_MAX = 1000


def open_escalation(session: Session, partners: Partners, instance_id: int) -> RoamingTransfer | None:
    """The case's national escalation that has not been answered yet."""
    centre = partners.national_centre()
    if centre is None:
        return None
    return session.scalar(select(RoamingTransfer).where(
        RoamingTransfer.direction == OUT, RoamingTransfer.partner == centre.code,
        RoamingTransfer.instance_id == instance_id, RoamingTransfer.receipt.is_(None),
        RoamingTransfer.status != CLOSED).limit(1))


def escalate(session: Session, partners: Partners, instance: ProcessInstance, data: dict[str, Any],
             reason: str, *, actor: User, now: datetime) -> RoamingTransfer:
    """Send complaint ``instance`` (its case data ``data``) to the national centre with ``reason``."""
    centre = partners.national_centre()
    if centre is None:
        raise NotFound('no national centre is configured (a partner with "national": true)')
    if not access.allowed(actor, "escalate_national") or not access.may_view_instance(session, actor, instance):
        raise Forbidden("only a leader or a manager who sees the case may escalate it to the national centre")
    if instance.process_key != "complaint" or instance.status not in (RUNNING, SUSPENDED):
        raise Conflict("only an open complaint can be escalated to the national centre")
    text = (reason or "").strip()
    if not text:
        raise ValidationFailed("a reason is required", {"reason": "required"})
    if len(text) > REASON_MAX:
        raise ValidationFailed(f"the reason has at most {REASON_MAX} characters", {"reason": "too_long"})
    if open_escalation(session, partners, instance.id) is not None:
        raise Conflict("this complaint already waits for the national centre's answer")
    count = session.scalar(select(func.count()).select_from(RoamingTransfer).where(
        RoamingTransfer.direction == OUT, RoamingTransfer.partner == centre.code,
        RoamingTransfer.instance_id == instance.id)) or 0
    serial = f"NC{instance.id:08d}{count + 1:02d}"
    phone = str(data.get("customer_phone") or instance.customer_phone or "")[:20]
    category = data.get("category") if data.get("category") in CATEGORIES else "other"
    description = str(data.get("description") or "")
    body = {"company_code": partners.company, "serial_no": serial, "to_company": centre.code,
            "dispatcher_name": actor.display_name[:120], "dispatcher_phone": (actor.phone or SERVICE_PHONE)[:120],
            "customer_phone": phone or "-", "complainant_name": str(data.get("complainant_name") or "-")[:120],
            "complainant_phone": str(data.get("contact_phone") or phone or "-")[:120], "category": category,
            "problem": f"【上报全国中心】{text}\n{description}"[:4000],
            "first_reply_due": _iso(now + FIRST_REPLY), "final_reply_due": _iso(now + FINAL_REPLY),
            "dispatched_at": _iso(now)}
    row = RoamingTransfer(direction=OUT, company_code=partners.company, serial_no=serial, partner=centre.code,
                          to_company=centre.code, status=SENT, instance_id=instance.id, customer_phone=body["customer_phone"],
                          first_reply_due=now + FIRST_REPLY, final_reply_due=now + FINAL_REPLY, dispatch=body,
                          late=False, created_at=now)
    session.add(row)
    job = outbox.enqueue(session, "roaming.dispatch", {"partner": centre.code, "body": body},
                         key=f"national-dispatch-{partners.company}-{serial}", now=now, instance_id=instance.id,
                         max_attempts=DISPATCH_ATTEMPTS)
    session.flush()
    row.job_id = job.id
    record_event(session, ESCALATED, at=now, instance_id=instance.id, actor=actor.username,
                 message=f"→ {centre.name}：{text}"[:500], data={"partner": centre.code, "serial_no": serial,
                                                                "reason": text})
    instance.updated_at = now
    return row


def deliver_answer(session: Session, partners: Partners, row: RoamingTransfer, now: datetime) -> bool:
    """The centre's receipt into the case: a history line with its answer (the tick calls this)."""
    if row.receipt is None or row.delivered_at is not None:
        return False
    receipt = row.receipt
    record_event(session, ANSWERED_EVENT, at=now, instance_id=row.instance_id,
                 message=f"{partners.name_of(row.partner)}：{receipt.get('result', '')}"[:500],
                 data={"partner": row.partner, "serial_no": row.serial_no, "result": receipt.get("result"),
                       "responder_name": receipt.get("responder_name"),
                       "responder_phone": receipt.get("responder_phone"), "late": row.late})
    row.delivered_at = now
    return True
