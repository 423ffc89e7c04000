"""Urging (催办): anyone who may see a case presses the step that holds it up.

An urge is recorded on the step and on the case's history, and the step's holder and the leader
of its group are told (once each when they are the same person; the leader alone while nobody
holds the step): the inbox shows the step as urged at once, and from the second urge on they also
get an SMS each. The same step cannot be urged again within a few
minutes (``KEFU_URGE_MINUTES``), so that urging stays a signal, not noise.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from engine import access, outbox
from engine.db import Base
from engine.errors import Conflict, KefuError, NotFound
from engine.models import OPEN, HumanTask, record_event
from engine.people import Group, User

from . import complaint_facts

DEFAULT_GAP = timedelta(minutes=30)


class TooSoon(KefuError):
    """The same step was urged a moment ago."""

    code = "too_many_urges"


class TaskUrge(Base):
    """One urge of one step."""

    __tablename__ = "task_urges"
    __table_args__ = (Index("ix_task_urges_task", "task_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("human_tasks.id"))
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instances.id"), index=True)
    at: Mapped[datetime]
    by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    by_name: Mapped[str] = mapped_column(String(80))
    note: Mapped[str] = mapped_column(String(500), default="")
    notified_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


def urge(session: Session, task_id: int, actor: User, note: str, now: datetime,
         gap: timedelta = DEFAULT_GAP) -> TaskUrge:
    """Urge the open step ``task_id`` (in the caller's transaction)."""
    task = session.get(HumanTask, task_id)
    if task is None or not access.may_view_instance(session, actor, task.instance):
        raise NotFound(f"task {task_id} not found")
    if task.status != OPEN:
        raise Conflict("this task is already done")
    last = session.scalar(select(func.max(TaskUrge.at)).where(TaskUrge.task_id == task_id))
    if last is not None and now - _aware(last, now) < gap:
        raise TooSoon(f"this step was urged less than {int(gap.total_seconds() // 60)} minutes ago")
    earlier = session.scalar(select(func.count(TaskUrge.id)).where(TaskUrge.task_id == task_id)) or 0
    told = who_to_tell(session, task)
    row = TaskUrge(task_id=task.id, instance_id=task.instance_id, at=now, by_id=actor.id,
                   by_name=actor.display_name, note=(note or "").strip()[:500],
                   notified_id=told[0].id if told else None)  # the first one told: the holder, else the leader
    session.add(row)
    session.flush()
    complaint_facts.count_urge(session, task.instance_id)  # the statistics count urges per department
    record_event(session, "task_urged", at=now, instance_id=task.instance_id, task_id=task.id,
                 actor=actor.username, message=f"{task.title}{'：' + row.note if row.note else ''}"[:500],
                 data={"urge": earlier + 1, "notified": [user.username for user in told]})
    if earlier >= 1:
        reference = task.instance.reference or str(task.instance_id)
        text = (f"【催办】工单{reference}的“{task.title}”环节已被催办{earlier + 1}次"
                f"（{actor.display_name}）{('：' + row.note) if row.note else ''}，请尽快处理。")
        for user in told:
            if user.phone:
                outbox.enqueue(session, "sms.send", {"to": user.phone, "text": text[:300]},
                               key=f"urge-{row.id}-{user.id}", now=now, instance_id=task.instance_id, priority=1)
    return row


def urges_of(session: Session, task_id: int) -> list[TaskUrge]:
    return list(session.scalars(select(TaskUrge).where(TaskUrge.task_id == task_id).order_by(TaskUrge.id)))


def urge_counts(session: Session, task_ids: list[int]) -> dict[int, int]:
    """Urges per step, for a page of the inbox (one grouped query)."""
    if not task_ids:
        return {}
    return dict(session.execute(select(TaskUrge.task_id, func.count(TaskUrge.id))
                                .where(TaskUrge.task_id.in_(task_ids)).group_by(TaskUrge.task_id)).all())


def as_item(row: TaskUrge) -> dict[str, Any]:
    return {"id": row.id, "task_id": row.task_id, "at": row.at.isoformat(), "by": row.by_name, "note": row.note}


def who_to_tell(session: Session, task: HumanTask) -> list[User]:
    """The step's holder, then its group's leader — each once, active users only."""
    group = session.get(Group, task.group_id) if task.group_id else None
    told: list[User] = []
    for user_id in (task.assignee_id, group.leader_id if group is not None else None):
        user = session.get(User, user_id) if user_id is not None else None
        if user is not None and user.active and user not in told:
            told.append(user)
    return told


def _aware(value: datetime, now: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=now.tzinfo)
