"""Roaming complaint transfer (漫游投诉转递) between provincial deployments — DESIGN.md, "Roaming
complaint transfer (contract)"; seed 000 §1.3.1, §5.1, §5.4.

Sending (visited province): a ``roaming_transfer`` case runs the inline operation ``roaming.send``,
which finds the partner homing the customer's number (its number segments, 号段), records an
``out`` transfer, starts two SLA clocks on the partner's deadlines (first and final reply) and
queues the signed electronic dispatch (电子派单, ``roaming.dispatch``, retried with backoff until the
partner's success mark, then an incident). The case then waits for the message ``roaming_receipt``
correlated by ``serial_no``.

Receiving (home province): a verified dispatch is stored and acknowledged at once (idempotent by
company code + serial number); a local ``complaint`` case is started from it with the dispatch's
deadlines. When that case ends, the electronic receipt (电子回单, ``roaming.receipt``) goes back,
retried until acknowledged. The receipt arriving at the sender stops the partner's clocks and is
delivered into the waiting case; a late receipt is accepted and marked late.

From a complaint (bpmn/complaint.bpmn): its first-reply step may choose 转递归属地省处理 for a
number homed at a partner; ``roaming.home`` (inline) refuses the choice otherwise, and
``roaming.transfer_complaint`` (outbox, its own unit of work) starts the ``roaming_transfer``
case, linked both ways by the history events ``roaming_transferred`` / ``roaming_origin``.

A relay through the national centre is configuration only: a partner entry whose ``url`` points at
the relay, which forwards the request unchanged (signatures are end to end).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, and_, func, or_, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from connectors.base import INLINE, Call, Operation, PermanentError
from engine import outbox
from engine.clock import LOCAL_TZ, parse_instant
from engine.db import Base
from engine.errors import Forbidden, KefuError, NotFound, ValidationFailed
from engine.listeners import StepHooks
from engine.models import COMPLETED, AuditEvent, HumanTask, ProcessInstance, record_event
from engine.people import Group, User
from engine.runtime import Engine
from slas.clocks import start_clock
from slas.models import RUNNING as CLOCK_RUNNING
from slas.models import STOPPED, Escalation, SlaClock
from slas.policies import Policy

from .roaming_partners import Partner, Partners

log = logging.getLogger("kefu.roaming")

OUT, IN = "out", "in"
SENT, ACKNOWLEDGED, ANSWERED, CLOSED, FAILED = "sent", "acknowledged", "answered", "closed", "failed"
STATUSES = (SENT, ACKNOWLEDGED, ANSWERED, CLOSED, FAILED)
PROCESS_KEY = "roaming_transfer"
MESSAGE = "roaming_receipt"
DISPATCH_ATTEMPTS = 12   # with the outbox's backoff (10 s doubling, capped at 1 h): about 3.4 hours
RECEIPT_ATTEMPTS = 12
FIRST_REPLY = timedelta(hours=2)   # the complaint's own limits when the start data gives none
FINAL_REPLY = timedelta(days=3)
CLOCK_TITLES = ("归属地首次答复时限", "归属地最终答复时限")
SERVICE_PHONE = "10010"
# A complaint transferred from its first-reply step (bpmn/complaint.bpmn): the history events on
# both cases, which also link them (``link_id`` / ``link_reference`` in their data).
TRANSFERRED, TRANSFERRED_FROM = "roaming_transferred", "roaming_origin"
TRANSFER_FIELDS = ("customer_phone", "complainant_name", "contact_phone", "channel", "category", "description")

DISPATCH_FIELDS = ("company_code", "serial_no", "to_company", "dispatcher_name", "dispatcher_phone",
                   "customer_phone", "complainant_name", "complainant_phone", "category", "problem",
                   "first_reply_due", "final_reply_due", "dispatched_at")
RECEIPT_FIELDS = ("company_code", "dispatch_company_code", "dispatch_serial_no", "responder_name",
                  "responder_phone", "result", "replied_at")
INSTANT_FIELDS = frozenset({"first_reply_due", "final_reply_due", "dispatched_at", "replied_at"})
CATEGORIES = ("billing", "network", "service", "sales", "suggestion", "other",
              "installation", "value_added", "appeal")  # the complaint intake form's codes
LIMITS = {"problem": 4000, "result": 4000}  # others: 120 characters


# -- errors (codes; web/errors.py maps them to statuses) -------------------------------------------
class NotRoaming(ValidationFailed):
    """No partner homes the customer's number: nothing to transfer. ``codes`` (optional) names a
    per-field reason the web layer words in the user's language (web/errors.py)."""

    code = "not_roaming"

    def __init__(self, message: str, fields: dict[str, str] | None = None,
                 codes: dict[str, dict[str, Any]] | None = None) -> None:
        super().__init__(message, fields)
        if codes:
            self.codes = codes


