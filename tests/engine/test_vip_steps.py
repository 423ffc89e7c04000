"""A step opened for a VIP customer's case carries the flag on its row: the inbox and 取下一单 list
it first, from the inbox index alone (no join to the case's data)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from engine.models import HumanTask, inbox_query, open_tasks_of_instance
from engine.next_task import claim_next
from engine.people import user_by_name
from engine.task_rows import vip_of
from tests.conftest import T0

DIAGRAMS = Path(__file__).parent / "diagrams"


def test_the_rule_of_a_vip_case():
    assert vip_of({"vip": True}) and vip_of({"level": "VIP"}) and vip_of({"customer_level": "vip"})
    assert not vip_of({}) and not vip_of({"vip": "yes"}) and not vip_of({"level": "mass"})


def test_a_vip_step_comes_first_in_the_inbox_and_to_the_next_agent(bundled):
    session, engine = bundled
    engine.deploy(session, (DIAGRAMS / "reminder.bpmn").read_bytes(),
                  {"note.schema.json": {"type": "object", "properties": {}}}, now=T0)
    agent1 = user_by_name(session, "agent1")
    ordinary = engine.start(session, "reminder", {"level": "mass"}, actor=agent1, now=T0)
    vip = engine.start(session, "reminder", {"customer_level": "VIP"}, actor=agent1, now=T0 + timedelta(minutes=5))
    session.commit()
    assert engine.fire_due_timers(session, T0 + timedelta(hours=2)) == 2  # both steps open (same group)
    session.expire_all()
    (first,), (second,) = open_tasks_of_instance(session, ordinary.id), open_tasks_of_instance(session, vip.id)
    assert (first.vip, second.vip) == (False, True)
    agent2 = user_by_name(session, "agent2")
    listed = [t.instance_id for t in session.scalars(inbox_query(agent2.id, agent2.group_ids, "group"))
              if t.instance_id in (ordinary.id, vip.id)]
    assert listed == [vip.id, ordinary.id]  # the VIP first although it opened later
    for task in (first, second):  # free both, so that 取下一单 picks by the inbox order
        session.execute(HumanTask.__table__.update().where(HumanTask.id == task.id).values(assignee_id=None))
    session.commit()
    taken = claim_next(engine, session, agent2, T0 + timedelta(hours=2))
    assert taken is not None and taken.instance_id == vip.id
    assert session.scalar(select(HumanTask.vip).where(HumanTask.id == taken.id)) is True
