"""Starting, pausing, resuming and stopping SLA clocks as an engine step unfolds.

Time on a clock is counted on its calendar (24×7 or working days). A pause (挂起) adds the paused
span, measured on the same calendar, to ``paused_seconds``; every threshold instant is then
``calendar.add(started_at, threshold + paused_seconds)``.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import Table, bindparam, or_, update
from sqlalchemy.orm import Session

from engine import appends
from engine.clock import parse_instant
from engine.models import HumanTask, ProcessInstance, record_event

from .business_calendar import Calendar, load_calendar
from .models import PAUSED, RUNNING, STOPPED, Escalation, SlaClock, running_clocks
from .policies import UPGRADED, Policy, policy_from_properties
from .upgrades import is_upgraded, upgraded_in


@lru_cache(maxsize=8)
def calendar_named(name: str) -> Calendar:
    """The shipped calendar ``name`` (loaded once per process)."""
    return load_calendar(name)


def threshold_at(clock: SlaClock, fraction: float) -> datetime:
    """The instant at which ``fraction`` of the clock's limit has been used."""
    calendar = calendar_named(clock.calendar)
    return calendar.add(clock.started_at, clock.duration_seconds * fraction + clock.paused_seconds)


def next_check(clock: SlaClock) -> datetime | None:
    """The next threshold this clock has not crossed yet (None when all are behind it)."""
    if clock.state != RUNNING:
        return None
    pending = [] if clock.warned_at else [clock.warn_fraction]
    pending += [fraction for level, (fraction, _) in enumerate(clock.escalations, start=1)
                if level > clock.level]
    return threshold_at(clock, min(pending)) if pending else None


def refresh(clock: SlaClock) -> None:
    clock.due_at = threshold_at(clock, 1.0)
    clock.warn_at = threshold_at(clock, clock.warn_fraction)
    clock.next_check_at = next_check(clock)


def start_clock(session: Session, instance: ProcessInstance, policy: Policy, *, title: str,
                group_id: int | None, now: datetime, task: HumanTask | None = None,
                explicit_due: datetime | None = None) -> SlaClock:
    duration = policy.duration_seconds
    if explicit_due is not None and explicit_due > now:
        duration = min(duration, calendar_named(policy.calendar).between(now, explicit_due)) or duration
    clock = SlaClock(instance_id=instance.id, task=task, title=title[:200],
                     group_id=group_id, calendar=policy.calendar, started_at=now,
                     duration_seconds=duration, paused_seconds=0.0, warn_fraction=policy.warn,
                     escalations=[list(e) for e in policy.escalations], level=0, state=RUNNING)
    refresh(clock)
    # Nothing changes a new clock in its step: it is written with the step's other new rows in
    # one batched insert (engine/appends.py), and is not in the session.
    appends.append_object(session, clock, task=task)
    if task is not None:
        task.due_at, task.warn_at = clock.due_at, clock.warn_at
    return clock