class SignatureRefused(KefuError):
    """A request whose signature or timestamp does not check out (401)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class UnknownCompany(Forbidden):
    code = "unknown_company"


class UnknownDispatch(NotFound):
    code = "unknown_dispatch"


# -- the table -----------------------------------------------------------------------------------
def _created_day(context: Any) -> date:
    """The Beijing day a transfer was recorded (its statistics' day, processes/transfer_report.py)."""
    return context.get_current_parameters()["created_at"].astimezone(LOCAL_TZ).date()


class RoamingTransfer(Base):
    """One dispatch sent (``out``) or received (``in``), with its receipt."""

    __tablename__ = "roaming_transfers"
    __table_args__ = (Index("ix_roaming_transfers_key", "direction", "company_code", "serial_no", unique=True),
                      Index("ix_roaming_transfers_open", "status", "id"),
                      # covering for the statistics (processes/transfer_report.py): no row is read
                      Index("ix_roaming_transfers_report", "created_day", "direction", "partner", "status", "late",
                            "acknowledged_at", "answered_at", "final_reply_due"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    direction: Mapped[str] = mapped_column(String(4))
    company_code: Mapped[str] = mapped_column(String(16))    # the dispatching company
    serial_no: Mapped[str] = mapped_column(String(64))        # its serial number
    partner: Mapped[str] = mapped_column(String(16))          # the other side's code
    to_company: Mapped[str] = mapped_column(String(16))       # the company the dispatch is addressed to
    status: Mapped[str] = mapped_column(String(16))
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("process_instances.id"), index=True)
    customer_phone: Mapped[str] = mapped_column(String(32))
    first_reply_due: Mapped[datetime]
    final_reply_due: Mapped[datetime]
    dispatch: Mapped[dict[str, Any]] = mapped_column(JSON)
    receipt: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("connector_jobs.id"))  # the exchange waited on
    created_at: Mapped[datetime]
    acknowledged_at: Mapped[datetime | None]
    answered_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]   # out: the receipt handed to the waiting case
    closed_at: Mapped[datetime | None]
    created_day: Mapped[date] = mapped_column(default=_created_day)


# -- sending -------------------------------------------------------------------------------------
def operations(partners: Partners) -> list[Operation]:
    """The product's inline operation ``roaming.send`` (bpmn/roaming_transfer.bpmn)."""

    def run(params: dict[str, Any], call: Call) -> dict[str, Any]:
        if call.session is None or call.instance_id is None:
            raise PermanentError("roaming.send runs inside a step only (mode inline)")
        return send_dispatch(call.session, partners, call.instance_id, params, call.now)

    return [Operation("roaming.send", "漫游投诉：转递归属地", run,
                      required=("serial_no", "customer_phone", "complainant_name", "contact_phone",
                                "category", "description"),
                      optional=("first_reply_due", "final_reply_due"), mode=INLINE,
                      description="Records the transfer to the partner homing customer_phone, starts the "
                                  "partner's two deadline clocks and queues the signed dispatch "
                                  "(roaming.dispatch): {serial_no, partner, partner_name, first_reply_due, "
                                  "final_reply_due}. No partner homes the number → 422 not_roaming.")]


