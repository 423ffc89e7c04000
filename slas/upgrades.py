"""Upgraded complaints (越级/升级投诉): flagged, held to stricter time limits, supervised (督办).

A complaint is upgraded at intake (``upgrade_source`` in its data: it came through 10015, the
ministry or the national centre) or later by a leader or manager (:func:`flag`). Either way a row
of ``upgraded_cases`` names the source and the manager who supervises it; that manager is texted
once (outbox) and the managers' list of upgraded cases reads these rows. The stricter limits are
declared on the diagram beside the normal ones (``kefu.sla.upgraded.*``, see slas/policies.py) and
apply to every step opened once the case is upgraded; a step already open keeps its clock (as a
migrated case does). Imports engine modules only.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import outbox
from engine.errors import Conflict, ValidationFailed
from engine.listeners import StepHooks
from engine.models import RUNNING, ProcessInstance, record_event
from engine.people import User, managers

from .models import UpgradedCase

SOURCES = ("hotline_10015", "ministry", "national_center")
SOURCE_ZH = {"hotline_10015": "10015投诉监督", "ministry": "工信部/通信管理局", "national_center": "全国中心"}
PROCESS_KEY = "complaint"


def is_upgraded(session: Session, instance_id: int) -> bool:
    return session.get(UpgradedCase, instance_id) is not None


def upgraded_in(data: Mapping[str, Any]) -> bool:
    """Whether a case's data says it came upgraded (the intake form's ``upgrade_source``)."""
    return data.get("upgrade_source") in SOURCES


def flag(session: Session, instance: ProcessInstance, source: str, *, actor: User | None, now: datetime,
         note: str = "") -> UpgradedCase:
    """Upgrade a running complaint (once): record it, name its supervising manager, text them."""
    if source not in SOURCES:
        raise ValidationFailed("the source must be one of " + ", ".join(SOURCES), {"source": "not a known source"})
    if instance.process_key != PROCESS_KEY or instance.status != RUNNING:
        raise Conflict("only a running complaint can be upgraded")
    if is_upgraded(session, instance.id):
        raise Conflict("this complaint is already upgraded")
    supervisor = next(iter(managers(session)), None)
    row = UpgradedCase(instance_id=instance.id, source=source, note=(note or "").strip()[:500],
                       flagged_by=actor.id if actor else None, flagged_at=now,
                       supervisor_id=supervisor.id if supervisor else None)
    session.add(row)
    record_event(session, "upgraded", at=now, instance_id=instance.id, actor=actor.username if actor else None,
                 message=SOURCE_ZH[source] + (f"：{row.note}" if row.note else ""),
                 data={"source": source, "supervisor_id": row.supervisor_id})
    if supervisor is not None and supervisor.phone:
        outbox.enqueue(session, "sms.send", {"to": supervisor.phone, "template": "complaint_upgraded",
                                             "context": {"reference": instance.reference or str(instance.id),
                                                         "source": SOURCE_ZH[source]}},
                       key=f"upgraded-{instance.id}", now=now, instance_id=instance.id)
    return row


def upgraded_cases(session: Session, *, open_only: bool = True, limit: int = 200) -> list[tuple[UpgradedCase, ProcessInstance]]:
    """The managers' list: upgraded complaints, newest first (still open ones only by default)."""
    query = (select(UpgradedCase, ProcessInstance).join(ProcessInstance, ProcessInstance.id == UpgradedCase.instance_id)
             .order_by(UpgradedCase.flagged_at.desc()).limit(limit))
    if open_only:
        query = query.where(ProcessInstance.status.in_((RUNNING, "suspended")))
    return [(row, instance) for row, instance in session.execute(query).all()]


class UpgradeListener(StepHooks):
    """Hears each step's case data: a complaint recorded with ``upgrade_source`` is upgraded with
    its first step (its own steps already ran on the stricter limits, read from the data)."""

    def step_data(self, session: Session, instance: ProcessInstance, data: Mapping[str, Any], now: datetime) -> None:
        if instance.process_key != PROCESS_KEY or not upgraded_in(data) or instance.status != RUNNING:
            return
        with session.no_autoflush:
            if is_upgraded(session, instance.id):
                return
        flag(session, instance, str(data["upgrade_source"]), actor=None, now=now)
