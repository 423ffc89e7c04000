"""The engine: persist → reload → continue, optimistic locking, timers through tick(now)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from engine.errors import Conflict, Forbidden, ValidationFailed
from engine.models import DONE, HumanTask, ProcessInstance, open_tasks_of_instance
from engine.people import user_by_name
from tests.conftest import INTAKE, T0

DIAGRAMS = Path(__file__).parent / "diagrams"


def _user(session, name):
    return user_by_name(session, name)


def _open(session, instance_id):
    return open_tasks_of_instance(session, instance_id)


def test_complaint_survives_reload_between_every_step(bundled):
    session, engine = bundled
    agent, net, leader = _user(session, "agent1"), _user(session, "net1"), _user(session, "leader1")
    instance = engine.start(session, "complaint", INTAKE, actor=agent, now=T0)
    session.commit()
    steps = [
        ("triage", agent, {"resolution": "dispatch", "first_reply": "已派单", "department": "network",
                           "final_reply_due": "2026-11-24T09:00:00+08:00"}),
        ("handle", net, {"handling_result": "已优化基站", "cause": "network_fault", "refund_due": False}),
        ("quality_check", leader, {"qc_result": "reject", "qc_reason": "未说明原因"}),
        ("handle", net, {"handling_result": "基站故障已修复", "cause": "network_fault", "refund_due": False}),
        ("quality_check", leader, {"qc_result": "accept"}),
        ("reply", agent, {"final_reply": "已修复", "reply_method": "phone", "satisfaction": "satisfied"}),
    ]
    for name, user, data in steps:
        engine.workflows.clear()  # force a reload from the stored state every time
        session.expire_all()
        (task,) = _open(session, instance.id)
        assert task.name == name
        engine.complete_task(session, task.id, data, actor=user, now=T0 + timedelta(minutes=5))
        session.commit()
    session.expire_all()
    instance = session.get(ProcessInstance, instance.id)
    assert instance.status == "completed"
    assert engine.workflow_data(session, instance)["qc_result"] == "accept"
    # The rework went back to the handler who did the step before.
    handles = session.scalars(select(HumanTask).where(HumanTask.instance_id == instance.id,
                                                      HumanTask.name == "handle")).all()
    assert [h.completed_by for h in handles] == [net.id, net.id]


def test_state_is_stored_without_the_spec(bundled):
    session, engine = bundled
    instance = engine.start(session, "complaint", INTAKE, actor=_user(session, "agent1"), now=T0)
    session.commit()
    assert '"spec"' not in instance.state[:200] and "task_specs" not in instance.state
    assert instance.title == INTAKE["description"]  # lists show what the case is about


def test_answer_at_once_closes_the_complaint(bundled):
    session, engine = bundled
    agent = _user(session, "agent1")
    instance = engine.start(session, "complaint", INTAKE, actor=agent, now=T0)
    (task,) = _open(session, instance.id)
    assert task.assignee_id == agent.id  # the agent who took the call keeps the first reply
    engine.complete_task(session, task.id, {"resolution": "answer_now", "first_reply": "已解释"},
                         actor=agent, now=T0)
    session.commit()
    assert instance.status == "completed"


def test_concurrent_step_on_stale_row_is_a_conflict(bundled):
    session, engine = bundled
    from sqlalchemy.orm import Session


    agent = _user(session, "agent1")
    instance = engine.start(session, "complaint", INTAKE, actor=agent, now=T0)
    session.commit()
    (task,) = _open(session, instance.id)
    version, task_id, agent_id, instance_id = instance.lock_version, task.id, agent.id, instance.id
    session.commit()  # on SQLite a transaction holds the write lock: end ours
    # Worker A read the case; then worker B advanced it (bumping the row version).
    worker_a = Session(session.get_bind(), expire_on_commit=False)
    stale_task = worker_a.get(HumanTask, task_id)
    assert stale_task.instance.lock_version == version
    actor_a = worker_a.get(type(agent), agent_id)
    worker_a.commit()
    with session.get_bind().begin() as conn:
        conn.execute(ProcessInstance.__table__.update().where(ProcessInstance.id == instance_id)
                     .values(lock_version=ProcessInstance.lock_version + 1))
    with pytest.raises(Conflict):
        engine.complete_task(worker_a, task_id, {"resolution": "answer_now", "first_reply": "x"},
                             actor=actor_a, now=T0)
    worker_a.rollback()
    worker_a.close()
    # Nothing was half-written: the task is still open and can be done after reloading.
    session.expire_all()
    task = session.get(HumanTask, task_id)
    assert task.status == "open"
    engine.complete_task(session, task.id, {"resolution": "answer_now", "first_reply": "x"},
                         actor=agent, now=T0)
    session.commit()
    assert session.get(ProcessInstance, instance.id).status == "completed"


def test_bad_data_changes_nothing(bundled):
    session, engine = bundled
    agent = _user(session, "agent1")
    instance = engine.start(session, "complaint", INTAKE, actor=agent, now=T0)
    session.commit()
    (task,) = _open(session, instance.id)
    version = instance.lock_version
    with pytest.raises(ValidationFailed) as err:
        engine.complete_task(session, task.id, {"resolution": "dispatch", "first_reply": "x" * 2001},
                             actor=agent, now=T0)
    assert set(err.value.fields) >= {"first_reply", "department", "final_reply_due"}
    session.rollback()
    assert session.get(ProcessInstance, instance.id).lock_version == version
    assert session.get(HumanTask, task.id).status == "open"


def test_other_groups_cannot_start_or_act(bundled):
    session, engine = bundled
    net, agent = _user(session, "net1"), _user(session, "agent1")
    with pytest.raises(Forbidden):
        engine.start(session, "complaint", INTAKE, actor=net, now=T0)
    instance = engine.start(session, "complaint", INTAKE, actor=agent, now=T0)
    (task,) = _open(session, instance.id)
    from engine.errors import NotFound

    with pytest.raises(NotFound):
        engine.complete_task(session, task.id, {"resolution": "answer_now", "first_reply": "x"},
                             actor=net, now=T0)


def test_claimed_task_cannot_be_taken(bundled):
    session, engine = bundled
    agent1, agent2 = _user(session, "agent1"), _user(session, "agent2")
    instance = engine.start(session, "complaint", INTAKE, actor=agent1, now=T0)
    (task,) = _open(session, instance.id)
    assert engine.claim(session, task.id, agent1, T0).assignee_id == agent1.id  # holding: fine
    with pytest.raises(Conflict):
        engine.claim(session, task.id, agent2, T0)
    with pytest.raises(Conflict):
        engine.complete_task(session, task.id, {"resolution": "answer_now", "first_reply": "x"},
                             actor=agent2, now=T0)


def test_bpmn_timer_fires_only_when_due(bundled):
    session, engine = bundled
    xml = (DIAGRAMS / "reminder.bpmn").read_bytes()
    engine.deploy(session, xml, {"note.schema.json": {"type": "object", "properties": {}}}, now=T0)
    agent = _user(session, "agent1")
    instance = engine.start(session, "reminder", {}, actor=agent, now=T0)
    session.commit()
    assert _open(session, instance.id) == []
    assert instance.next_timer_at == T0 + timedelta(hours=1)
    assert engine.fire_due_timers(session, T0 + timedelta(minutes=59)) == 0
    assert _open(session, instance.id) == []
    engine.workflows.clear()  # the timer must also fire from the stored state
    assert engine.fire_due_timers(session, T0 + timedelta(minutes=61)) == 1
    session.expire_all()
    (task,) = _open(session, instance.id)
    assert task.name == "call_back"
    assert session.get(ProcessInstance, instance.id).next_timer_at is None
    assert engine.fire_due_timers(session, T0 + timedelta(hours=5)) == 0  # never twice


def test_suspend_needs_reason_and_blocks_completion(bundled):
    session, engine = bundled
    agent = _user(session, "agent1")
    instance = engine.start(session, "complaint", INTAKE, actor=agent, now=T0)
    (task,) = _open(session, instance.id)
    with pytest.raises(ValidationFailed):
        engine.suspend(session, instance.id, " ", actor=agent, now=T0)
    engine.suspend(session, instance.id, "等待客户提供话单", actor=agent, now=T0)
    with pytest.raises(Conflict):
        engine.complete_task(session, task.id, {"resolution": "answer_now", "first_reply": "x"},
                             actor=agent, now=T0)
    engine.resume(session, instance.id, actor=agent, now=T0 + timedelta(hours=1))
    engine.complete_task(session, task.id, {"resolution": "answer_now", "first_reply": "x"},
                         actor=agent, now=T0 + timedelta(hours=1))
    assert session.get(HumanTask, task.id).status == DONE


def test_group_leader_reassigns_and_others_cannot(bundled):
    session, engine = bundled
    agent1, agent2, leader = (_user(session, n) for n in ("agent1", "agent2", "leader1"))
    net = _user(session, "net1")
    instance = engine.start(session, "complaint", INTAKE, actor=agent1, now=T0)
    (task,) = _open(session, instance.id)
    with pytest.raises(Forbidden):
        engine.assign(session, task.id, agent2, agent1, T0)  # agents do not reassign
    with pytest.raises(ValidationFailed):
        engine.assign(session, task.id, net, leader, T0)  # not a member of the group
    assert engine.assign(session, task.id, agent2, leader, T0).assignee_id == agent2.id
    assert engine.unclaim(session, task.id, leader, T0).assignee_id is None  # the leader takes it back


def test_a_restart_does_not_redeploy_the_bundle_over_an_analysts_version(bundled):
    session, engine = bundled
    from engine import definitions
    from tests.conftest import ROOT

    bundled = definitions.latest_version(session, "complaint")
    xml = bundled.bpmn_xml.replace('value="PT24H"', 'value="PT12H"').encode()
    engine.deploy(session, xml, {}, now=T0, deployed_by="analyst1", summary="12 h")
    session.commit()
    assert engine.deploy_directory(session, ROOT / "bpmn", now=T0) == []
    assert definitions.latest_version(session, "complaint").deployed_by == "analyst1"
