"""The desk's search index of cases: who the customer is, what they asked, how urgent the case is.

A case's variables live inside its serialized workflow, where SQL cannot reach them. This module
keeps one small row per case (``case_index``) in step with its data — a ``CaseDataListener``
that hears the case's data at the end of every step — so that the global search (name, contact
number, free text), the inbox's priority/VIP filters and sorting are plain indexed SQL.

Which variables feed the row (the bundled forms' names; any process may use them):
* name: ``complainant_name``, ``caller_name``, ``customer_name``;
* contact number: ``contact_phone``;
* text: ``description``, ``request``, ``title`` (the first ``TEXT_SIZE`` characters);
* priority: ``priority`` (0–9); VIP: ``vip`` true or ``level``/``customer_level`` ``vip``.

A VIP case counts at least ``VIP_PRIORITY``, so sorting by priority puts VIPs first.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Integer, String, exists, func, select, union
from sqlalchemy.orm import Mapped, Session, mapped_column

from engine.access import visible_cases
from engine.db import Base
from engine.models import HumanTask, ProcessInstance
from engine.people import User
from engine.task_rows import vip_of

NAME_FIELDS = ("complainant_name", "caller_name", "customer_name")
TEXT_FIELDS = ("description", "request", "title")
TEXT_SIZE = 1000
VIP_PRIORITY = 5
MAX_PRIORITY = 9


class CaseIndex(Base):
    """What the desk searches and sorts a case by (see the module docstring)."""

    __tablename__ = "case_index"

    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instances.id"), primary_key=True,
                                             autoincrement=False)
    name: Mapped[str | None] = mapped_column(String(80), index=True)
    contact_phone: Mapped[str | None] = mapped_column(String(32), index=True)
    text: Mapped[str] = mapped_column(String(TEXT_SIZE), default="")
    priority: Mapped[int] = mapped_column(Integer, default=0, index=True)
    vip: Mapped[bool] = mapped_column(Boolean, default=False)


def row_values(data: Mapping[str, Any]) -> dict[str, Any]:
    """The index row's values from a case's data."""
    name = next((str(data[k]).strip() for k in NAME_FIELDS if isinstance(data.get(k), str) and data[k].strip()), None)
    phone = data.get("contact_phone")
    text = " ".join(str(data[k]).strip() for k in TEXT_FIELDS if isinstance(data.get(k), str) and data[k].strip())
    vip = vip_of(data)  # the same rule as the step rows' flag
    try:
        priority = max(0, min(MAX_PRIORITY, int(data.get("priority") or 0)))
    except (TypeError, ValueError):
        priority = 0
    return {"name": name[:80] if name else None,
            "contact_phone": phone.strip()[:32] if isinstance(phone, str) and phone.strip() else None,
            "text": text[:TEXT_SIZE], "vip": vip, "priority": max(priority, VIP_PRIORITY) if vip else priority}


class CaseIndexListener:
    """Keeps ``case_index`` in step (an engine step listener with ``step_data``)."""

    def step_data(self, session: Session, instance: ProcessInstance, data: Mapping[str, Any],
                  now: datetime) -> None:
        values = row_values(data)
        row = session.get(CaseIndex, instance.id)
        if row is None:
            session.add(CaseIndex(instance_id=instance.id, **values))
            return
        for name, value in values.items():
            if getattr(row, name) != value:  # write only what changed: no needless UPDATE
                setattr(row, name, value)

    def instance_started(self, session: Session, instance: ProcessInstance,
                         start_properties: dict[str, str], group_id: int | None, now: datetime) -> None:
        return None

    def task_opened(self, session: Session, instance: ProcessInstance, task: HumanTask,
                    properties: dict[str, str], data: dict[str, Any], now: datetime) -> None:
        return None

    def task_closed(self, session: Session, instance: ProcessInstance, task: HumanTask, now: datetime) -> None:
        return None

    def instance_finished(self, session: Session, instance: ProcessInstance, now: datetime) -> None:
        return None

    def instance_suspended(self, session: Session, instance: ProcessInstance, now: datetime) -> None:
        return None

    def instance_resumed(self, session: Session, instance: ProcessInstance, now: datetime) -> None:
        return None


def backfill(session: Session, data_of: Callable[[ProcessInstance], Mapping[str, Any]], batch: int = 200) -> int:
    """Write the row of every case that has none (cases older than the index), ``batch`` cases
    per transaction; ``data_of`` reads a case's current data (the engine's ``workflow_data``).
    Returns how many rows were written."""
    done = 0
    while True:
        pending = list(session.scalars(
            select(ProcessInstance).where(~exists().where(CaseIndex.instance_id == ProcessInstance.id))
            .order_by(ProcessInstance.id).limit(batch)))
        if not pending:
            return done
        for instance in pending:
            session.add(CaseIndex(instance_id=instance.id, **row_values(data_of(instance))))
        session.commit()
        done += len(pending)


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def matching_ids(q: str):
    """Ids of the cases matching ``q``: the case number or a phone number exactly, a name by its
    start (each an index lookup), the description/request text anywhere (a scan of the narrow
    index table). One UNION, so that each branch uses its own index."""
    q = q.strip()
    compact = q.replace(" ", "").replace("-", "")
    branches = [
        select(ProcessInstance.id).where(ProcessInstance.reference.in_(sorted({q, q.upper()}))),
        select(ProcessInstance.id).where(ProcessInstance.customer_phone == compact),
        select(CaseIndex.instance_id).where(CaseIndex.contact_phone == compact),
        # A range the index can seek, and LIKE for the exact prefix ("%" and "_" taken literally).
        select(CaseIndex.instance_id).where(CaseIndex.name >= q, CaseIndex.name < q + "\uffff",
                                            CaseIndex.name.like(_like_escape(q) + "%", escape="\\")),
    ]
    # Words are scanned for (two characters at least); a phone number is looked up in the number
    # columns only, which keeps the commonest search an index lookup.
    if len(q) >= 2 and not (compact.isdigit() and len(compact) >= 7):
        branches.append(select(CaseIndex.instance_id).where(
            CaseIndex.text.like("%" + _like_escape(q) + "%", escape="\\")))
    return union(*branches)


def search(session: Session, user: User, q: str, *, limit: int, offset: int = 0) -> tuple[int, list[ProcessInstance]]:
    """(how many, one page of) the cases ``user`` may see that match ``q``, newest first."""
    if not q.strip():
        return 0, []
    where = (ProcessInstance.id.in_(matching_ids(q)), visible_cases(session, user))  # engine/access.py
    total = session.scalar(select(func.count(ProcessInstance.id)).where(*where))
    rows = list(session.scalars(select(ProcessInstance).where(*where).order_by(ProcessInstance.id.desc())
                                .limit(limit).offset(offset)))
    return total or 0, rows
