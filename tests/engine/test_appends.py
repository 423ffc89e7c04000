"""A step's append-only rows (audit events, SLA clocks) and its clock stops as batched statements
(engine/appends.py): written with the step, seen by a query in the same transaction, gone with a
rollback; and the statements one completed step costs."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy import event, select

from engine import appends
from engine.models import AuditEvent, HumanTask, append_event, open_tasks_of_instance
from engine.people import load_user, user_by_name
from slas.models import SlaClock
from tests.conftest import INTAKE, T0

TRIAGE = {"resolution": "dispatch", "first_reply": "已派单", "department": "network",
          "final_reply_due": "2026-11-24T09:00:00+08:00"}


@contextlib.contextmanager
def statements(session) -> Iterator[list[str]]:
    seen: list[str] = []

    def listener(_conn, _cursor, statement, *_rest):
        seen.append(" ".join(statement.split()))

    bind = session.get_bind()
    event.listen(bind, "before_cursor_execute", listener)
    try:
        yield seen
    finally:
        event.remove(bind, "before_cursor_execute", listener)


def _notes(session) -> list[str]:
    return list(session.scalars(select(AuditEvent.message).where(AuditEvent.kind == "note")
                                .order_by(AuditEvent.id)))


def test_queued_rows_are_seen_by_a_query_and_kept_in_order(store):
    session, _engine = store
    for text in ("一", "二", "三"):
        append_event(session, "note", at=T0, message=text)
    assert appends.pending(session) == 3
    assert _notes(session) == ["一", "二", "三"]  # written before the query, as autoflush would
    assert appends.pending(session) == 0
    session.commit()
    assert _notes(session) == ["一", "二", "三"]


def test_without_autoflush_they_wait_for_the_commit(store):
    session, _engine = store
    append_event(session, "note", at=T0, message="稍后")
    with session.no_autoflush:
        assert _notes(session) == []
    assert appends.pending(session) == 1
    session.commit()
    assert appends.pending(session) == 0
    assert _notes(session) == ["稍后"]


def test_a_rollback_drops_them(store):
    session, _engine = store
    append_event(session, "note", at=T0, message="作废")
    session.rollback()
    assert appends.pending(session) == 0
    session.commit()
    assert _notes(session) == []


def test_a_savepoint_rolled_back_drops_only_the_rows_queued_inside_it(store):
    session, _engine = store
    append_event(session, "note", at=T0, message="外")
    savepoint = session.begin_nested()
    append_event(session, "note", at=T0, message="内")
    savepoint.rollback()
    append_event(session, "note", at=T0, message="后")
    session.commit()
    assert _notes(session) == ["外", "后"]


def test_a_step_writes_its_events_clocks_and_stops_in_few_statements(bundled):
    session, engine = bundled
    agent = user_by_name(session, "agent1")
    instance = engine.start(session, "complaint", INTAKE, actor=agent, now=T0)
    session.commit()
    (triage,) = open_tasks_of_instance(session, instance.id)
    # The event that opened the task names it, although the task had no id when it was queued.
    opened = session.scalars(select(AuditEvent).where(AuditEvent.instance_id == instance.id,
                                                      AuditEvent.kind == "task_opened")).one()
    assert opened.task_id == triage.id
    session.expire_all()

    with statements(session) as seen:
        actor = load_user(session, agent.id)
        engine.complete_task(session, triage.id, TRIAGE, actor=actor, now=T0)
        session.commit()

    assert sum("audit_events" in s for s in seen) == 1  # task_completed + task_opened: one insert
    clock_statements = [s for s in seen if "sla_clocks" in s]
    one_statement = session.get_bind().dialect.name == "postgresql"  # the inserts ride on the stop
    assert len(clock_statements) == (1 if one_statement else 2), clock_statements
    assert sum(s.startswith("SELECT users") for s in seen) == 1  # the actor with their groups
    if one_statement:  # the step's closed task, stopped and started clocks and events: one statement
        (batched,) = [s for s in seen if s.startswith("WITH")]
        for part in ("UPDATE human_tasks", "UPDATE sla_clocks", "INSERT INTO sla_clocks", "INSERT INTO audit_events"):
            assert part in batched
    session.expire_all()
    triage = session.get(HumanTask, triage.id)
    assert (triage.status, triage.completed_by, triage.assignee_id, triage.completed_at) == (
        "completed", agent.id, agent.id, T0)
    kinds = list(session.scalars(select(AuditEvent.kind).where(AuditEvent.instance_id == instance.id)
                                 .order_by(AuditEvent.id)))
    assert kinds[-2:] == ["task_completed", "task_opened"]
    clocks = {c.task_id: c for c in session.scalars(select(SlaClock).where(SlaClock.instance_id == instance.id))}
    (handle,) = open_tasks_of_instance(session, instance.id)
    assert clocks[triage.id].state == "stopped" and clocks[triage.id].stopped_at == T0
    assert clocks[handle.id].state == "running" and clocks[handle.id].next_check_at is not None
    assert clocks[None].state == "running"  # the case's own clock runs on
    assert handle.due_at == clocks[handle.id].due_at
