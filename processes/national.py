"""Escalation to the national centre (上报全国中心): a complaint that needs national coordination
(several provinces, a national product, a regulator's referral) is sent to the national centre over
the roaming exchange's transport — the same signed electronic dispatch (电子派单, ``roaming.dispatch``,
retried by the outbox), to the partner marked ``"national": true`` in the partners file.

In the complaint the escalation is a BPMN message: ``national_escalation`` starts the diagram's
event sub-process 上报全国中心 beside the complaint's own steps (which go on untouched), and its
step 等待全国中心答复 waits for the message ``national_answer`` correlated by the escalation's serial
number. The time limit of that wait is declared on the diagram (``kefu.sla.*`` on the catching
event): it runs a clock from the escalation, sets the dispatch's final-reply deadline, and stops
when the centre's electronic receipt (电子回单) arrives. The tick hands the receipt to the waiting
case (a history line in words and the message); a receipt that comes again changes nothing, one
that comes late is taken and marked late, and one that finds no case waiting (a case suspended
meanwhile) stays until it does — never lost. A case running on a diagram version without the
sub-process gets the answer as a line of its history only.

One escalation per case is open at a time. The caller commits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from engine import access, messages, outbox
from engine.errors import Conflict, Forbidden, NotFound, ValidationFailed
from engine.models import RUNNING, SUSPENDED, ProcessInstance, record_event
from engine.people import Group, User
from engine.runtime import Engine
from slas.clocks import start_clock
from slas.models import RUNNING as CLOCK_RUNNING
from slas.models import STOPPED, Escalation, SlaClock
from slas.policies import Policy, policy_from_properties

from .roaming import (
    CATEGORIES,
    CLOSED,
    DISPATCH_ATTEMPTS,
    FIRST_REPLY,
    IN,
    OUT,
    SENT,
    SERVICE_PHONE,
    Partners,
    RoamingTransfer,
    _iso,
)

ESCALATED, ANSWERED_EVENT = "national_escalated", "national_answered"
ESCALATION_MESSAGE, ANSWER_MESSAGE = "national_escalation", "national_answer"  # bpmn/complaint.bpmn
MARK = "【上报全国中心】"  # the dispatch's problem starts with it: the receiving end words the case so
WAIT_TITLE = "等待全国中心答复"
# The wait's limit when the case's diagram declares none (a version before the sub-process).
DEFAULT_POLICY = Policy(duration_seconds=3 * 86400.0, calendar="24x7", escalations=((1.0, "leader"), (1.5, "manager")))
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


def last_answer(session: Session, partners: Partners, instance_id: int) -> RoamingTransfer | None:
    """The case's newest answered national escalation (for its page)."""
    centre = partners.national_centre()
    if centre is None:
        return None
    return session.scalar(select(RoamingTransfer).where(
        RoamingTransfer.direction == OUT, RoamingTransfer.partner == centre.code,
        RoamingTransfer.instance_id == instance_id, RoamingTransfer.receipt.is_not(None))
        .order_by(RoamingTransfer.id.desc()).limit(1))


def wait_properties(session: Session, engine: Engine, instance: ProcessInstance) -> dict[str, str] | None:
    """The properties of the case's step that waits for the centre's answer (None: the case's
    diagram version has no such step)."""
    spec, subs, _ = engine.specs.get(session, instance.definition_id)
    return messages.catching_properties([spec, *subs.values()], ANSWER_MESSAGE)


