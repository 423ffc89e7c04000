"""Automatic assignment of a group's new steps (系统分配), by the group's ``assignment`` mode.

``manual`` leaves a new step in the group's queue to be claimed; ``round_robin`` hands it to the
active member after the one who got the group's previous automatic step; ``least_loaded`` to the
active member holding the fewest open steps (ties: the one who waited longest, then by id). A step
that already has someone (rework back to whoever did it, the case owner, ``kefu.assign``) keeps
them. Each automatic assignment is a row of ``task_auto_assignments``: the inbox shows 系统分配
while the step is still with that person, and the row is the round-robin's memory. A leader can
reassign as always (``Engine.assign``). Imports engine modules and SQLAlchemy only.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from .db import Base
from .listeners import StepHooks
from .models import OPEN, HumanTask, ProcessInstance, record_event
from .people import Group, User, user_groups

AUTOMATIC = ("round_robin", "least_loaded")


class TaskAutoAssignment(Base):
    """One step handed out by its group's rule (never updated; the newest per group is the
    round-robin's position)."""

    __tablename__ = "task_auto_assignments"
    __table_args__ = (Index("ix_task_auto_assignments_group", "group_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("human_tasks.id"), unique=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    mode: Mapped[str] = mapped_column(String(16))
    assigned_at: Mapped[datetime]

    # Lets the row name a task inserted in the same flush.
    task: Mapped[HumanTask] = relationship()


def active_members(session: Session, group_id: int) -> list[int]:
    """The group's active members' ids, in id order."""
    return list(session.scalars(
        select(user_groups.c.user_id).join(User, User.id == user_groups.c.user_id)
        .where(user_groups.c.group_id == group_id, User.active).order_by(user_groups.c.user_id)))


def next_in_turn(session: Session, group_id: int, members: list[int]) -> int:
    """Round robin: the member after the one who got the group's previous automatic step."""
    last = session.scalar(select(TaskAutoAssignment.user_id).where(TaskAutoAssignment.group_id == group_id)
                          .order_by(TaskAutoAssignment.id.desc()).limit(1))
    later = [m for m in members if last is not None and m > last]
    return later[0] if later else members[0]


def least_loaded(session: Session, members: list[int]) -> int:
    """The member holding the fewest open steps; a tie goes to whoever was given one longest ago."""
    load = dict(session.execute(select(HumanTask.assignee_id, func.count()).where(
        HumanTask.assignee_id.in_(members), HumanTask.status == OPEN).group_by(HumanTask.assignee_id)).all())
    latest = dict(session.execute(select(TaskAutoAssignment.user_id, func.max(TaskAutoAssignment.id)).where(
        TaskAutoAssignment.user_id.in_(members)).group_by(TaskAutoAssignment.user_id)).all())
    return min(members, key=lambda m: (load.get(m, 0), latest.get(m, 0), m))


def choose(session: Session, group_id: int, mode: str) -> int | None:
    """Who the group's rule gives a new step to (None: manual, or nobody active)."""
    if mode not in AUTOMATIC:
        return None
    members = active_members(session, group_id)
    if not members:
        return None
    return next_in_turn(session, group_id, members) if mode == "round_robin" else least_loaded(session, members)


def auto_assigned_to(session: Session, task_ids: Iterable[int]) -> dict[int, int]:
    """task id → the user its group's rule gave it to, for the given tasks (one query)."""
    ids = list(task_ids)
    if not ids:
        return {}
    return dict(session.execute(select(TaskAutoAssignment.task_id, TaskAutoAssignment.user_id)
                                .where(TaskAutoAssignment.task_id.in_(ids))).all())


class AutoAssignment(StepHooks):
    """Step listener: a new step of a group with an automatic mode goes to a member at once.
    Installed after the listeners that assign from the case's data, so they keep precedence."""

    def task_opened(self, session: Session, instance: ProcessInstance, task: HumanTask,
                    properties: dict[str, str], data: dict[str, Any], now: datetime) -> None:
        if task.assignee_id is not None or task.group_id is None:
            return
        with session.no_autoflush:
            mode = session.scalar(select(Group.assignment).where(Group.id == task.group_id))
            user_id = choose(session, task.group_id, mode or "manual")
        if user_id is None:
            return
        task.assignee_id = user_id
        session.add(TaskAutoAssignment(task=task, group_id=task.group_id, user_id=user_id, mode=str(mode),
                                       assigned_at=now))
        record_event(session, "task_auto_assigned", at=now, instance_id=instance.id, task=task,
                     message=task.title, data={"user_id": user_id, "mode": mode})
