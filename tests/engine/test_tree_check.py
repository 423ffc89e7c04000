"""Long loops: finished history is pruned from the task tree as a case runs (engine/task_tree.py),
so a script loop or a user-task loop of 1,000 passes completes, saved and reloaded at every step,
with a state that does not grow; and should the tree still outgrow SpiffWorkflow's iterator (no
pruning), the step fails instead of a false completion (SpiffWorkflow 3.2 answers is_completed()
true at pass ~333)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engine import task_tree
from engine.errors import InstanceFailed
from engine.models import ProcessInstance, open_tasks_of_instance
from engine.people import user_by_name
from tests.conftest import T0


def _loop(passes: int) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="http://x">
  <bpmn:process id="looping" name="Looping" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:scriptTask id="init"><bpmn:script>n = 0</bpmn:script></bpmn:scriptTask>
    <bpmn:scriptTask id="step"><bpmn:script>n = n + 1</bpmn:script></bpmn:scriptTask>
    <bpmn:exclusiveGateway id="again" default="back" />
    <bpmn:endEvent id="end" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="init" />
    <bpmn:sequenceFlow id="f2" sourceRef="init" targetRef="step" />
    <bpmn:sequenceFlow id="f3" sourceRef="step" targetRef="again" />
    <bpmn:sequenceFlow id="done" sourceRef="again" targetRef="end">
      <bpmn:conditionExpression>n &gt;= {passes}</bpmn:conditionExpression></bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="back" sourceRef="again" targetRef="step" />
  </bpmn:process>
</bpmn:definitions>""".encode()


USER_LOOP = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="u" targetNamespace="http://x">
  <bpmn:process id="user_loop" name="User loop" isExecutable="true">
    <bpmn:laneSet id="lanes"><bpmn:lane id="lane" name="投诉受理组">
      <bpmn:flowNodeRef>start</bpmn:flowNodeRef><bpmn:flowNodeRef>init</bpmn:flowNodeRef>
      <bpmn:flowNodeRef>call</bpmn:flowNodeRef><bpmn:flowNodeRef>count</bpmn:flowNodeRef>
      <bpmn:flowNodeRef>again</bpmn:flowNodeRef><bpmn:flowNodeRef>end</bpmn:flowNodeRef>
    </bpmn:lane></bpmn:laneSet>
    <bpmn:startEvent id="start" />
    <bpmn:scriptTask id="init"><bpmn:script>n = 0</bpmn:script></bpmn:scriptTask>
    <bpmn:userTask id="call" name="Call again">
      <bpmn:extensionElements><spiffworkflow:properties>
        <spiffworkflow:property name="formJsonSchemaFilename" value="note.schema.json" />
      </spiffworkflow:properties></bpmn:extensionElements>
    </bpmn:userTask>
    <bpmn:scriptTask id="count"><bpmn:script>n = n + 1</bpmn:script></bpmn:scriptTask>
    <bpmn:exclusiveGateway id="again" default="back" />
    <bpmn:endEvent id="end" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="init" />
    <bpmn:sequenceFlow id="f2" sourceRef="init" targetRef="call" />
    <bpmn:sequenceFlow id="f3" sourceRef="call" targetRef="count" />
    <bpmn:sequenceFlow id="f4" sourceRef="count" targetRef="again" />
    <bpmn:sequenceFlow id="done" sourceRef="again" targetRef="end">
      <bpmn:conditionExpression>n &gt;= 1000</bpmn:conditionExpression></bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="back" sourceRef="again" targetRef="call" />
  </bpmn:process>
</bpmn:definitions>""".encode()


def test_a_short_loop_completes(store):
    session, engine = store
    engine.deploy(session, _loop(50), {}, now=T0)
    instance = engine.start(session, "looping", {}, actor=user_by_name(session, "admin"), now=T0)
    session.commit()
    assert instance.status == "completed" and engine.workflow_data(session, instance)["n"] == 50


def test_a_script_loop_of_a_thousand_passes_completes(store):
    session, engine = store
    engine.deploy(session, _loop(1000), {}, now=T0)
    instance = engine.start(session, "looping", {}, actor=user_by_name(session, "admin"), now=T0)
    session.commit()
    assert instance.status == "completed" and engine.workflow_data(session, instance)["n"] == 1000


@pytest.mark.slow
def test_a_user_task_loop_of_a_thousand_passes_reloaded_every_step_stays_flat(store):
    session, engine = store
    engine.deploy(session, USER_LOOP, {"note.schema.json": {"type": "object", "properties": {}}}, now=T0)
    admin = user_by_name(session, "agent1")  # a member of the lane's group
    instance = engine.start(session, "user_loop", {}, actor=admin, now=T0)
    session.commit()
    sizes = {}
    for done in range(1, 1001):
        engine.workflows.clear()  # every step from the stored state
        session.expire_all()
        (task,) = open_tasks_of_instance(session, instance.id)
        engine.complete_task(session, task.id, {}, actor=admin, now=T0)
        session.commit()
        if done in (50, 500, 999):
            sizes[done] = len(session.get(ProcessInstance, instance.id).state)
    instance = session.get(ProcessInstance, instance.id)
    assert instance.status == "completed"
    assert engine.workflow_data(session, instance)["n"] == 1000
    # The stored state does not grow with the passes (it did, by ~1 KB a pass, before pruning).
    assert sizes[999] < sizes[50] * 1.5, sizes


def test_without_pruning_a_loop_beyond_the_iterator_depth_is_never_recorded_as_completed(store, monkeypatch):
    monkeypatch.setattr(task_tree, "PRUNE_DEPTH", 10**9)
    session, engine = store
    engine.deploy(session, _loop(600), {}, now=T0)
    session.commit()
    with pytest.raises(InstanceFailed) as caught:
        engine.start(session, "looping", {}, actor=user_by_name(session, "admin"), now=T0)
    assert "cannot advance" in str(caught.value)
    session.rollback()
    assert session.scalar(select(ProcessInstance.id).where(ProcessInstance.process_key == "looping")) is None


def test_pruning_is_detectable_so_rework_reads_the_inbox_rows(store):
    session, engine = store
    admin = user_by_name(session, "admin")
    for passes, pruned in ((10, False), (200, True)):
        engine.deploy(session, _loop(passes), {}, now=T0)
        instance = engine.start(session, "looping", {}, actor=admin, now=T0)
        session.commit()
        assert task_tree.was_pruned(engine._peek_workflow(session, instance)) is pruned