class SlaListener:
    """The engine's step listener that keeps SLA clocks in step with tasks and cases."""

    def instance_started(self, session: Session, instance: ProcessInstance,
                         start_properties: dict[str, str], group_id: int | None, now: datetime) -> None:
        policy = policy_from_properties(start_properties)
        if policy is None:
            return
        start_clock(session, instance, policy, title=instance.definition.name, now=now,
                    group_id=group_id)

    def task_opened(self, session: Session, instance: ProcessInstance, task: HumanTask,
                    properties: dict[str, str], data: dict[str, Any], now: datetime) -> None:
        # An upgraded complaint's stricter limit, where the step declares one (slas/upgrades.py).
        upgraded = UPGRADED + "duration" in properties and (upgraded_in(data) or is_upgraded(session, instance.id))
        policy = policy_from_properties(properties, upgraded=upgraded)
        if policy is None:
            return
        explicit = parse_instant(data.get(policy.due_var)) if policy.due_var else None
        clock = start_clock(session, instance, policy, title=task.title, group_id=task.group_id,
                            now=now, task=task, explicit_due=explicit)
        if instance.status == "suspended":
            self._pause(clock, now)

    def task_closed(self, session: Session, instance: ProcessInstance, task: HumanTask,
                    now: datetime) -> None:
        _stops(session, now).tasks.add(task.id)

    def instance_finished(self, session: Session, instance: ProcessInstance, now: datetime) -> None:
        _stops(session, now).instances.add(instance.id)

    def instance_suspended(self, session: Session, instance: ProcessInstance, now: datetime) -> None:
        for clock in running_clocks(session, instance.id):
            self._pause(clock, now)
        record_event(session, "sla_paused", at=now, instance_id=instance.id, message="")

    def instance_resumed(self, session: Session, instance: ProcessInstance, now: datetime) -> None:
        tasks = {t.id: t for t in session.query(HumanTask).filter(
            HumanTask.instance_id == instance.id, HumanTask.status == "open")}
        for clock in _paused(session, instance.id):
            calendar = calendar_named(clock.calendar)
            clock.paused_seconds += calendar.between(clock.paused_at or now, now)
            clock.state, clock.paused_at = RUNNING, None
            refresh(clock)
            task = tasks.get(clock.task_id) if clock.task_id else None
            if task is not None:
                task.due_at, task.warn_at = clock.due_at, clock.warn_at

    @staticmethod
    def _pause(clock: SlaClock, now: datetime) -> None:
        clock.state, clock.paused_at, clock.next_check_at = PAUSED, now, None


class _Stops:
    """The clocks a step stops (those of the steps it closed, all of a case it finished) and their
    alerts cleared: set-based, no objects loaded, because this runs on every completed step. It is
    written with the step's new rows (engine/appends.py), one ``UPDATE`` for the whole step."""

    def __init__(self, session: Session, now: datetime) -> None:
        self.session, self.now, self.tasks, self.instances = session, now, set[int](), set[int]()

    def statements(self) -> list[appends.Statement]:
        if not (self.tasks or self.instances):
            return []
        which = (bool(self.tasks), bool(self.instances))
        params = {"tasks": sorted(self.tasks), "instances": sorted(self.instances), "at": self.now}

        def clear_alerts(result: Any) -> None:
            if any(level > 0 for level in result.scalars()):  # only an escalated step has alerts
                self.session.connection().execute(_CLEAR_ALERTS[which], params)

        return [(_STOP_CLOCKS[which], params, clear_alerts)]


def _stops(session: Session, now: datetime) -> _Stops:
    return appends.batch(session, ("kefu.sla.stops", now), lambda: _Stops(session, now))


def _matching(table: Any, which: tuple[bool, bool]) -> Any:
    by_task = table.c.task_id.in_(bindparam("tasks", expanding=True))
    by_instance = table.c.instance_id.in_(bindparam("instances", expanding=True))
    return {(True, False): by_task, (False, True): by_instance}.get(which, or_(by_task, by_instance))


# Built once per shape (by steps, by cases, both): compiled once, reused by every step.
_SHAPES = ((True, False), (False, True), (True, True))
_CLOCKS, _ALERTS = cast(Table, SlaClock.__table__), cast(Table, Escalation.__table__)
_STOP_CLOCKS = {w: update(_CLOCKS).where(_matching(_CLOCKS, w), _CLOCKS.c.state.in_((RUNNING, PAUSED)))
                .values(state=STOPPED, stopped_at=bindparam("at"), next_check_at=None)
                .returning(_CLOCKS.c.level) for w in _SHAPES}
_CLEAR_ALERTS = {w: update(_ALERTS).where(_matching(_ALERTS, w), _ALERTS.c.cleared_at.is_(None))
                 .values(cleared_at=bindparam("at")) for w in _SHAPES}


def _paused(session: Session, instance_id: int) -> list[SlaClock]:
    return list(session.query(SlaClock).filter(SlaClock.instance_id == instance_id,
                                               SlaClock.state == PAUSED))