def send_dispatch(session: Session, partners: Partners, instance_id: int, params: dict[str, Any],
                  now: datetime) -> dict[str, Any]:
    """Record an ``out`` transfer for case ``instance_id`` and queue its dispatch (in the step)."""
    partner = partners.home_of(params.get("customer_phone"))
    if partner is None:
        raise NotRoaming("no partner province homes this number: it is not a roaming customer",
                         {"customer_phone": "not homed by any partner (号段)"})
    serial = str(params["serial_no"])
    existing = session.scalar(select(RoamingTransfer).where(
        RoamingTransfer.direction == OUT, RoamingTransfer.company_code == partners.company,
        RoamingTransfer.serial_no == serial))
    if existing is not None:  # the same step run again
        return _send_result(existing, partners)
    first_due = _due(params.get("first_reply_due"), now + FIRST_REPLY, now)
    final_due = max(_due(params.get("final_reply_due"), now + FINAL_REPLY, now), first_due)
    instance = session.get(ProcessInstance, instance_id)
    dispatcher = session.get(User, instance.started_by) if instance and instance.started_by else None
    body = {"company_code": partners.company, "serial_no": serial, "to_company": partner.code,
            "dispatcher_name": dispatcher.display_name if dispatcher else partners.name_of(partners.company),
            "dispatcher_phone": (dispatcher.phone if dispatcher else None) or SERVICE_PHONE,
            "customer_phone": str(params["customer_phone"]), "complainant_name": str(params["complainant_name"]),
            "complainant_phone": str(params["contact_phone"]), "category": str(params["category"]),
            "problem": str(params["description"]), "first_reply_due": _iso(first_due),
            "final_reply_due": _iso(final_due), "dispatched_at": _iso(now)}
    row = RoamingTransfer(direction=OUT, company_code=partners.company, serial_no=serial, partner=partner.code,
                          to_company=partner.code, status=SENT, instance_id=instance_id,
                          customer_phone=body["customer_phone"], first_reply_due=first_due,
                          final_reply_due=final_due, dispatch=body, late=False, created_at=now)
    session.add(row)
    job = outbox.enqueue(session, "roaming.dispatch", {"partner": partner.code, "body": body},
                         key=f"roaming-dispatch-{partners.company}-{serial}", now=now, instance_id=instance_id,
                         max_attempts=DISPATCH_ATTEMPTS)
    session.flush()
    row.job_id = job.id
    if instance is not None:
        group = session.scalar(select(Group.id).where(Group.code == "intake"))
        for title, due, chain in ((CLOCK_TITLES[0], first_due, ((1.0, "leader"),)),
                                  (CLOCK_TITLES[1], final_due, ((1.0, "leader"), (1.5, "manager")))):
            policy = Policy(duration_seconds=(due - now).total_seconds() + 1, calendar="24x7", escalations=chain)
            start_clock(session, instance, policy, title=f"{title}（{partner.name}）", group_id=group, now=now,
                        explicit_due=due)
    record_event(session, "roaming_sent", at=now, instance_id=instance_id,
                 message=f"电子派单 {serial} → {partner.name}", data={"partner": partner.code, "serial_no": serial})
    return _send_result(row, partners)


def _send_result(row: RoamingTransfer, partners: Partners) -> dict[str, Any]:
    return {"serial_no": row.serial_no, "partner": row.partner, "partner_name": partners.name_of(row.partner),
            "first_reply_due": _iso(row.first_reply_due), "final_reply_due": _iso(row.final_reply_due)}


# -- receiving (the API's side) --------------------------------------------------------------------
def sender(partners: Partners, company: str | None, fresh: Callable[[], bool],
           valid: Callable[[str], bool]) -> Partner:
    """The partner a request comes from, when its headers check out: an unknown company → 403;
    ``fresh()`` false (timestamp more than 300 s away) or ``valid(secret)`` false (signature) →
    401. The signature functions are the connector's (``connectors.roaming.signing``)."""
    partner = partners.entries.get((company or "").strip().upper())
    if partner is None or not partner.secret:
        raise UnknownCompany(f"unknown company '{company or ''}'")
    if not fresh():
        raise SignatureRefused("stale_timestamp", "X-Kefu-Timestamp is missing or more than 300 s away")
    if not valid(partner.secret):
        raise SignatureRefused("bad_signature", "X-Kefu-Signature does not match")
    return partner


