"""SLA clocks (one per timed task or case) and the escalations they raise.

The scanner's query reads ``next_check_at`` (indexed): the next instant at which a clock crosses a
threshold. It is NULL when the clock is stopped or paused, so stopped clocks cost nothing.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from engine.db import Base
from engine.models import HumanTask

RUNNING, PAUSED, STOPPED = "running", "paused", "stopped"


class SlaClock(Base):
    __tablename__ = "sla_clocks"
    __table_args__ = (Index("ix_sla_clocks_next_check", "next_check_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instances.id"), index=True)
    task_id: Mapped[int | None] = mapped_column(ForeignKey("human_tasks.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    group_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id"))
    calendar: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime]
    duration_seconds: Mapped[float]
    paused_seconds: Mapped[float] = mapped_column(default=0.0)  # counted on the clock's calendar
    warn_fraction: Mapped[float]
    escalations: Mapped[list] = mapped_column(JSON)  # [[1.0, "leader"], [1.5, "manager"]]
    due_at: Mapped[datetime]
    warn_at: Mapped[datetime]
    warned_at: Mapped[datetime | None]
    level: Mapped[int] = mapped_column(default=0)
    next_check_at: Mapped[datetime | None]
    state: Mapped[str] = mapped_column(String(10), default=RUNNING)
    paused_at: Mapped[datetime | None]
    stopped_at: Mapped[datetime | None]

    task: Mapped[HumanTask | None] = relationship()


class Escalation(Base):
    """An alert raised once per clock and level; cleared when the step is done."""

    __tablename__ = "escalations"
    __table_args__ = (UniqueConstraint("clock_id", "level"),
                      Index("ix_escalations_open", "cleared_at", "group_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    clock_id: Mapped[int] = mapped_column(ForeignKey("sla_clocks.id"))
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instances.id"), index=True)
    task_id: Mapped[int | None] = mapped_column(ForeignKey("human_tasks.id"))
    group_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id"))
    level: Mapped[int]
    target: Mapped[str] = mapped_column(String(16))
    target_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    title: Mapped[str] = mapped_column(String(200))
    due_at: Mapped[datetime]
    raised_at: Mapped[datetime]
    cleared_at: Mapped[datetime | None]
    # A supervisor's "seen, on it" (slas/alerts.py): the alert stays open until the step is done.
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class UpgradedCase(Base):
    """An upgraded complaint (越级投诉, slas/upgrades.py): held to the stricter limits, with where
    it came from and the manager who supervises it."""

    __tablename__ = "upgraded_cases"

    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instances.id"), primary_key=True)
    source: Mapped[str] = mapped_column(String(20))
    note: Mapped[str] = mapped_column(String(500), default="")
    flagged_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    flagged_at: Mapped[datetime]
    supervisor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)


def running_clocks(session: Session, instance_id: int) -> list[SlaClock]:
    return list(session.scalars(select(SlaClock).where(
        SlaClock.instance_id == instance_id, SlaClock.state == RUNNING)))


def clocks_of_instance(session: Session, instance_id: int) -> list[SlaClock]:
    return list(session.scalars(select(SlaClock).where(SlaClock.instance_id == instance_id)
                                .order_by(SlaClock.id)))


def due_clock_ids(session: Session, now: datetime, limit: int) -> list[int]:
    """Clocks with a threshold crossed by ``now`` (the indexed scan)."""
    return list(session.scalars(select(SlaClock.id).where(SlaClock.next_check_at <= now)
                                .order_by(SlaClock.next_check_at).limit(limit)))


def open_escalations_query(user_id: int, is_manager: bool, led_group_ids: set[int]):
    """Open escalations a user may see: managers all, leaders those of the groups they lead."""
    query = select(Escalation).where(Escalation.cleared_at.is_(None))
    if not is_manager:
        query = query.where(Escalation.group_id.in_(led_group_ids or {-1}))
    return query.order_by(Escalation.level.desc(), Escalation.due_at)
