"""Outbound callbacks and return visits (呼出服务 / 回访): the calling window, starting a callback
case (idempotently), and the product operations the ``outbound_callback`` diagram names.

The diagram (``bpmn/outbound_callback.bpmn``) is *preview dialling*: a 回叫客户 task waits in the
agents' inbox (VIP first: an earlier due time), the agent who takes it presses 拨打, and the PBX
rings that agent's extension, then the customer. Every attempt becomes a ``calls`` row and a line
on the case's history; an answered call pops the case on the agent's screen and gives that agent
the task to record the result.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from connectors.base import Call as JobCall
from connectors.base import PermanentError, TransientError
from engine import outbox
from engine.clock import LOCAL_TZ, parse_instant
from engine.errors import Conflict, KefuError, ValidationFailed
from engine.models import DONE, HumanTask, ProcessInstance, record_event
from engine.people import User, members_among
from engine.runtime import Engine

from .extensions import db
from .telephony import OUTBOUND, Call

PROCESS_KEY = "outbound_callback"
KINDS = ("ivr_callback", "complaint_reply", "return_visit")
VIP_PRIORITY = 5            # a VIP customer's callback has at least this priority
DIAL_LIMIT = timedelta(minutes=30)       # a callback must be attempted within this …
VIP_DIAL_LIMIT = timedelta(minutes=10)   # … and a VIP's (or priority ≥ VIP_PRIORITY) sooner
ASSIGNEE_VAR_PROPERTY = "kefu.assignee_var"
OUTCOME_ZH = {"answered": "接通", "busy": "忙", "no_answer": "无人接听", "congested": "线路拥塞",
              "failed": "呼叫失败"}
SATISFACTION_ZH = {"satisfied": "满意", "basic": "基本满意", "unsatisfied": "不满意"}
_PHONE = re.compile(r"^\+?\d{3,20}$")
_PHONE_SEPARATORS = re.compile(r"[\s\-()]")
_HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


# -- the calling window ---------------------------------------------------------------------------
@dataclass(frozen=True)
class CallingHours:
    """Hours of the day (Beijing time) in which customers may be called, e.g. 08:00–21:00."""

    opens: time
    closes: time

    @classmethod
    def parse(cls, text: str) -> CallingHours:
        """``"08:00-21:00"`` → CallingHours; ValueError for anything else."""
        match = _HOURS.match(text or "")
        if not match:
            raise ValueError(f"calling hours '{text}' must look like 08:00-21:00")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
            raise ValueError(f"calling hours '{text}' are not times of the day")
        closes = time.max if (h2, m2) == (24, 0) else time(h2, m2)
        if time(h1, m1) >= closes:
            raise ValueError(f"calling hours '{text}' must open before they close")
        return cls(time(h1, m1), closes)

    def window(self, now: datetime) -> dict[str, Any]:
        """``{open, opens_at}``: whether ``now`` is inside the hours, and when they open next
        (``now`` itself when open), as an ISO-8601 instant a BPMN timeDate timer accepts."""
        local = now.astimezone(LOCAL_TZ)
        if self.opens <= local.time() < self.closes:
            return {"open": True, "opens_at": now.isoformat()}
        day = local.date() if local.time() < self.opens else local.date() + timedelta(days=1)
        opens_at = datetime.combine(day, self.opens, LOCAL_TZ)
        return {"open": False, "opens_at": opens_at.isoformat()}


def calling_hours(app: Flask) -> CallingHours:
    return CallingHours.parse(str(app.config.get("KEFU_CALLBACK_HOURS") or "08:00-21:00"))


def normalize_phone(value: Any) -> str | None:
    """The number with separators removed, or None when it is not 3–20 digits (optional +)."""
    if not isinstance(value, str):
        return None
    text = _PHONE_SEPARATORS.sub("", value)
    return text if _PHONE.match(text) else None


def dial_due(now: datetime, priority: int) -> str:
    """When the 回叫客户 task is due: the inbox lists tasks by due time, so a VIP's comes first."""
    limit = VIP_DIAL_LIMIT if priority >= VIP_PRIORITY else DIAL_LIMIT
    return (now + limit).isoformat()


# -- starting a callback ----------------------------------------------------------------------------
def request_key(user_id: int, request_id: str) -> str:
    """The ``calls.call_id`` under which a client's request id is remembered (one per client)."""
    return f"cbreq:{user_id}:{request_id}"[:80]


def start_callback(session: Session, engine: Engine, *, phone: str, reason: str, kind: str,
                   priority: int, now: datetime, requested_by: User | None = None,
                   origin: ProcessInstance | None = None,
                   request_id: str | None = None) -> tuple[ProcessInstance, bool]:
    """Start an ``outbound_callback`` case; returns ``(instance, created)``.

    With ``request_id`` the request is remembered as the caller's abandoned inbound call (a
    ``calls`` row, unique per client and id, linked to the callback case): a repeated request
    returns the first case instead of calling the customer twice, also when two arrive at once.
    The case is started without an actor, so its tasks wait in the agents' group inbox rather
    than going to the IVR's account. The caller commits.
    """
    key = request_key(requested_by.id, request_id) if request_id and requested_by else None
    if key:
        existing = _requested(session, key, phone)
        if existing is not None:
            return existing, False
    data: dict[str, Any] = {"customer_phone": phone, "reason": reason, "kind": kind,
                            "priority": priority, "title": f"{_kind_zh(kind)} {phone}"}
    if origin is not None:
        data.update(origin_id=origin.id, origin_reference=origin.reference or "")
    if requested_by is not None:
        data["requested_by"] = requested_by.username
    instance = engine.start(session, PROCESS_KEY, data, actor=None, now=now)
    if key:
        session.add(Call(call_id=key, direction="inbound", customer_number=phone, source="api",
                         started_at=now, ended_at=now, outcome="abandoned", instance_id=instance.id))
        try:
            session.flush()
        except IntegrityError:  # the same request arrived at the same moment and won
            session.rollback()
            existing = _requested(session, key, phone)
            if existing is None:
                raise
            return existing, False
    if origin is not None:
        record_event(session, "callback_requested", at=now, instance_id=origin.id,
                     message=f"{_kind_zh(kind)}：{instance.reference}",
                     data={"callback_id": instance.id, "callback_reference": instance.reference})
    return instance, True


