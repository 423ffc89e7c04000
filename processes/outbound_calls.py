"""Outbound callbacks and return visits (呼出服务 / 回访): the calling window, starting a callback
case (idempotently), and who works it. The operations the diagram names are in
``processes.outbound_call_operations``.

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
from functools import lru_cache
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.clock import LOCAL_TZ
from engine.errors import Conflict
from engine.listeners import StepHooks
from engine.models import HumanTask, ProcessInstance, record_event
from engine.people import User, members_among
from engine.runtime import Engine
from processes.telephony import Call
from slas import calendar_store

PROCESS_KEY = "outbound_callback"
KINDS = ("ivr_callback", "complaint_reply", "return_visit")
VIP_PRIORITY = 5            # a VIP customer's callback has at least this priority
DIAL_LIMIT = timedelta(minutes=30)       # a callback must be attempted within this …
VIP_DIAL_LIMIT = timedelta(minutes=10)   # … and a VIP's (or priority ≥ VIP_PRIORITY) sooner
ASSIGNEE_VAR_PROPERTY = "kefu.assignee_var"
OUTCOME_ZH = {"answered": "接通", "busy": "忙", "no_answer": "无人接听", "congested": "线路拥塞",
              "failed": "呼叫失败"}
SATISFACTION_ZH = {"satisfied": "满意", "basic": "基本满意", "unsatisfied": "不满意"}
_PHONE = re.compile(r"^\+?\d{3,20}\Z", re.ASCII)
_PHONE_SEPARATORS = re.compile(r"[\s\-()]")
_HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$", re.ASCII)


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


@dataclass(frozen=True)
class AdjustableHours(CallingHours):
    """Configured hours that the administrators' stored version (``slas.calendar_store``, kind
    ``kind``) replaces when there is one: the admin page changes them without a restart."""

    kind: str = "calling_hours"

    def current(self) -> CallingHours:
        text = calendar_store.current_hours(self.kind)
        return _parsed_hours(text) if text else self

    def window(self, now: datetime) -> dict[str, Any]:
        return CallingHours.window(self.current(), now)

    @classmethod
    def configured(cls, text: str, kind: str) -> AdjustableHours:
        base = CallingHours.parse(text)
        return cls(base.opens, base.closes, kind)


@lru_cache(maxsize=16)
def _parsed_hours(text: str) -> CallingHours:
    return CallingHours.parse(text)


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
class AssigneeFromData(StepHooks):
    """Step listener: a task with ``kefu.assignee_var`` goes to the user the named variable holds
    (a user id, or a dict with ``user_id``) when that user is in the task's group — e.g. the result
    of an answered call goes to the agent who dialled it, not back to the group inbox. The value
    comes from a server-side operation, never from a form."""

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
