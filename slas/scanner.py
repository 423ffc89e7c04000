"""The escalation scanner: raise warnings and escalations for clocks whose thresholds passed.

It reads only clocks with ``next_check_at <= now`` (an index range scan), in bounded batches.
Each level is raised at most once per clock: the clock's ``level`` is advanced with a
compare-and-set UPDATE, and ``(clock_id, level)`` is unique in ``escalations``, so two
schedulers racing on the same clock cannot raise it twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from engine.models import record_event
from engine.people import Group

from .clocks import next_check, threshold_at
from .models import RUNNING, Escalation, SlaClock, due_clock_ids

log = logging.getLogger("kefu.slas.scanner")


@dataclass
class ScanResult:
    warnings: int = 0
    escalations: list[Escalation] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.warnings} warning(s), {len(self.escalations)} escalation(s)"


def scan(session: Session, now: datetime, batch: int = 500) -> ScanResult:
    """Raise what is due by ``now``; commits once per batch (the unit of work)."""
    result = ScanResult()
    while True:
        ids = due_clock_ids(session, now, batch)
        if not ids:
            return result
        for clock_id in ids:
            _scan_clock(session, clock_id, now, result)
        session.commit()
        if len(ids) < batch:
            return result


def _scan_clock(session: Session, clock_id: int, now: datetime, result: ScanResult) -> None:
    clock = session.get(SlaClock, clock_id)
    if clock is None or clock.state != RUNNING:
        return
    old_level, was_warned = clock.level, clock.warned_at is not None
    new_level = old_level
    for level, (fraction, _target) in enumerate(clock.escalations, start=1):
        if level > old_level and threshold_at(clock, fraction) <= now:
            new_level = level
    warn_now = not was_warned and threshold_at(clock, clock.warn_fraction) <= now
    clock.level = new_level
    if warn_now:
        clock.warned_at = now
    next_at = next_check(clock)
    # Compare-and-set: only the scanner that moves the clock from the state it read may raise.
    session.expire(clock, ["level", "warned_at"])
    moved = session.execute(
        update(SlaClock).where(SlaClock.id == clock.id, SlaClock.level == old_level,
                               (SlaClock.warned_at.is_not(None)) if was_warned
                               else SlaClock.warned_at.is_(None))
        .values(level=new_level, warned_at=now if warn_now else SlaClock.warned_at,
                next_check_at=next_at)
        .execution_options(synchronize_session=False)).rowcount
    if moved != 1:
        return
    if warn_now and new_level == 0:
        result.warnings += 1
        record_event(session, "sla_warning", at=now, instance_id=clock.instance_id,
                     task_id=clock.task_id, message=clock.title,
                     data={"due_at": clock.due_at.isoformat()})
    for level in range(old_level + 1, new_level + 1):
        result.escalations.append(_raise(session, clock, level, now))


def _raise(session: Session, clock: SlaClock, level: int, now: datetime) -> Escalation:
    target = clock.escalations[level - 1][1]
    leader_id = None
    if clock.group_id is not None:
        group = session.get(Group, clock.group_id)
        leader_id = group.leader_id if group else None
    escalation = Escalation(
        clock_id=clock.id, instance_id=clock.instance_id, task_id=clock.task_id,
        group_id=clock.group_id, level=level, target=target,
        target_user_id=leader_id if target == "leader" else None, title=clock.title,
        due_at=clock.due_at, raised_at=now)
    session.add(escalation)
    overdue = int((now - clock.due_at).total_seconds())
    record_event(session, "escalated", at=now, instance_id=clock.instance_id, task_id=clock.task_id,
                 message=f"L{level} → {target}: {clock.title}",
                 data={"level": level, "target": target, "overdue_seconds": overdue})
    log.info("escalated clock %s level %s to %s", clock.id, level, target)
    return escalation
