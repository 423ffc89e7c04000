"""Moving running cases to a newer definition version: preview, refusal with reason, apply."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from engine import migration
from engine.errors import Conflict
from engine.models import ProcessInstance, open_tasks_of_instance
from engine.people import user_by_name
from tests.conftest import INTAKE, ROOT, T0

DIAGRAMS = Path(__file__).parent / "diagrams"
COMPLAINT = (ROOT / "bpmn" / "complaint.bpmn").read_text("utf-8")
FORMS = {"note.schema.json": {"type": "object", "properties": {}}}
TRIAGE = {"resolution": "dispatch", "first_reply": "已派单", "department": "network",
          "final_reply_due": "2026-11-30T09:00:00+08:00"}


def _deploy(session, engine, xml: str, forms=None, at=T0):
    definition = engine.deploy(session, xml.encode(), forms or {}, now=at, deployed_by="analyst1",
                               summary="test")
    session.commit()
    return definition


def _at_handle(session, engine):
    agent = user_by_name(session, "agent1")
    instance = engine.start(session, "complaint", INTAKE, actor=agent, now=T0)
    session.commit()
    (triage,) = open_tasks_of_instance(session, instance.id)
    engine.complete_task(session, triage.id, TRIAGE, actor=agent, now=T0 + timedelta(minutes=5))
    session.commit()
    return instance


def _handle_limit(xml: str, limit: str) -> str:
    """The complaint with another time limit on the department's step."""
    start = xml.index('<bpmn:userTask id="handle"')
    end = xml.index("</bpmn:userTask>", start)
    block = xml[start:end].replace('name="kefu.sla.duration" value="PT24H"', f'name="kefu.sla.duration" value="{limit}"')
    return xml[:start] + block + xml[end:]


def test_preview_and_move_keep_the_open_step(bundled):
    session, engine = bundled
    instance = _at_handle(session, engine)
    (handle,) = open_tasks_of_instance(session, instance.id)
    due = handle.due_at
    _deploy(session, engine, _handle_limit(COMPLAINT, "PT12H"))
    plan = migration.preview(engine, session, instance)
    assert plan.allowed and (plan.from_version, plan.to_version) == (1, 2)
    assert plan.waiting == [{"element_id": "handle", "name": "部门处理"}]
    assert [(c.element_id, c.change, c.fields) for c in plan.changes] == [
        ("handle", "changed", ["kefu.sla.duration: PT24H → PT12H"])]

    now = T0 + timedelta(hours=1)
    migration.migrate(engine, session, instance.id, actor=user_by_name(session, "admin"), now=now,
                      lock_version=plan.lock_version)
    session.commit()
    engine.workflows.clear()
    session.expire_all()
    instance = session.get(ProcessInstance, instance.id)
    assert instance.definition.version == 2
    (row,) = open_tasks_of_instance(session, instance.id)
    assert (row.id, row.task_guid, row.due_at) == (handle.id, handle.task_guid, due)  # same step, same clock
    # The case goes on to its end on the new version, reloading between steps.
    net, leader, agent = (user_by_name(session, u) for u in ("net1", "leader1", "agent1"))
    for user, data in ((net, {"handling_result": "已修复", "cause": "network_fault", "refund_due": False}),
                       (leader, {"qc_result": "accept"}),
                       (agent, {"final_reply": "已修复", "reply_method": "phone", "satisfaction": "satisfied"})):
        engine.workflows.clear()
        session.expire_all()
        (task,) = open_tasks_of_instance(session, instance.id)
        engine.complete_task(session, task.id, data, actor=user, now=now)
        session.commit()
    assert session.get(ProcessInstance, instance.id).status == "completed"
    assert migration.preview(engine, session, instance).code == "not_running"


def test_refused_when_the_waiting_step_is_gone(bundled):
    session, engine = bundled
    xml = (DIAGRAMS / "reminder.bpmn").read_text("utf-8")
    _deploy(session, engine, xml, FORMS)
    instance = engine.start(session, "reminder", {}, actor=None, now=T0)
    session.commit()
    # Version 2 calls back at once: the timer the case waits on is gone.
    start = xml.index('<bpmn:intermediateCatchEvent id="wait"')
    end = xml.index("</bpmn:intermediateCatchEvent>", start) + len("</bpmn:intermediateCatchEvent>")
    xml = (xml[:start] + xml[end:]).replace("<bpmn:flowNodeRef>wait</bpmn:flowNodeRef>", "")
    xml = xml.replace('<bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="wait" />', "")
    xml = xml.replace('sourceRef="wait"', 'sourceRef="start"').replace("<bpmn:outgoing>f1</bpmn:outgoing>",
                                                                    "<bpmn:outgoing>f2</bpmn:outgoing>")
    xml = re.sub(r'<bpmndi:BPMNShape id="wait_di".*?</bpmndi:BPMNShape>', "", xml)
    xml = re.sub(r'<bpmndi:BPMNEdge id="f1_di".*?</bpmndi:BPMNEdge>', "", xml)
    _deploy(session, engine, xml)
    plan = migration.preview(engine, session, instance)
    assert not plan.allowed and plan.code == "missing_waiting" and plan.elements == ["wait"]
    assert "wait" in plan.reason
    with pytest.raises(Conflict):
        migration.migrate(engine, session, instance.id, actor=None, now=T0)
    session.rollback()
    assert session.get(ProcessInstance, instance.id).definition.version == 1


def test_refused_on_the_latest_version_and_after_a_change(bundled):
    session, engine = bundled
    instance = _at_handle(session, engine)
    assert migration.preview(engine, session, instance).code == "up_to_date"
    _deploy(session, engine, COMPLAINT.replace('name="质检"', 'name="质量检查"'))
    plan = migration.preview(engine, session, instance)
    assert plan.allowed and [(c.element_id, c.fields) for c in plan.changes] == [("quality_check", ["name"])]
    with pytest.raises(Conflict):
        migration.migrate(engine, session, instance.id, actor=None, now=T0, lock_version=plan.lock_version - 1)


def test_waiting_timer_keeps_its_due_time(bundled):
    session, engine = bundled
    xml = (DIAGRAMS / "reminder.bpmn").read_text("utf-8")
    _deploy(session, engine, xml, FORMS)
    instance = engine.start(session, "reminder", {}, actor=None, now=T0)
    session.commit()
    due = instance.next_timer_at
    _deploy(session, engine, xml.replace('"PT1H"', '"PT5H"').replace('name="回访客户"', 'name="回访"'))
    migration.migrate(engine, session, instance.id, actor=None, now=T0 + timedelta(minutes=10))
    session.commit()
    session.expire_all()
    instance = session.get(ProcessInstance, instance.id)
    assert instance.definition.version == 2 and instance.next_timer_at == due
    assert engine.fire_due_timers(session, T0 + timedelta(minutes=61)) == 1
    (task,) = open_tasks_of_instance(session, instance.id)
    assert task.title == "回访"  # the new version's step


def test_diagram_states_follow_the_case(bundled):
    session, engine = bundled
    instance = _at_handle(session, engine)
    states = migration.diagram_states(engine, session, instance)
    assert states["active"] == ["handle"]
    assert {"start", "triage", "gw_resolution"} <= set(states["completed"])
    assert ["gw_resolution", "check_dispatch"] in states["flows"] and ["gw_dept_first", "handle"] in states["flows"]
