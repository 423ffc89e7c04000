"""SLA clocks and the escalation scanner: warning first, each level once, cleared when done,
paused while the case waits on the customer; two scanners never raise the same level twice."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.models import open_tasks_of_instance
from engine.people import user_by_name
from slas.models import Escalation, SlaClock
from slas.scanner import scan
from tests.conftest import INTAKE, T0

DISPATCH = {"resolution": "dispatch", "first_reply": "已派单", "department": "network",
            "final_reply_due": "2026-11-30T09:00:00+08:00"}


def _dispatched(session, engine):
    agent = user_by_name(session, "agent1")
    instance = engine.start(session, "complaint", INTAKE, actor=agent, now=T0)
    (triage,) = open_tasks_of_instance(session, instance.id)
    engine.complete_task(session, triage.id, DISPATCH, actor=agent, now=T0)
    session.commit()
    (handle,) = open_tasks_of_instance(session, instance.id)
    return instance, handle


def _escalations(session, task_id):
    return list(session.scalars(select(Escalation).where(Escalation.task_id == task_id)
                                .order_by(Escalation.level)))


def test_task_due_time_follows_policy(bundled):
    session, engine = bundled
    _, handle = _dispatched(session, engine)
    assert handle.due_at == T0 + timedelta(hours=24)
    assert handle.warn_at == T0 + timedelta(hours=24 * 0.8)


def test_explicit_earlier_deadline_wins(bundled):
    session, engine = bundled
    agent = user_by_name(session, "agent1")
    instance = engine.start(session, "complaint", INTAKE, actor=agent, now=T0)
    (triage,) = open_tasks_of_instance(session, instance.id)
    engine.complete_task(session, triage.id, {**DISPATCH, "final_reply_due": "2026-11-23T21:00:00+08:00"},
                         actor=agent, now=T0)
    (handle,) = open_tasks_of_instance(session, instance.id)
    assert handle.due_at == T0 + timedelta(hours=12)


def test_warning_then_each_level_once_then_cleared(bundled):
    session, engine = bundled
    _instance, handle = _dispatched(session, engine)
    leader = session.get(type(user_by_name(session, "netlead1")), user_by_name(session, "netlead1").id)
    assert scan(session, T0 + timedelta(hours=19)).warnings == 0
    result = scan(session, T0 + timedelta(hours=20))
    assert (result.warnings, len(result.escalations)) == (1, 0)
    assert scan(session, T0 + timedelta(hours=23)).warnings == 0  # never twice
    result = scan(session, T0 + timedelta(hours=25))
    assert [(e.level, e.target, e.target_user_id) for e in result.escalations] == [(1, "leader", leader.id)]
    assert scan(session, T0 + timedelta(hours=26)).escalations == []
    result = scan(session, T0 + timedelta(hours=37))
    assert [(e.level, e.target) for e in result.escalations] == [(2, "manager")]
    late = scan(session, T0 + timedelta(days=10)).escalations
    assert [e.level for e in late if e.task_id == handle.id] == []
    assert [e.level for e in late if e.task_id is None] == [1, 2]  # the whole case is late too
    assert [e.level for e in _escalations(session, handle.id)] == [1, 2]
    # Done → the escalations of that step are cleared and its clock stops.
    net = user_by_name(session, "net1")
    engine.complete_task(session, handle.id, {"handling_result": "已处理", "cause": "other",
                                              "refund_due": False}, actor=net, now=T0 + timedelta(days=2))
    session.commit()
    assert all(e.cleared_at is not None for e in _escalations(session, handle.id))
    clock = session.scalars(select(SlaClock).where(SlaClock.task_id == handle.id)).one()
    assert clock.state == "stopped" and clock.next_check_at is None


def test_missed_scans_catch_up_with_every_level_once(bundled):
    session, engine = bundled
    _, handle = _dispatched(session, engine)
    result = scan(session, T0 + timedelta(days=5))  # the server was down for days
    assert sorted(e.level for e in result.escalations if e.task_id == handle.id) == [1, 2]
    assert scan(session, T0 + timedelta(days=6)).escalations == []


def test_pause_stops_the_clock_and_shows(bundled):
    session, engine = bundled
    instance, handle = _dispatched(session, engine)
    net = user_by_name(session, "net1")
    engine.suspend(session, instance.id, "等待客户提供故障时间", actor=net, now=T0 + timedelta(hours=10))
    session.commit()
    assert scan(session, T0 + timedelta(hours=40)).escalations == []  # paused: nothing is due
    engine.resume(session, instance.id, actor=net, now=T0 + timedelta(hours=40))
    session.commit()
    session.refresh(handle)
    assert handle.due_at == T0 + timedelta(hours=24 + 30)  # 30 paused hours added
    assert scan(session, T0 + timedelta(hours=53)).escalations == []
    result = scan(session, T0 + timedelta(hours=55))
    assert [e.level for e in result.escalations if e.task_id == handle.id] == [1]


def test_whole_case_limit_counts_working_days(bundled):
    session, engine = bundled
    instance, _ = _dispatched(session, engine)
    clock = session.scalars(select(SlaClock).where(SlaClock.instance_id == instance.id,
                                                   SlaClock.task_id.is_(None))).one()
    # Monday 09:00 + 3 working days = Thursday 09:00 (Beijing).
    assert clock.due_at == T0 + timedelta(days=3)
    assert clock.calendar == "workdays"


def test_a_scanner_with_a_stale_view_cannot_raise_again(bundled):
    """Two schedulers read the same due clock; the one that writes second must raise nothing
    (on SQLite writers are serialized, so the interleaving is staged with a stale session)."""
    session, engine = bundled
    from slas.scanner import _apply_one, _plan

    _, handle = _dispatched(session, engine)
    clock_id = session.scalars(select(SlaClock.id).where(SlaClock.task_id == handle.id)).one()
    handle_id = handle.id
    session.commit()
    later = T0 + timedelta(hours=40)
    stale = Session(session.get_bind(), expire_on_commit=False)
    assert stale.get(SlaClock, clock_id).level == 0  # scanner B has read the clock
    stale.commit()
    first = scan(session, later)  # scanner A raises levels 1 and 2 and commits
    assert sorted(e.level for e in first.escalations if e.task_id == handle_id) == [1, 2]
    session.commit()  # release SQLite's write lock before B writes
    (move,) = _plan(stale, [clock_id], later)  # scanner B planned from what it read earlier...
    move.old_level, move.was_warned = 0, False
    assert not _apply_one(stale, move, later)  # ...and its compare-and-set matches nothing
    stale.rollback()
    stale.close()
    assert [e.level for e in _escalations(session, handle_id)] == [1, 2]
