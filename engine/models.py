"""Tables of the engine: definitions, instances, human tasks (the inbox) and the audit trail.

Queries that views and schedulers need live here beside their models, as named functions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    false,
    select,
    text,
)
from sqlalchemy.orm import Mapped, Session, joinedload, mapped_column, relationship

from . import appends
from .db import Base

RUNNING, SUSPENDED, COMPLETED, CANCELLED, ERROR = (
    "running", "suspended", "completed", "cancelled", "error")
OPEN, DONE = "open", "completed"


class ProcessDefinition(Base):
    """One deployed version of a BPMN diagram, with its forms and the parsed spec (serialized)."""

    __tablename__ = "process_definitions"
    __table_args__ = (UniqueConstraint("key", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(80), index=True)
    version: Mapped[int]
    name: Mapped[str] = mapped_column(String(200))
    bpmn_xml: Mapped[str] = mapped_column(Text, deferred=True)
    forms: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, deferred=True)
    spec_json: Mapped[str] = mapped_column(Text, deferred=True)
    sha256: Mapped[str] = mapped_column(String(64))
    deployed_by: Mapped[str | None] = mapped_column(String(40))
    deployed_at: Mapped[datetime]
    summary: Mapped[str] = mapped_column(String(500), default="")


class ProcessInstance(Base):
    """A running or finished case; ``state`` is the Spiff workflow without its spec."""

    __tablename__ = "process_instances"
    __table_args__ = (
        Index("ix_instances_timer", "status", "next_timer_at"),
        Index("ix_instances_customer", "customer_phone", "process_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    definition_id: Mapped[int] = mapped_column(ForeignKey("process_definitions.id"))
    process_key: Mapped[str] = mapped_column(String(80), index=True)
    reference: Mapped[str | None] = mapped_column(String(40), unique=True)
    title: Mapped[str] = mapped_column(String(200), default="")
    customer_phone: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default=RUNNING)
    state: Mapped[str] = mapped_column(Text, deferred=True)
    lock_version: Mapped[int] = mapped_column(Integer, default=1)
    next_timer_at: Mapped[datetime | None]
    started_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    completed_at: Mapped[datetime | None]
    suspended_at: Mapped[datetime | None]
    suspend_reason: Mapped[str | None] = mapped_column(String(500))
    error: Mapped[str | None] = mapped_column(Text)
    # What engine.messages indexed for this case (None: not indexed yet; "": waits for nothing).
    waiting_on: Mapped[str | None] = mapped_column(String(240))

    definition: Mapped[ProcessDefinition] = relationship(lazy="joined")

    __mapper_args__ = {"version_id_col": lock_version}  # noqa: RUF012 - SQLAlchemy reads it once


class HumanTask(Base):
    """A user task waiting in (or gone from) an inbox: the denormalized view of Spiff's READY tasks."""

    __tablename__ = "human_tasks"
    # The inbox pages in the order of these indexes (VIP first, tasks without a limit last), so a
    # page of 50 out of 100,000 open tasks is read straight from the index without sorting.
    __table_args__ = (
        Index("ix_human_tasks_group_queue", "group_id", "status", text("vip DESC"), text("(due_at IS NULL)"),
              "due_at", "id"),
        Index("ix_human_tasks_assignee_queue", "assignee_id", "status", text("vip DESC"),
              text("(due_at IS NULL)"), "due_at", "id"),
        Index("ix_human_tasks_instance", "instance_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instances.id"))
    task_guid: Mapped[str] = mapped_column(String(36), unique=True)
    name: Mapped[str] = mapped_column(String(80))
    title: Mapped[str] = mapped_column(String(200))
    form_name: Mapped[str | None] = mapped_column(String(120))
    group_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id"))
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(String(16), default=OPEN)
    created_at: Mapped[datetime]
    due_at: Mapped[datetime | None]
    warn_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    completed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # The case's customer is a VIP (engine/task_rows.vip_of), written when the step opens: the
    # inbox lists VIP steps first without joining the case's data.
    vip: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    instance: Mapped[ProcessInstance] = relationship(lazy="selectin")


