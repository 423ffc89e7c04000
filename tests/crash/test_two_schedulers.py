"""Two schedulers and two workers at once, as separate processes on one database (SQLite here;
PostgreSQL when KEFU_DATABASE_URL names one, as in CI's second run), and the schedulers without
their lease, so that only the guards of each tick step keep them apart. Counted afterwards: no
timer fired twice, no escalation raised twice, no text sent twice (at the loopback SMSC), no
billing order written twice — and none missing."""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine import outbox
from engine.clock import utcnow
from engine.models import AuditEvent, ProcessInstance, open_tasks_of_instance
from engine.people import user_by_name
from slas.models import Escalation
from tests.crash.conftest import billing_orders, jobs_by_status, take_orders, wait_until
from web.extensions import db

pytestmark = pytest.mark.slow

DIAGRAM = (Path(__file__).parent / "diagrams" / "timed_text.bpmn").read_bytes()
TIMED, OVERDUE, ORDERS = 8, 4, 3


def _prepare(app) -> list[int]:
    """Timers due, SLA clocks overdue, orders to write: all waiting for the first tick."""
    with app.app_context():
        engine, agent = app.extensions["kefu_engine"], user_by_name(db.session, "agent1")
        now = utcnow()
        engine.deploy(db.session, DIAGRAM, {}, now=now - timedelta(days=4))
        db.session.commit()
        timed = []
        for i in range(TIMED):  # a one-minute timer, started an hour ago: due
            instance = engine.start(db.session, "timed_text", {"customer_phone": f"137{i:08d}"}, actor=agent,
                                    now=now - timedelta(hours=1))
            db.session.commit()
            timed.append(instance.id)
        for _ in range(OVERDUE):  # the order taken 3 days ago should have taken 30 minutes
            past = now - timedelta(days=3)
            instance = engine.start(db.session, "business_acceptance", {"customer_phone": "13800000001"},
                                    actor=agent, now=past)
            db.session.commit()
            (task,) = open_tasks_of_instance(db.session, instance.id)
            engine.complete_task(db.session, task.id, {"service_password": "123456"}, actor=agent, now=past)
            db.session.commit()
    take_orders(app, ORDERS)
    return timed


def _state(app, timed: list[int]) -> dict:
    with app.app_context():
        state = {
            "completed": db.session.scalar(select(func.count()).select_from(ProcessInstance).where(
                ProcessInstance.id.in_(timed), ProcessInstance.status == "completed")),
            "escalations": Counter(db.session.execute(select(Escalation.clock_id, Escalation.level)).all()),
            "timers": Counter(db.session.scalars(select(AuditEvent.instance_id).where(
                AuditEvent.kind == "timer_fired", AuditEvent.instance_id.in_(timed)))),
            "texts_queued": db.session.scalar(select(func.count()).select_from(outbox.ConnectorJob).where(
                outbox.ConnectorJob.operation == "sms.send")),
        }
        db.session.rollback()
    return state


def test_two_schedulers_and_two_workers_do_nothing_twice(app, billing, smsc, kefu):
    timed = _prepare(app)
    for _ in range(2):  # job leases as in production (nobody dies here), small claims to interleave
        kefu.start("tick", CRASH_NO_LEASE="1", CRASH_CLAIM="2", CRASH_LEASE="300")
        kefu.start("work", CRASH_CLAIM="2", CRASH_LEASE="300")

    def finished():
        state = _state(app, timed)
        jobs = jobs_by_status(app)
        return (state["completed"] == TIMED and len(state["escalations"]) >= OVERDUE * 2
                and set(jobs) <= {"done", "failed"} and len(smsc.messages()) == state["texts_queued"])

    wait_until(finished, timeout=120, what="every timer, escalation, text and order")
    time.sleep(3)  # several more rounds of all four: whatever could happen twice has had its chance
    state = _state(app, timed)

    assert state["timers"] == Counter(timed), "a timer was lost or fired twice"
    assert set(state["escalations"].values()) == {1}, "an escalation was raised twice"
    levels: dict[int, list[int]] = {}
    for clock, level in state["escalations"]:
        levels.setdefault(clock, []).append(level)
    assert len(levels) >= OVERDUE and all(sorted(v) == [1, 2] for v in levels.values())  # leader, manager
    texts = Counter((m["destination"], m["text"]) for m in smsc.messages())
    assert set(texts.values()) == {1}, [t for t, n in texts.items() if n > 1]
    assert len(texts) == state["texts_queued"] == jobs_by_status(app, ("sms.send",)).get("done")
    assert sum(1 for _dest, text in texts if text.startswith("定时提醒")) == TIMED
    assert len(texts) > TIMED  # the supervisors were texted about the escalations too
    keys = billing_orders(billing)
    assert len(keys) == len(set(keys)) == ORDERS, "an order was lost or written twice"