def parse_body(raw: bytes, names: tuple[str, ...], sender: Partner) -> dict[str, str]:
    """The request's JSON object with every field of ``names`` present and well-formed; else 422
    naming the fields."""
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValidationFailed("the body is not UTF-8 JSON", {"body": "not UTF-8 JSON"}) from exc
    if not isinstance(body, dict):
        raise ValidationFailed("the body must be a JSON object", {"body": "must be an object"})
    problems: dict[str, str] = {}
    for name in names:
        value = body.get(name)
        if not isinstance(value, str) or not value.strip():
            problems[name] = "required (a non-empty string)"
        elif len(value) > LIMITS.get(name, 120):
            problems[name] = f"at most {LIMITS.get(name, 120)} characters"
        elif name in INSTANT_FIELDS and parse_instant(value) is None:
            problems[name] = "an ISO 8601 instant with offset"
    if "category" in names and "category" not in problems and body["category"] not in CATEGORIES:
        problems["category"] = "one of " + ", ".join(CATEGORIES)
    if "company_code" not in problems and str(body.get("company_code", "")).upper() != sender.code:
        problems["company_code"] = "does not match X-Kefu-Company"
    if problems:
        raise ValidationFailed("the request has missing or malformed fields", problems)
    return {name: body[name].strip() for name in names}


def receive_dispatch(session: Session, partners: Partners, sender: Partner, body: dict[str, str],
                     now: datetime) -> RoamingTransfer:
    """Store a received dispatch (acknowledged); the same (company, serial) again is the same row."""
    if not partners.answers_for(body["to_company"].upper()):
        raise ValidationFailed("this deployment is not the dispatch's destination",
                               {"to_company": f"not {partners.company}"})
    existing = _find(session, IN, sender.code, body["serial_no"])
    if existing is not None:
        return existing
    row = RoamingTransfer(direction=IN, company_code=sender.code, serial_no=body["serial_no"], partner=sender.code,
                          to_company=body["to_company"].upper(), status=ACKNOWLEDGED,
                          customer_phone=body["customer_phone"],
                          first_reply_due=_instant(body["first_reply_due"]),
                          final_reply_due=_instant(body["final_reply_due"]),
                          dispatch=dict(body), late=False, created_at=now, acknowledged_at=now)
    session.add(row)
    session.flush()
    return row


def start_case(session: Session, engine: Engine, partners: Partners, row: RoamingTransfer,
               now: datetime) -> ProcessInstance:
    """Start the home province's complaint case for a received dispatch (in the caller's
    transaction), with the dispatch's deadlines."""
    from .national import received_words  # a national escalation is worded as one (processes/national.py)

    body = row.dispatch
    words = received_words(partners, row)
    data = {"customer_phone": body["customer_phone"][:20], "complainant_name": body["complainant_name"][:60],
            "contact_phone": body["complainant_phone"][:20], "channel": words.channel, "category": body["category"],
            "description": body["problem"], "request": words.request[:2000], **words.data}
    server = {"first_reply_due": body["first_reply_due"], "final_reply_due": body["final_reply_due"],
              "roaming_company": row.company_code, "roaming_serial_no": row.serial_no,
              "dispatcher_name": body["dispatcher_name"], "dispatcher_phone": body["dispatcher_phone"]}
    instance = engine.start(session, "complaint", data, actor=None, now=now, server_data=server)
    row.instance_id = instance.id
    record_event(session, words.event, at=now, instance_id=instance.id, message=words.received,
                 data={"partner": row.company_code, "serial_no": row.serial_no})
    return instance


def receive_receipt(session: Session, partners: Partners, sender: Partner, body: dict[str, str],
                    now: datetime) -> RoamingTransfer:
    """Store a receipt for one of our dispatches (404 for one we never sent); a repeat changes
    nothing. A receipt after the final-reply deadline is accepted and marked late."""
    row = _find(session, OUT, body["dispatch_company_code"].upper(), body["dispatch_serial_no"])
    if row is None or row.company_code != partners.company or row.partner != sender.code:
        raise UnknownDispatch(f"no dispatch {body['dispatch_serial_no']} was sent to {sender.code}")
    if row.receipt is not None:
        return row
    replied = _instant(body["replied_at"])
    row.receipt, row.answered_at = dict(body), now
    row.late = max(replied, now) > row.final_reply_due
    if row.status != CLOSED:
        row.status = ANSWERED
    if row.acknowledged_at is None:
        row.acknowledged_at = now  # the partner answered, so it had the dispatch
    if partners.is_national(row.partner):  # a national escalation: the wait's own clock
        from .national import stop_clock

        stop_clock(session, row, now)
    else:
        _stop_partner_clocks(session, row, now)
    record_event(session, "roaming_answered", at=now, instance_id=row.instance_id,
                 message=f"电子回单 {row.serial_no} ← {partners.name_of(sender.code)}" + ("（逾期）" if row.late else ""),
                 data={"partner": sender.code, "serial_no": row.serial_no, "late": row.late})
    return row


