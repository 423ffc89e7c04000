"""The operations the ``outbound_callback`` diagram names (the product's own, not a peer's): the
calling window, the customer's level, the dialling agent, the record of each attempt, a return
visit's result, and starting a callback from another case.

Inline operations run inside the step and use its session (``call.session``); ``callback.request``
runs in the worker and opens a unit of work of its own (``sessions``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from sqlalchemy import select

from connectors.base import INLINE, OUTBOX, Operation, PermanentError, TransientError
from connectors.base import Call as JobCall
from engine import peer_events
from engine.clock import parse_instant
from engine.errors import KefuError, ValidationFailed
from engine.models import DONE, HumanTask, ProcessInstance, record_event
from engine.people import User
from engine.runtime import Engine
from engine.unit_of_work import Sessions

from .complaint_rules import queue_return_visit
from .outbound_calls import (
    KINDS,
    OUTCOME_ZH,
    SATISFACTION_ZH,
    VIP_PRIORITY,
    CallingHours,
    _kind_zh,
    dial_due,
    normalize_phone,
    start_callback,
)
from .telephony import OUTBOUND, Call


def operations(hours: CallingHours, billing: Any, sessions: Sessions,
               engine: Callable[[], Engine]) -> list[Operation]:
    """The product's own operations: ``hours`` the calling window (KEFU_CALLBACK_HOURS),
    ``billing`` the BillingGateway (or None), ``engine`` returns the running engine."""
    return [
        Operation(
            "callback.window", "外呼时段检查", partial(op_window, hours), optional=("priority",),
            mode=INLINE,
            description="Whether customers may be called now (KEFU_CALLBACK_HOURS, Beijing time): "
                        "{open, opens_at (ISO instant, for a timeDate timer), dial_due (the dialling "
                        "task's deadline by priority: 10 min from priority 5 / VIP, else 30 min)}."),
        Operation(
            "callback.plan", "查询客户等级与优先级", partial(op_plan, billing), required=("phone",),
            optional=("priority",), mode=INLINE,
            description="The customer's level from billing and the callback's priority: {vip, level, "
                        "priority (at least 5 for a VIP), note}. Billing down: not VIP, note says why."),
        Operation(
            "callback.agent", "确定外呼坐席", op_agent, optional=("task",), mode=INLINE,
            description="The agent who completed the task 'task' (default dial) of this case in this "
                        "step: {user_id, username, name, extension}; refused when they have no extension."),
        Operation(
            "callback.attempt", "记录外呼结果", op_attempt, required=("call", "attempt", "phone"),
            optional=("dialer", "kind", "title", "max_attempts"), mode=INLINE,
            description="Records one attempt (a calls row, a history line) and pops the case on the "
                        "agent's screen when answered: {outcome, attempt, call_id}."),
        Operation(
            "callback.visit_result", "回访结果记入投诉", op_visit_result,
            required=("origin_id", "satisfaction"), optional=("comment", "agent"), mode=INLINE,
            description="Writes a return visit's satisfaction on the history of the case it visits."),
        Operation(
            "callback.request", "发起回访/回叫", partial(op_request, sessions, engine), required=("phone",),
            optional=("kind", "reason", "priority"), idempotent=True, mode=OUTBOX,
            description="Starts an outbound_callback case for this case (kind return_visit by default): "
                        "{instance_id, reference, created}; a repeated run finds the case it started."),
    ]


def _step_session(call: JobCall) -> Any:
    if call.session is None:
        raise PermanentError("this operation runs inside a step only (mode inline)")
    return call.session


def op_window(hours: CallingHours, params: dict[str, Any], call: JobCall) -> dict[str, Any]:
    """``callback.window``: is it calling time now (KEFU_CALLBACK_HOURS)? ``{open, opens_at,
    dial_due}``; ``dial_due`` is the 回叫客户 task's deadline by the case's priority."""
    window = hours.window(call.now)
    try:
        priority = int(params.get("priority") or 0)
    except (TypeError, ValueError):
        priority = 0
    return {**window, "dial_due": dial_due(call.now, priority)}


def op_plan(gateway: Any, params: dict[str, Any], call: JobCall) -> dict[str, Any]:
    """``callback.plan``: the customer's level from billing and the callback's priority. A billing
    database that does not answer must not lose a callback request: the customer then counts as
    not VIP and the reason is kept."""
    try:
        priority = max(0, min(9, int(params.get("priority") or 0)))
    except (TypeError, ValueError):
        priority = 0
    level, note = None, ""
    phone = str(params.get("phone") or "")
    if gateway is not None and phone:
        try:
            found = gateway.customer_360(phone, months=0, payments_limit=0, orders_limit=0)
            level = (found or {}).get("customer", {}).get("level")
        except Exception as exc:  # noqa: BLE001 - any billing failure: plan without the level
            note = f"计费系统未能查询客户等级：{exc.__class__.__name__}"
    vip = level == "vip"
    return {"vip": vip, "level": level, "priority": max(priority, VIP_PRIORITY) if vip else priority,
            "note": note}


def op_agent(params: dict[str, Any], call: JobCall) -> dict[str, Any]:
    """``callback.agent``: the agent who completed the task ``task`` (default ``dial``) of this case
    in this very step, with their extension — read from the task row, so a form cannot name
    someone else's phone."""
    name = str(params.get("task") or "dial")
    session = _step_session(call)
    task = session.scalars(select(HumanTask).where(
        HumanTask.instance_id == call.instance_id, HumanTask.name == name, HumanTask.status == DONE)
        .order_by(HumanTask.completed_at.desc(), HumanTask.id.desc()).limit(1)).first()
    user = session.get(User, task.completed_by) if task is not None and task.completed_by else None
    if user is None:
        raise PermanentError(f"no agent has completed the step '{name}' of this case")
    if not user.extension:
        raise PermanentError(f"坐席 {user.display_name} 没有登记分机号，无法外呼（请管理员在用户资料中填写分机）")
    return {"user_id": user.id, "username": user.username, "name": user.display_name,
            "extension": user.extension}