def _requested(session: Session, key: str, phone: str) -> ProcessInstance | None:
    call = session.scalar(select(Call).where(Call.call_id == key))
    if call is None or call.instance_id is None:
        return None
    if call.customer_number != phone:
        raise Conflict("this request_id was already used for another number")
    return session.get(ProcessInstance, call.instance_id)


def _kind_zh(kind: str) -> str:
    return {"ivr_callback": "遇忙回叫", "complaint_reply": "投诉回复", "return_visit": "客户回访"}.get(kind, "回叫")


# -- who works the callback -------------------------------------------------------------------------
class AssigneeFromData:
    """Step listener: a task with ``kefu.assignee_var`` goes to the user the named variable holds
    (a user id, or a dict with ``user_id``) when that user is in the task's group — e.g. the result
    of an answered call goes to the agent who dialled it, not back to the group inbox. The value
    comes from a server-side operation, never from a form."""

    def instance_started(self, *args: Any) -> None: ...

    def task_closed(self, *args: Any) -> None: ...

    def instance_finished(self, *args: Any) -> None: ...

    def instance_suspended(self, *args: Any) -> None: ...

    def instance_resumed(self, *args: Any) -> None: ...

    def task_opened(self, session: Session, instance: ProcessInstance, task: HumanTask,
                    properties: dict[str, str], data: dict[str, Any], now: datetime) -> None:
        var = properties.get(ASSIGNEE_VAR_PROPERTY)
        if not var or task.group_id is None:
            return
        value = data.get(var)
        user_id = value.get("user_id") if isinstance(value, dict) else value
        if isinstance(user_id, int) and not isinstance(user_id, bool) \
                and user_id in members_among(session, task.group_id, [user_id]):
            task.assignee_id = user_id


# -- the product operations (see product_operations.py) ---------------------------------------------
def op_window(app: Flask, params: dict[str, Any], call: JobCall) -> dict[str, Any]:
    """``callback.window``: is it calling time now (KEFU_CALLBACK_HOURS)? ``{open, opens_at,
    dial_due}``; ``dial_due`` is the 回叫客户 task's deadline by the case's priority."""
    window = calling_hours(app).window(call.now)
    try:
        priority = int(params.get("priority") or 0)
    except (TypeError, ValueError):
        priority = 0
    return {**window, "dial_due": dial_due(call.now, priority)}


def op_plan(app: Flask, params: dict[str, Any], call: JobCall) -> dict[str, Any]:
    """``callback.plan``: the customer's level from billing and the callback's priority. A billing
    database that does not answer must not lose a callback request: the customer then counts as
    not VIP and the reason is kept."""
    try:
        priority = max(0, min(9, int(params.get("priority") or 0)))
    except (TypeError, ValueError):
        priority = 0
    level, note = None, ""
    gateway = app.extensions.get("kefu_billing")
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
    session = db.session
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
    from .telephony import push_pop

    session = db.session
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
    session = db.session
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
    return {"recorded": True, "origin_id": origin.id, "satisfaction": satisfaction}


def op_request(app: Flask, params: dict[str, Any], call: JobCall) -> dict[str, Any]:
    """``callback.request`` (outbox): start an ``outbound_callback`` case for the job's case (e.g.
    a return visit after a complaint closed). Runs in the worker with its own session; a job run
    twice (a crash after the start) finds the case it started by the job's reference."""
    phone = normalize_phone(params.get("phone"))
    if phone is None:
        raise PermanentError("phone must be 3 to 20 digits, optionally with a leading +")
    kind = str(params.get("kind") or "return_visit")
    if kind not in KINDS:
        raise PermanentError(f"kind must be one of {', '.join(KINDS)}")
    with app.app_context():
        session = db.session
        try:
            done = session.scalar(select(outbox.PeerReference).where(
                outbox.PeerReference.kind == "callback", outbox.PeerReference.job_id == call.job_id))
            if done is not None:
                instance = session.scalar(select(ProcessInstance).where(ProcessInstance.reference == done.ref))
                return {"instance_id": instance.id if instance else None, "reference": done.ref, "created": False}
            origin = session.get(ProcessInstance, call.instance_id) if call.instance_id else None
            instance, _ = start_callback(session, app.extensions["kefu_engine"], phone=phone,
                                         reason=str(params.get("reason") or _kind_zh(kind))[:200], kind=kind,
                                         priority=int(params.get("priority") or 0), now=call.now, origin=origin)
            session.add(outbox.PeerReference(kind="callback", ref=instance.reference or str(instance.id),
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
        finally:
            db.session.remove()