def deliver_receipt(session: Session, engine: Engine, row: RoamingTransfer, now: datetime) -> bool:
    """Hand a stored receipt to the case waiting for it (one step); False when none waits yet."""
    if row.receipt is None or row.delivered_at is not None:
        return False
    instance = engine.waiting_for_message(session, MESSAGE, row.serial_no)
    if instance is None:
        finished = row.instance_id is not None and session.scalar(
            select(ProcessInstance.status).where(ProcessInstance.id == row.instance_id)) not in (None, "running",
                                                                                                  "suspended")
        if finished:
            row.delivered_at = now  # the case ended some other way: nothing waits any more
        return False
    receipt = row.receipt
    payload = {"result": receipt["result"], "responder_name": receipt["responder_name"],
               "responder_phone": receipt["responder_phone"], "replied_at": receipt["replied_at"],
               "company_code": receipt["company_code"], "late": row.late}
    engine.deliver_message(session, instance.id, MESSAGE, payload, now)
    row.delivered_at = now
    return True


# -- the tick ------------------------------------------------------------------------------------
class Roaming:
    """The exchange as the tick moves it on (``advance``) and the API drives it."""

    def __init__(self, partners: Partners, engine: Callable[[], Engine]) -> None:
        self.partners, self._engine = partners, engine

    @property
    def engine(self) -> Engine:
        return self._engine()

    def advance(self, session: Session, now: datetime, limit: int = 200) -> int:
        """Move open transfers on by what their jobs did; start cases for received dispatches,
        queue receipts of finished ones, deliver stored receipts. Commits. Returns the changes."""
        changed = 0
        # Only rows with something to do: an acknowledged transfer waits on a person (ours or the
        # partner's) and costs nothing here until its case closes or its receipt arrives.
        needs_work = or_(RoamingTransfer.status.in_((SENT, FAILED)),
                         and_(RoamingTransfer.direction == IN, RoamingTransfer.status == ANSWERED),
                         and_(RoamingTransfer.direction == IN, RoamingTransfer.instance_id.is_(None)),
                         and_(RoamingTransfer.direction == OUT, RoamingTransfer.receipt.is_not(None),
                              RoamingTransfer.delivered_at.is_(None)))
        # A receipt not yet handed to its case is delivered even when the transfer is closed (its
        # case ended first): never lost.
        undelivered = and_(RoamingTransfer.direction == OUT, RoamingTransfer.receipt.is_not(None),
                           RoamingTransfer.delivered_at.is_(None))
        ids = list(session.scalars(select(RoamingTransfer.id).where(
            or_(and_(RoamingTransfer.status != CLOSED, needs_work), undelivered))
            .order_by(RoamingTransfer.id).limit(limit)))
        session.commit()
        for row_id in ids:
            try:
                row = session.get(RoamingTransfer, row_id)
                if row is not None and self._step(session, row, now):
                    changed += 1
                session.commit()
            except KefuError as exc:  # one transfer's trouble must not stop the others
                session.rollback()
                log.warning("roaming transfer %s: %s", row_id, exc)
        return changed

    def _step(self, session: Session, row: RoamingTransfer, now: datetime) -> bool:
        if row.direction == IN:
            if row.instance_id is None:
                start_case(session, self.engine, self.partners, row, now)
                return True
            if row.status == ANSWERED and row.job_id is None:
                return self._queue_receipt(session, row, now)
        elif row.receipt is not None and row.delivered_at is None:
            if self.partners.is_national(row.partner):
                from .national import deliver_answer

                return deliver_answer(session, self.partners, self.engine, row, now)
            return deliver_receipt(session, self.engine, row, now)
        return _follow_job(session, row, now)

    def _queue_receipt(self, session: Session, row: RoamingTransfer, now: datetime) -> bool:
        instance = session.get(ProcessInstance, row.instance_id)
        if instance is None:
            return False
        data = self.engine.workflow_data(session, instance)
        responder = _last_actor(session, instance.id)
        result = str(data.get("final_reply") or data.get("first_reply") or data.get("handling_result") or "已处理")
        body = {"company_code": row.to_company, "dispatch_company_code": row.company_code,
                "dispatch_serial_no": row.serial_no,
                "responder_name": responder.display_name if responder else self.partners.name_of(row.to_company),
                "responder_phone": (responder.phone if responder else None) or SERVICE_PHONE,
                "result": result[:4000], "replied_at": _iso(row.answered_at or now)}
        row.receipt = body
        row.late = (row.answered_at or now) > row.final_reply_due
        job = outbox.enqueue(session, "roaming.receipt", {"partner": row.company_code, "body": body},
                             key=f"roaming-receipt-{row.company_code}-{row.serial_no}", now=now,
                             instance_id=row.instance_id, max_attempts=RECEIPT_ATTEMPTS)
        session.flush()
        row.job_id = job.id
        from .national import received_words

        record_event(session, "roaming_receipt_queued", at=now, instance_id=row.instance_id,
                     message=received_words(self.partners, row).receipt)
        return True