def op_attempt(params: dict[str, Any], call: JobCall) -> dict[str, Any]:
    """``callback.attempt``: put one dialling attempt on the record — a ``calls`` row (outbound,
    source callback, linked to the case), a line on the history, and, when the customer answered,
    a screen pop that brings the case to the agent's screen."""
    from processes.telephony import push_pop

    session = _step_session(call)
    result = params.get("call") if isinstance(params.get("call"), dict) else {}
    dialer = params.get("dialer") if isinstance(params.get("dialer"), dict) else {}
    outcome = str(result.get("outcome") or "failed")
    attempt = int(params.get("attempt") or 0)
    phone = str(params.get("phone") or "")
    at = parse_instant(result.get("attempt_at")) or call.now
    uniqueid = str(result.get("uniqueid") or "")
    # The PBX's id when it made a channel; else one of ours (a failed Originate has none).
    call_id = uniqueid if uniqueid and uniqueid != "<null>" else f"cb-{call.instance_id}-{attempt}"
    row = session.scalar(select(Call).where(Call.call_id == call_id))
    if row is None:
        row = Call(call_id=call_id, direction=OUTBOUND, customer_number=phone, started_at=at)
        session.add(row)
    row.direction, row.source, row.instance_id = OUTBOUND, "callback", call.instance_id
    row.extension, row.agent_id = dialer.get("extension"), dialer.get("user_id")
    row.outcome = outcome
    if outcome == "answered":
        row.answered_at = row.answered_at or call.now
    else:
        row.ended_at, row.hangup_cause = row.ended_at or call.now, str(result.get("reason") or "")[:60] or None
    max_attempts = int(params.get("max_attempts") or 3)
    label = OUTCOME_ZH.get(outcome, outcome)
    record_event(session, "callback_attempt", at=call.now, instance_id=call.instance_id,
                 actor=dialer.get("username"),
                 message=f"第{attempt}/{max_attempts}次外呼 {phone}：{label}",
                 data={"attempt": attempt, "outcome": outcome, "reason": result.get("reason"),
                       "extension": dialer.get("extension"), "uniqueid": uniqueid or None})
    session.flush()
    if outcome == "answered" and dialer.get("user_id"):
        instance = session.get(ProcessInstance, call.instance_id)
        reference = instance.reference if instance is not None else ""
        push_pop(session, user_id=int(dialer["user_id"]), kind="task",
                 title=f"{params.get('title') or '回叫'}：{phone} 已接通（{reference}）",
                 url=f"/cases/{call.instance_id}", now=call.now, call_id=row.id,
                 payload={"phone": phone, "reference": reference, "instance_id": call.instance_id,
                          "kind": params.get("kind"), "attempt": attempt})
    return {"outcome": outcome, "attempt": attempt, "call_id": row.id}


