"""A complaint transferred to the customer's home province from its first-reply step
(bpmn/complaint.bpmn, 转递归属地省处理): ``roaming.home`` (inline) refuses the choice for a number not
homed at a partner; ``roaming.transfer_complaint`` (outbox, its own unit of work) starts the
``roaming_transfer`` case (processes/roaming.py), linked both ways by history events."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.base import INLINE, OUTBOX, Call, Operation, PermanentError, TransientError
from engine.errors import Forbidden, KefuError, ValidationFailed
from engine.models import DONE, AuditEvent, HumanTask, ProcessInstance, record_event
from engine.people import User
from engine.runtime import Engine
from engine.unit_of_work import Sessions

from .roaming import (
    PROCESS_KEY,
    TRANSFER_FIELDS,
    TRANSFERRED,
    TRANSFERRED_FROM,
    NotRoaming,
    transfer_of_instance,
)
from .roaming_partners import Partner, Partners


def transfer_home(partners: Partners, phone: Any, received_from: Any = None) -> Partner | None:
    """The partner a complaint about ``phone`` may be transferred to: the one homing the number,
    unless the complaint itself came from a partner's dispatch (``received_from``, its company)."""
    if received_from:
        return None
    return partners.home_of(phone)


def complaint_operations(partners: Partners, sessions: Sessions, engine: Callable[[], Engine]) -> list[Operation]:
    """``roaming.home`` (inline) and ``roaming.transfer_complaint`` (outbox, its own unit of work
    through ``sessions``) — the complaint's offer to transfer to the home province."""
    return [
        Operation("roaming.home", "查询号码归属地", partial(op_home, partners), required=("customer_phone",),
                  optional=("received_from", "refuse_field"), mode=INLINE,
                  description="The partner province homing customer_phone (its number segment): {partner, "
                              "partner_name}, {} when none does or the complaint came from a partner "
                              "(received_from). With refuse_field, none → 422 not_roaming on that field."),
        Operation("roaming.transfer_complaint", "转递归属地省处理",
                  partial(op_transfer_complaint, partners, sessions, engine), required=TRANSFER_FIELDS,
                  optional=("request",), idempotent=True, mode=OUTBOX,
                  description="Starts a roaming_transfer case with this complaint's intake data, linked both "
                              "ways: {instance_id, reference, partner, partner_name, created}; a repeated run "
                              "finds the transfer it started for this complaint."),
    ]


def op_home(partners: Partners, params: dict[str, Any], call: Call) -> dict[str, Any]:
    """``roaming.home``: where the customer's number is homed, if elsewhere. With ``refuse_field``
    (the form field that asked for a transfer) a number not homed elsewhere refuses the step as
    a validation error on that field."""
    partner = transfer_home(partners, params.get("customer_phone"), params.get("received_from"))
    if partner is not None:
        return {"partner": partner.code, "partner_name": partner.name}
    field_name = str(params.get("refuse_field") or "")
    if not field_name:
        return {}
    if params.get("received_from"):
        raise NotRoaming("this complaint came from a partner province's dispatch: it cannot be transferred again",
                         {field_name: "transferred here by a partner province; cannot be transferred again"},
                         {field_name: {"code": "received_from_partner", "params": {}}})
    raise NotRoaming("no partner province homes this number: the complaint cannot be transferred",
                     {field_name: "the customer's number is not homed in another province (号段)"},
                     {field_name: {"code": "not_homed_elsewhere", "params": {}}})


def op_transfer_complaint(partners: Partners, sessions: Sessions, engine: Callable[[], Engine],
                          params: dict[str, Any], call: Call) -> dict[str, Any]:
    """``roaming.transfer_complaint`` (outbox): start a ``roaming_transfer`` case for the job's
    complaint with its intake data, started by the agent who chose the transfer (the dispatch
    names them). Runs in the worker with its own session; a job run twice finds the transfer it
    started for this complaint (the complaint's ``roaming_transferred`` event, written with the
    start) instead of starting a second one."""
    if call.instance_id is None:
        raise PermanentError("roaming.transfer_complaint needs the complaint it runs for")
    with sessions() as session:
        try:
            done = transferred_to(session, call.instance_id)
            if done is not None:
                return {**done, "created": False}
            origin = session.get(ProcessInstance, call.instance_id)
            if origin is None:
                raise PermanentError(f"case {call.instance_id} does not exist")
            data = {name: str(params[name]) for name in (*TRANSFER_FIELDS, "request")
                    if params.get(name) not in (None, "")}
            agent = _last_agent(session, origin.id)
            server = {"origin_id": origin.id, "origin_reference": origin.reference or ""}
            try:
                instance = engine().start(session, PROCESS_KEY, data, actor=agent, now=call.now, server_data=server)
            except Forbidden:  # the agent is not in the transfer's intake group: the group picks it up
                instance = engine().start(session, PROCESS_KEY, data, actor=None, now=call.now, server_data=server)
            row = transfer_of_instance(session, instance.id)
            partner = row.partner if row is not None else ""
            result = {"instance_id": instance.id, "reference": instance.reference or "", "partner": partner,
                      "partner_name": partners.name_of(partner) if partner else ""}
            record_event(session, TRANSFERRED, at=call.now, instance_id=origin.id,
                         message=f"→ {result['partner_name'] or partner}",
                         data={**result, "link_id": instance.id, "link_reference": instance.reference})
            record_event(session, TRANSFERRED_FROM, at=call.now, instance_id=instance.id,
                         message=f"← {origin.definition.name if origin.definition else origin.process_key}",
                         data={"origin_id": origin.id, "link_id": origin.id, "link_reference": origin.reference})
            session.commit()
            return {**result, "created": True}
        except ValidationFailed as exc:  # e.g. the number is no longer homed elsewhere: retrying will not help
            session.rollback()
            raise PermanentError(f"the transfer was refused: {exc.message} {exc.fields}") from exc
        except KefuError as exc:  # e.g. the process is being redeployed
            session.rollback()
            raise TransientError(f"starting the transfer failed: {exc.message}") from exc


def transferred_to(session: Session, complaint_id: int) -> dict[str, Any] | None:
    """The transfer started for a complaint (``{instance_id, reference, partner, partner_name}``)."""
    event = session.scalar(select(AuditEvent).where(AuditEvent.instance_id == complaint_id,
                                                    AuditEvent.kind == TRANSFERRED)
                           .order_by(AuditEvent.id).limit(1))
    if event is None or not event.data:
        return None
    return {k: event.data.get(k) for k in ("instance_id", "reference", "partner", "partner_name")}


def _last_agent(session: Session, instance_id: int) -> User | None:
    """Who completed the case's latest step (the agent who chose the transfer)."""
    user_id = session.scalar(select(HumanTask.completed_by).where(
        HumanTask.instance_id == instance_id, HumanTask.status == DONE, HumanTask.completed_by.is_not(None))
        .order_by(HumanTask.completed_at.desc(), HumanTask.id.desc()).limit(1))
    return session.get(User, user_id) if user_id is not None else None