def escalate(session: Session, partners: Partners, instance: ProcessInstance, data: dict[str, Any],
             reason: str, *, engine: Engine, actor: User, now: datetime) -> RoamingTransfer:
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
    if instance.status == SUSPENDED:
        raise Conflict("the complaint is suspended (it waits on the customer): resume it before escalating")
    props = wait_properties(session, engine, instance)
    policy = policy_from_properties(props or {}) or DEFAULT_POLICY
    intake = session.scalar(select(Group.id).where(Group.code == "intake"))
    clock = start_clock(session, instance, policy, title=clock_title(centre.name), group_id=intake, now=now)
    final_due = clock.due_at  # the centre's final-reply deadline is the wait's limit
    count = session.scalar(select(func.count()).select_from(RoamingTransfer).where(
        RoamingTransfer.direction == OUT, RoamingTransfer.partner == centre.code,
        RoamingTransfer.instance_id == instance.id)) or 0
    serial = f"NC{instance.id:08d}{count + 1:02d}"
    phone = str(data.get("customer_phone") or instance.customer_phone or "")[:20]
    category = data.get("category") if data.get("category") in CATEGORIES else "other"
    description = str(data.get("description") or "")
    first_due = min(now + FIRST_REPLY, final_due)
    body = {"company_code": partners.company, "serial_no": serial, "to_company": centre.code,
            "dispatcher_name": actor.display_name[:120], "dispatcher_phone": (actor.phone or SERVICE_PHONE)[:120],
            "customer_phone": phone or "-", "complainant_name": str(data.get("complainant_name") or "-")[:120],
            "complainant_phone": str(data.get("contact_phone") or phone or "-")[:120], "category": category,
            "problem": f"{MARK}{text}\n{description}"[:4000],
            "first_reply_due": _iso(first_due), "final_reply_due": _iso(final_due), "dispatched_at": _iso(now)}
    row = RoamingTransfer(direction=OUT, company_code=partners.company, serial_no=serial, partner=centre.code,
                          to_company=centre.code, status=SENT, instance_id=instance.id, customer_phone=body["customer_phone"],
                          first_reply_due=first_due, final_reply_due=final_due, dispatch=body, late=False,
                          created_at=now)
    session.add(row)
    job = outbox.enqueue(session, "roaming.dispatch", {"partner": centre.code, "body": body},
                         key=f"national-dispatch-{partners.company}-{serial}", now=now, instance_id=instance.id,
                         max_attempts=DISPATCH_ATTEMPTS)
    session.flush()
    row.job_id = job.id
    record_event(session, ESCALATED, at=now, instance_id=instance.id, actor=actor.username,
                 message=f"→ {centre.name}：{text}"[:500], data={"partner": centre.code, "serial_no": serial,
                                                                "reason": text, "waits": props is not None})
    if props is not None:  # the diagram's sub-process takes it from here: 等待全国中心答复
        engine.deliver_message(session, instance.id, ESCALATION_MESSAGE,
                               {"serial_no": serial, "centre": centre.name, "reason": text,
                                "final_reply_due": body["final_reply_due"]}, now)
    instance.updated_at = now
    return row


def clock_title(centre_name: str) -> str:
    return f"{WAIT_TITLE}（{centre_name}）"


def stop_clock(session: Session, row: RoamingTransfer, now: datetime) -> None:
    """The centre answered: the wait's clock (started with the escalation) stops, its alerts clear."""
    if row.instance_id is None:
        return
    clocks = list(session.scalars(select(SlaClock.id).where(
        SlaClock.instance_id == row.instance_id, SlaClock.task_id.is_(None), SlaClock.state == CLOCK_RUNNING,
        SlaClock.title.startswith(WAIT_TITLE), SlaClock.started_at == row.created_at)))
    if not clocks:
        return
    session.execute(update(SlaClock).where(SlaClock.id.in_(clocks))
                    .values(state=STOPPED, stopped_at=now, next_check_at=None)
                    .execution_options(synchronize_session=False))
    session.execute(update(Escalation).where(Escalation.clock_id.in_(clocks), Escalation.cleared_at.is_(None))
                    .values(cleared_at=now).execution_options(synchronize_session=False))


