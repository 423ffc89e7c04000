"""The escalation scanner: raise warnings and escalations for clocks whose thresholds passed.

It reads only clocks with ``next_check_at <= now`` (an index range scan), in bounded batches,
one committed unit of work per batch. Each level is raised at most once per clock: a clock's
``level``/``warned_at`` move by compare-and-set (the UPDATE matches only the state the scanner
read), and ``(clock_id, level)`` is unique in ``escalations``. A batch's compare-and-sets run as
one executemany; if any of them lost a race with another scanner the batch is rolled back and
redone clock by clock, so a lost race is never an error and never a double alert.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import bindparam, case, func, select, update
from sqlalchemy.orm import Session

from engine.models import AuditEvent
from engine.people import Group

from .clocks import next_check, threshold_at
from .models import RUNNING, Escalation, SlaClock, due_clock_ids

log = logging.getLogger("kefu.slas.scanner")
_clocks = SlaClock.metadata.tables[SlaClock.__tablename__]  # the Table (``__table__`` is typed FromClause)


@dataclass
class ScanResult:
    warnings: int = 0
    escalations: list[Escalation] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.warnings} warning(s), {len(self.escalations)} escalation(s)"


@dataclass
class _Move:
    """What one clock crossed since the scanner last moved it."""

    clock: SlaClock
    old_level: int
    new_level: int
    was_warned: bool
    warn_now: bool
    next_at: datetime | None

    def params(self, now: datetime) -> dict:
        return {"b_id": self.clock.id, "b_old": self.old_level, "b_warned": int(self.was_warned),
                "b_new": self.new_level, "b_warn_at": now if self.warn_now else None,
                "b_next": self.next_at}


_CAS = (update(_clocks)
        .where(_clocks.c.id == bindparam("b_id"), _clocks.c.level == bindparam("b_old"),
               case((_clocks.c.warned_at.is_(None), 0), else_=1) == bindparam("b_warned"))
        .values(level=bindparam("b_new"),
                warned_at=func.coalesce(_clocks.c.warned_at, bindparam("b_warn_at")),
                next_check_at=bindparam("b_next")))


# Told, inside a batch's transaction (before its commit), of the escalations the batch raised:
# e.g. the complaint facts count them (processes/complaint_facts.py), with the escalations.
EscalationHook = Callable[[Session, Sequence[Escalation], datetime], None]


def scan(session: Session, now: datetime, batch: int = 500,
         on_escalated: EscalationHook | None = None) -> ScanResult:
    """Raise what is due by ``now``; commits once per batch."""
    result = ScanResult()
    leaders = {gid: leader for gid, leader in session.execute(select(Group.id, Group.leader_id))}
    while True:
        ids = due_clock_ids(session, now, batch)
        if not ids:
            return result
        moves = _plan(session, ids, now)
        if moves and not _apply_all(session, moves, now):
            session.rollback()  # another scanner moved some of these clocks: go one by one
            moves = [m for m in _plan(session, ids, now) if _apply_one(session, m, now)]
        raised = len(result.escalations)
        for move in moves:
            _record(session, move, now, leaders, result)
        if on_escalated is not None and len(result.escalations) > raised:
            on_escalated(session, result.escalations[raised:], now)
        session.commit()
        if len(ids) < batch:
            return result


def _plan(session: Session, ids: list[int], now: datetime) -> list[_Move]:
    clocks = session.scalars(select(SlaClock).where(SlaClock.id.in_(ids))
                             .execution_options(populate_existing=True)).all()
    moves = []
    for clock in clocks:
        if clock.state != RUNNING:
            continue
        new_level = clock.level
        for level, (fraction, _target) in enumerate(clock.escalations, start=1):
            if level > clock.level and threshold_at(clock, fraction) <= now:
                new_level = level
        was_warned = clock.warned_at is not None
        warn_now = not was_warned and threshold_at(clock, clock.warn_fraction) <= now
        old_level = clock.level
        # next_check reads the clock as it will be after the move.
        clock.level, clock.warned_at = new_level, (now if warn_now else clock.warned_at)
        next_at = next_check(clock)
        session.expire(clock, ["level", "warned_at"])
        moves.append(_Move(clock, old_level, new_level, was_warned, warn_now, next_at))
    return moves


def _apply_all(session: Session, moves: list[_Move], now: datetime) -> bool:
    connection = session.connection()
    if not connection.dialect.supports_sane_multi_rowcount:
        return all(_apply_one(session, m, now) for m in moves)
    moved = connection.execute(_CAS, [m.params(now) for m in moves]).rowcount
    return moved == len(moves)


def _apply_one(session: Session, move: _Move, now: datetime) -> bool:
    return session.connection().execute(_CAS, move.params(now)).rowcount == 1


def _record(session: Session, move: _Move, now: datetime, leaders: dict[int, int | None],
            result: ScanResult) -> None:
    clock = move.clock
    if move.warn_now and move.new_level == 0:
        result.warnings += 1
        session.add(AuditEvent(instance_id=clock.instance_id, task_id=clock.task_id, at=now,
                               kind="sla_warning", message=clock.title[:500],
                               data={"due_at": clock.due_at.isoformat()}))
    for level in range(move.old_level + 1, move.new_level + 1):
        target = clock.escalations[level - 1][1]
        leader_id = leaders.get(clock.group_id) if clock.group_id is not None else None
        escalation = Escalation(
            clock_id=clock.id, instance_id=clock.instance_id, task_id=clock.task_id,
            group_id=clock.group_id, level=level, target=target,
            target_user_id=leader_id if target == "leader" else None, title=clock.title,
            due_at=clock.due_at, raised_at=now)
        session.add(escalation)
        session.add(AuditEvent(
            instance_id=clock.instance_id, task_id=clock.task_id, at=now, kind="escalated",
            message=f"L{level} → {target}: {clock.title}"[:500],
            data={"level": level, "target": target,
                  "overdue_seconds": int((now - clock.due_at).total_seconds())}))
        result.escalations.append(escalation)
        log.info("escalated clock %s level %s to %s", clock.id, level, target)
