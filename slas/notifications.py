"""Supervisors texted on escalation: an SMS to the leader (level 1) or the managers (level 2) that an
escalation names, once per escalation and person (the job's key), through the outbox."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import outbox
from engine.models import HumanTask, ProcessInstance
from engine.people import User

from .models import Escalation

SMS_LEVELS = (1, 2)  # the levels that also reach the supervisor's mobile phone


def notify_supervisors(session: Session, escalations: list[Escalation], now: datetime) -> int:
    """Queue an SMS to each supervisor an escalation of level 1 or 2 names (once per escalation)."""
    queued = 0
    for esc in escalations:
        if esc.level not in SMS_LEVELS:
            continue
        instance = session.get(ProcessInstance, esc.instance_id)
        task = session.get(HumanTask, esc.task_id) if esc.task_id else None
        assignee = session.get(User, task.assignee_id) if task is not None and task.assignee_id else None
        holder = assignee.display_name if assignee is not None else "未认领"
        late = _late(now - esc.due_at)
        for user in _supervisors(session, esc):
            context = {"level": esc.level, "reference": instance.reference if instance else esc.instance_id,
                       "step": esc.title, "late": late, "holder": holder}
            outbox.enqueue(session, "sms.send", {"to": user.phone, "template": "escalation", "context": context},
                           key=f"esc-{esc.id}-{user.id}", now=now, instance_id=esc.instance_id,
                           element_id=None)
            queued += 1
    return queued


def _supervisors(session: Session, esc: Escalation) -> list[User]:
    if esc.target_user_id is not None:
        users = [session.get(User, esc.target_user_id)]
    elif esc.target == "manager":
        users = [u for u in session.scalars(select(User).where(User.active.is_(True))) if u.has_role("manager")]
    else:
        users = []
    return [u for u in users if u is not None and u.phone]


def _late(delta: timedelta) -> str:
    minutes = max(0, int(delta.total_seconds() // 60))
    return f"{minutes // 60}小时{minutes % 60}分钟" if minutes >= 60 else f"{minutes}分钟"