def deliver_answer(session: Session, partners: Partners, engine: Engine, row: RoamingTransfer,
                   now: datetime) -> bool:
    """The centre's receipt into the case (the tick calls this): the message ``national_answer`` to
    the step waiting for it, and a history line with the answer. False (to try again on a later
    tick) while the case is suspended; a case that waits for no answer (it ended, or runs on a
    diagram without the wait) gets the history line only."""
    if row.receipt is None or row.delivered_at is not None:
        return False
    receipt = row.receipt
    waiting = engine.waiting_for_message(session, ANSWER_MESSAGE, row.serial_no)
    if waiting is None:
        status = session.scalar(select(ProcessInstance.status).where(ProcessInstance.id == row.instance_id))
        if status == SUSPENDED:
            return False
    else:
        engine.deliver_message(session, waiting.id, ANSWER_MESSAGE,
                               {"result": receipt.get("result", ""), "responder_name": receipt.get("responder_name", ""),
                                "responder_phone": receipt.get("responder_phone", ""),
                                "replied_at": receipt.get("replied_at", ""), "late": row.late,
                                "centre": partners.name_of(row.partner)}, now)
    record_event(session, ANSWERED_EVENT, at=now, instance_id=row.instance_id,
                 message=f"{partners.name_of(row.partner)}：{receipt.get('result', '')}"[:500],
                 data={"partner": row.partner, "serial_no": row.serial_no, "result": receipt.get("result"),
                       "responder_name": receipt.get("responder_name"),
                       "responder_phone": receipt.get("responder_phone"), "late": row.late})
    row.delivered_at = now
    return True


# -- the receiving end ---------------------------------------------------------------------------
ROAMING, ESCALATION_IN, NATIONAL_DISPATCH, ESCALATION_OUT = "roaming", "escalation_in", "national_dispatch", "escalation_out"
DISPATCH_DOWN = "dispatch_down"  # the national centre's own dispatch to a province (下发至省公司)


def is_centre(partners: Partners) -> bool:
    """Whether this deployment is the national centre: its own entry in the partners file is
    marked ``"national": true``."""
    return partners.is_national(partners.company)


def kind_of(partners: Partners, row: RoamingTransfer) -> str:
    """What a transfer is, for its wording: a roaming transfer between provinces; a province's
    escalation received here (we are the national centre: our own entry is marked national, or the
    dispatch carries the escalation's mark); a dispatch from the national centre received by a
    province; our own escalation sent up; or, at the national centre, its dispatch down to a
    province."""
    if row.direction == OUT:
        if partners.is_national(row.partner):
            return ESCALATION_OUT
        return DISPATCH_DOWN if is_centre(partners) else ROAMING
    if partners.is_national(row.company_code):
        return NATIONAL_DISPATCH
    problem = str((row.dispatch or {}).get("problem") or "")
    if is_centre(partners) or problem.startswith(MARK):
        return ESCALATION_IN
    return ROAMING


@dataclass(frozen=True)
class Received:
    """How the case a received dispatch opens is worded (its data and history, in Chinese: the
    case's own record), by :func:`kind_of`."""

    channel: str
    request: str
    event: str
    received: str
    receipt: str
    data: dict[str, str] = field(default_factory=dict)


def received_words(partners: Partners, row: RoamingTransfer) -> Received:
    sender, serial = partners.name_of(row.company_code), row.serial_no
    kind = kind_of(partners, row) if row.direction == IN else ROAMING
    if kind == ESCALATION_IN:
        return Received("province_up", f"省公司上报全国中心：{sender} 上报单 {serial}", "national_received",
                        f"上报单 {serial} ← {sender}", f"全国中心答复 {serial} → {sender}")
    if kind == NATIONAL_DISPATCH:  # a complaint the national centre passes down: 越级投诉, stricter limits
        return Received("national", f"全国中心派单：{sender} 派单 {serial}", "national_dispatch_received",
                        f"全国中心派单 {serial} ← {sender}", f"处理结果 {serial} → {sender}",
                        {"upgrade_source": "national_center"})
    return Received("roaming", f"漫游投诉转递：{sender} 电子派单 {serial}", "roaming_received",
                    f"电子派单 {serial} ← {sender}", f"电子回单 {serial} → {sender}")