def _follow_job(session: Session, row: RoamingTransfer, now: datetime) -> bool:
    """An exchange's status from its outbox job: done → the partner's success mark; failed →
    failed (the incident is open); queued again after failing → an administrator retried it."""
    job = session.get(outbox.ConnectorJob, row.job_id) if row.job_id else None
    if job is None:
        return False
    waiting = SENT if row.direction == OUT else ANSWERED
    if job.status == outbox.DONE:
        if row.direction == OUT and row.status in (SENT, FAILED):
            row.status, row.acknowledged_at = ACKNOWLEDGED if row.receipt is None else ANSWERED, now
            record_event(session, "roaming_acknowledged", at=now, instance_id=row.instance_id,
                         message=f"对方已确认电子派单 {row.serial_no}")
            return True
        if row.direction == IN and row.status in (ANSWERED, FAILED):
            row.status, row.closed_at = CLOSED, now
            record_event(session, "roaming_acknowledged", at=now, instance_id=row.instance_id,
                         message=f"对方已确认电子回单 {row.serial_no}")
            return True
        return False
    if job.status == outbox.FAILED and row.status != FAILED:
        row.status = FAILED
        return True
    if job.status in (outbox.QUEUED, outbox.RUNNING) and row.status == FAILED:
        row.status = waiting
        return True
    return False


# -- the engine's step listener ----------------------------------------------------------------
class RoamingListener(StepHooks):
    """A finished home-province complaint sends its receipt (queued by the next tick); a finished
    ``roaming_transfer`` case closes its transfer."""

    def instance_finished(self, session: Session, instance: ProcessInstance, now: datetime) -> None:
        if instance.process_key not in ("complaint", PROCESS_KEY) or instance.status != COMPLETED:
            return
        with session.no_autoflush:
            row = session.scalar(select(RoamingTransfer).where(RoamingTransfer.instance_id == instance.id))
        if row is None:
            return
        if row.direction == IN and row.status == ACKNOWLEDGED:
            row.status, row.answered_at = ANSWERED, now
        elif row.direction == OUT and row.status in (ACKNOWLEDGED, ANSWERED):
            row.status, row.closed_at = CLOSED, now


# -- reading -------------------------------------------------------------------------------------
def transfers(session: Session, limit: int = 200) -> list[RoamingTransfer]:
    return list(session.scalars(select(RoamingTransfer).order_by(RoamingTransfer.id.desc()).limit(limit)))


def transfer_of_instance(session: Session, instance_id: int) -> RoamingTransfer | None:
    return session.scalar(select(RoamingTransfer).where(RoamingTransfer.instance_id == instance_id)
                          .order_by(RoamingTransfer.id.desc()).limit(1))