def op_visit_result(params: dict[str, Any], call: JobCall) -> dict[str, Any]:
    """``callback.visit_result``: the satisfaction a return visit heard, written on the complaint's
    history (the complaint itself is closed; its history is where it is read)."""
    session = _step_session(call)
    origin_id = params.get("origin_id")
    origin = session.get(ProcessInstance, int(origin_id)) if origin_id else None
    if origin is None:
        return {"recorded": False, "reason": "the return visit names no case"}
    satisfaction = str(params.get("satisfaction") or "")
    comment = str(params.get("comment") or "")[:500]
    instance = session.get(ProcessInstance, call.instance_id)
    reference = instance.reference if instance is not None else ""
    record_event(session, "return_visit", at=call.now, instance_id=origin.id, actor=params.get("agent"),
                 message=f"电话回访（{reference}）：{SATISFACTION_ZH.get(satisfaction, satisfaction)}"
                         + (f"，{comment}" if comment else ""),
                 data={"satisfaction": satisfaction, "comment": comment, "satisfaction_source": "return_visit",
                       "callback_id": call.instance_id, "callback_reference": reference})
    # The complaint waits for this result: 不满意 reopens it (processes/complaint_rules.py).
    queue_return_visit(session, origin, satisfaction=satisfaction, comment=comment,
                       callback_id=call.instance_id, callback_reference=reference or "", now=call.now)
    return {"recorded": True, "origin_id": origin.id, "satisfaction": satisfaction}


def op_request(sessions: Sessions, engine: Callable[[], Engine], params: dict[str, Any],
               call: JobCall) -> dict[str, Any]:
    """``callback.request`` (outbox): start an ``outbound_callback`` case for the job's case (e.g.
    a return visit after a complaint closed). Runs in the worker with its own session; a job run
    twice (a crash after the start) finds the case it started by the job's reference."""
    phone = normalize_phone(params.get("phone"))
    if phone is None:
        raise PermanentError("phone must be 3 to 20 digits, optionally with a leading +")
    kind = str(params.get("kind") or "return_visit")
    if kind not in KINDS:
        raise PermanentError(f"kind must be one of {', '.join(KINDS)}")
    with sessions() as session:
        try:
            done = session.scalar(select(peer_events.PeerReference).where(
                peer_events.PeerReference.kind == "callback", peer_events.PeerReference.job_id == call.job_id))
            if done is not None:
                instance = session.scalar(select(ProcessInstance).where(ProcessInstance.reference == done.ref))
                return {"instance_id": instance.id if instance else None, "reference": done.ref, "created": False}
            origin = session.get(ProcessInstance, call.instance_id) if call.instance_id else None
            instance, _ = start_callback(session, engine(), phone=phone,
                                         reason=str(params.get("reason") or _kind_zh(kind))[:200], kind=kind,
                                         priority=int(params.get("priority") or 0), now=call.now, origin=origin)
            session.add(peer_events.PeerReference(kind="callback", ref=instance.reference or str(instance.id),
                                             job_id=call.job_id, instance_id=call.instance_id,
                                             state="started", created_at=call.now, updated_at=call.now))
            session.commit()
            return {"instance_id": instance.id, "reference": instance.reference, "created": True}
        except ValidationFailed as exc:  # the request itself is wrong: retrying will not help
            session.rollback()
            raise PermanentError(f"the callback request was refused: {exc.message} {exc.fields}") from exc
        except KefuError as exc:  # e.g. the case was busy, or the diagram is being redeployed
            session.rollback()
            raise TransientError(f"starting the callback failed: {exc.message}") from exc