class AuditEvent(Base):
    """One line of a case's history: who did what, when, with which data."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("process_instances.id"), index=True)
    task_id: Mapped[int | None] = mapped_column(Integer)
    at: Mapped[datetime]
    actor: Mapped[str | None] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(40))
    message: Mapped[str] = mapped_column(String(500), default="")
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    # Lets an event name a task that is being inserted in the same flush.
    task: Mapped[HumanTask | None] = relationship(
        primaryjoin="foreign(AuditEvent.task_id) == HumanTask.id")


def record_event(session: Session, kind: str, *, at: datetime, instance_id: int | None = None,
                 task_id: int | None = None, actor: str | None = None, message: str = "",
                 data: dict[str, Any] | None = None, task: HumanTask | None = None) -> AuditEvent:
    """Add an audit event to the session (written with the step it belongs to)."""
    event = AuditEvent(instance_id=instance_id, task_id=task_id, at=at, actor=actor, kind=kind,
                       message=message[:500], data=data)
    if task is not None:
        event.task = task
    session.add(event)
    return event


def append_event(session: Session, kind: str, *, at: datetime, instance_id: int | None = None,
                 task_id: int | None = None, actor: str | None = None, message: str = "",
                 data: dict[str, Any] | None = None, task: HumanTask | None = None) -> None:
    """As :func:`record_event` for an engine step: the row is queued and written with the step's
    other append-only rows in one batched insert (engine/appends.py); nothing is returned."""
    appends.append(session, _AUDIT_EVENTS, {
        "instance_id": instance_id, "task_id": task_id, "at": at, "actor": actor, "kind": kind,
        "message": message[:500], "data": data}, task=task)


_AUDIT_EVENTS = cast(Table, AuditEvent.__table__)


def instance_events(session: Session, instance_id: int) -> list[AuditEvent]:
    return list(session.scalars(
        select(AuditEvent).where(AuditEvent.instance_id == instance_id).order_by(AuditEvent.id)))


# A task with its case (and the case's definition) in one statement: every verb on a task reads
# its case, and a separate select-in of the case would cost a second round trip.
WITH_INSTANCE = (joinedload(HumanTask.instance),)
# Built once: the statement's cache key and compiled form are then found at once on each step.
_OPEN_TASKS = (select(HumanTask).options(*WITH_INSTANCE)
               .where(HumanTask.instance_id == bindparam("instance_id"), HumanTask.status == OPEN)
               .order_by(HumanTask.id))


def open_tasks_of_instance(session: Session, instance_id: int) -> list[HumanTask]:
    return list(session.scalars(_OPEN_TASKS, {"instance_id": instance_id}))


def due_timer_instances(session: Session, now: datetime, limit: int) -> list[int]:
    """Ids of running instances whose next BPMN timer is due (indexed on status, next_timer_at)."""
    return list(session.scalars(
        select(ProcessInstance.id).where(ProcessInstance.status == RUNNING,
                                         ProcessInstance.next_timer_at <= now)
        .order_by(ProcessInstance.next_timer_at).limit(limit)))


# The inbox's order, the one of its indexes: VIP steps first, then the soonest due (none last).
INBOX_ORDER = (HumanTask.vip.desc(), HumanTask.due_at.is_(None), HumanTask.due_at, HumanTask.id)


def inbox_query(user_id: int, group_ids: set[int], scope: str):
    """The select for an inbox: ``mine`` = assigned to the user, ``group`` = open in their groups."""
    query = select(HumanTask).where(HumanTask.status == OPEN)
    if scope == "mine":
        query = query.where(HumanTask.assignee_id == user_id)
    else:
        query = query.where(HumanTask.group_id.in_(group_ids or {-1}))
    return query.order_by(*INBOX_ORDER)
