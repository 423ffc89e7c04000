"""The city level (issue 15): a city leader sees the city's cases only (engine/access.py, the same
rule in Python and in SQL), and a step is transferred to the city's remote seat with a reason and a
line on the case's history (processes/city_transfer.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engine.access import city_scope, may_see_task, may_view_instance, visible_cases
from engine.errors import Conflict, Forbidden, NotFound, ValidationFailed
from engine.models import AuditEvent, ProcessInstance, open_tasks_of_instance
from engine.people import user_by_name
from processes.city_transfer import transfer_to_city
from slas.models import SlaClock
from tests.conftest import INTAKE, T0


def _case(session, engine, phone: str) -> ProcessInstance:
    instance = engine.start(session, "complaint", {**INTAKE, "customer_phone": phone, "contact_phone": phone},
                            actor=user_by_name(session, "agent1"), now=T0)
    session.commit()
    return instance


@pytest.fixture
def cases(bundled):
    """Two complaints at intake; the first is transferred to 杭州地市中心."""
    session, engine = bundled
    local, provincial = _case(session, engine, "13800000011"), _case(session, engine, "13800000012")
    (step,) = open_tasks_of_instance(session, local.id)
    transfer_to_city(session, step.id, "hz_city", "需要上门核查线路", actor=user_by_name(session, "agent1"), now=T0)
    session.commit()
    return session, engine, local, provincial


@pytest.mark.parametrize(("username", "cities", "sees_local", "sees_provincial"), [
    ("hzlead1", {"杭州"}, True, False),   # the city leader: the city's cases only
    ("hzseat1", None, True, False),       # a remote seat: their group's steps, as any agent
    ("leader1", None, True, True),        # a province leader: every case
    ("manager1", None, True, True),
    ("admin", None, True, True),
    ("agent1", None, True, True),         # started both
    ("agent2", None, False, True),        # intake: the local step left the group with the transfer
    ("net1", None, False, False),
])
def test_who_sees_which_case(cases, username, cities, sees_local, sees_provincial):
    session, _engine, local, provincial = cases
    user = user_by_name(session, username)
    assert city_scope(session, user) == cities
    assert may_view_instance(session, user, local) is sees_local
    assert may_view_instance(session, user, provincial) is sees_provincial
    listed = set(session.scalars(select(ProcessInstance.id).where(
        ProcessInstance.id.in_([local.id, provincial.id]), visible_cases(session, user))))
    assert listed == {i.id for i, seen in ((local, sees_local), (provincial, sees_provincial)) if seen}


def test_a_transfer_moves_the_step_its_clock_and_writes_the_reason(cases):
    session, _engine, local, _provincial = cases
    (step,) = open_tasks_of_instance(session, local.id)
    hz = step.group_id
    assert step.assignee_id is None and hz is not None
    assert may_see_task(session, user_by_name(session, "hzseat1"), step)
    assert not may_see_task(session, user_by_name(session, "agent2"), step)
    clock = session.scalar(select(SlaClock).where(SlaClock.task_id == step.id))
    assert clock is not None and clock.group_id == hz  # escalations go to the city's leader
    event = session.scalar(select(AuditEvent).where(AuditEvent.kind == "transferred_to_city"))
    assert event.actor == "agent1" and event.instance_id == local.id
    assert event.data == {"from_group": "intake", "to_group": "hz_city", "city": "杭州", "reason": "需要上门核查线路"}
    assert "杭州地市中心" in event.message and "需要上门核查线路" in event.message


def test_a_transfer_is_refused_with_a_reason(cases):
    session, _engine, local, provincial = cases
    (step,) = open_tasks_of_instance(session, provincial.id)
    agent1 = user_by_name(session, "agent1")
    for group, reason, field in (("intake", "x", "group"), ("nope", "x", "group"), ("hz_city", "  ", "reason")):
        with pytest.raises(ValidationFailed) as caught:
            transfer_to_city(session, step.id, group, reason, actor=agent1, now=T0)
        assert field in caught.value.fields
    with pytest.raises(Forbidden):  # agent2 sees the step (intake) but agent1 holds it
        transfer_to_city(session, step.id, "hz_city", "x", actor=user_by_name(session, "agent2"), now=T0)
    with pytest.raises(NotFound):  # the network department does not even see it
        transfer_to_city(session, step.id, "hz_city", "x", actor=user_by_name(session, "net1"), now=T0)
    (moved,) = open_tasks_of_instance(session, local.id)
    with pytest.raises(Conflict):
        transfer_to_city(session, moved.id, "hz_city", "again", actor=user_by_name(session, "hzlead1"), now=T0)
