"""No false completion: a loop past SpiffWorkflow's iterator depth fails the step instead of being
recorded as a completed case (SpiffWorkflow 3.2 answers is_completed() true at pass ~333)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engine.errors import InstanceFailed
from engine.models import ProcessInstance
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


def test_a_short_loop_completes(store):
    session, engine = store
    engine.deploy(session, _loop(50), {}, now=T0)
    instance = engine.start(session, "looping", {}, actor=user_by_name(session, "admin"), now=T0)
    session.commit()
    assert instance.status == "completed" and engine.workflow_data(session, instance)["n"] == 50


def test_a_loop_beyond_the_iterator_depth_is_never_recorded_as_completed(store):
    session, engine = store
    engine.deploy(session, _loop(600), {}, now=T0)
    session.commit()
    with pytest.raises(InstanceFailed) as caught:
        engine.start(session, "looping", {}, actor=user_by_name(session, "admin"), now=T0)
    assert "cannot advance" in str(caught.value)
    session.rollback()
    assert session.scalar(select(ProcessInstance.id).where(ProcessInstance.process_key == "looping")) is None