def as_item(row: RoamingTransfer) -> dict[str, Any]:
    """The contract's item of ``GET /api/v1/roaming/transfers``."""
    return {"serial_no": row.serial_no, "direction": row.direction, "partner": row.partner, "status": row.status,
            "instance_id": row.instance_id, "first_reply_due": _iso(row.first_reply_due),
            "final_reply_due": _iso(row.final_reply_due), "receipt": row.receipt,
            "company_code": row.company_code, "late": row.late, "created_at": _iso(row.created_at),
            "acknowledged_at": _opt_iso(row.acknowledged_at), "answered_at": _opt_iso(row.answered_at),
            "closed_at": _opt_iso(row.closed_at)}


@dataclass
class Figures:
    """One line of the roaming statistics."""

    direction: str
    partner: str
    total: int = 0
    answered: int = 0
    in_time: int = 0
    late: int = 0
    open: int = 0
    failed: int = 0


def statistics(session: Session, since: datetime | None = None) -> list[Figures]:
    """Sent and received transfers per partner: answered in time, late, still open, failed."""
    answered = RoamingTransfer.answered_at.is_not(None)
    query = (select(RoamingTransfer.direction, RoamingTransfer.partner, RoamingTransfer.status,
                    answered.label("answered"), RoamingTransfer.late, func.count())
             .group_by(RoamingTransfer.direction, RoamingTransfer.partner, RoamingTransfer.status,
                       answered, RoamingTransfer.late))
    if since is not None:
        query = query.where(RoamingTransfer.created_at >= since)
    lines: dict[tuple[str, str], Figures] = {}
    for direction, partner, status, was_answered, late, count in session.execute(query):
        line = lines.setdefault((direction, partner), Figures(direction, partner))
        line.total += count
        if status == FAILED:
            line.failed += count
        if was_answered:
            line.answered += count
            if late:
                line.late += count
            else:
                line.in_time += count
        elif status != FAILED:
            line.open += count
    return sorted(lines.values(), key=lambda f: (f.direction != OUT, f.partner))


# -- internals -----------------------------------------------------------------------------------
def _find(session: Session, direction: str, company: str, serial: str) -> RoamingTransfer | None:
    return session.scalar(select(RoamingTransfer).where(
        RoamingTransfer.direction == direction, RoamingTransfer.company_code == company,
        RoamingTransfer.serial_no == serial))


def _stop_partner_clocks(session: Session, row: RoamingTransfer, now: datetime) -> None:
    """The receipt came: the partner's two deadline clocks stop and their alerts clear."""
    if row.instance_id is None:
        return
    clocks = list(session.scalars(select(SlaClock.id).where(
        SlaClock.instance_id == row.instance_id, SlaClock.task_id.is_(None), SlaClock.state == CLOCK_RUNNING)))
    if not clocks:
        return
    session.execute(update(SlaClock).where(SlaClock.id.in_(clocks))
                    .values(state=STOPPED, stopped_at=now, next_check_at=None)
                    .execution_options(synchronize_session=False))
    session.execute(update(Escalation).where(Escalation.clock_id.in_(clocks), Escalation.cleared_at.is_(None))
                    .values(cleared_at=now).execution_options(synchronize_session=False))


def _last_actor(session: Session, instance_id: int) -> User | None:
    """Who completed the case's last step (the receipt's responder)."""
    user_id = session.scalar(select(HumanTask.completed_by).where(
        HumanTask.instance_id == instance_id, HumanTask.completed_by.is_not(None))
        .order_by(HumanTask.completed_at.desc(), HumanTask.id.desc()).limit(1))
    if user_id is None:
        name = session.scalar(select(AuditEvent.actor).where(
            AuditEvent.instance_id == instance_id, AuditEvent.actor.is_not(None))
            .order_by(AuditEvent.id.desc()).limit(1))
        return session.scalar(select(User).where(User.username == name)) if name else None
    return session.get(User, user_id)


def _due(value: Any, default: datetime, now: datetime) -> datetime:
    parsed = parse_instant(value) if value else None
    return parsed if parsed is not None and parsed > now else default


def _instant(value: str) -> datetime:
    parsed = parse_instant(value)
    assert parsed is not None  # checked by parse_body
    return parsed


def _iso(value: datetime) -> str:
    return value.astimezone(LOCAL_TZ).isoformat(timespec="seconds")


def _opt_iso(value: datetime | None) -> str | None:
    return _iso(value) if value else None
