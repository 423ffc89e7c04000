"""The message correlation index: a case is found by (message, correlation value) with one indexed
query, its rows follow every step, and a catching event may correlate by another variable."""

from __future__ import annotations

from sqlalchemy import select

from engine.messages import MessageWait, waiting_instance
from engine.models import ProcessInstance
from tests.conftest import T0

DIAGRAM = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="pay_defs"
  targetNamespace="http://kefu.example/bpmn">
  <bpmn:message id="msg_paid" name="paid" />
  <bpmn:message id="msg_reply" name="sms_reply" />
  <bpmn:process id="pay_wait" name="等待缴费" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:intermediateCatchEvent id="wait_paid" name="等待缴费">
      <bpmn:extensionElements><spiffworkflow:properties>
        <spiffworkflow:property name="kefu.correlation" value="account_id" />
      </spiffworkflow:properties></bpmn:extensionElements>
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:messageEventDefinition id="wait_paid_def" messageRef="msg_paid">
        <bpmn:extensionElements><spiffworkflow:messageVariable>payment</spiffworkflow:messageVariable>
        </bpmn:extensionElements>
      </bpmn:messageEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:intermediateCatchEvent id="wait_reply" name="等待回复">
      <bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing>
      <bpmn:messageEventDefinition id="wait_reply_def" messageRef="msg_reply">
        <bpmn:extensionElements><spiffworkflow:messageVariable>reply</spiffworkflow:messageVariable>
        </bpmn:extensionElements>
      </bpmn:messageEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:endEvent id="end"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="wait_paid" />
    <bpmn:sequenceFlow id="f2" sourceRef="wait_paid" targetRef="wait_reply" />
    <bpmn:sequenceFlow id="f3" sourceRef="wait_reply" targetRef="end" />
  </bpmn:process>
</bpmn:definitions>
""".encode()


def _waits(session, instance_id):
    return sorted((w.name, w.correlation) for w in session.scalars(
        select(MessageWait).where(MessageWait.instance_id == instance_id)))


def test_waits_are_indexed_per_step_and_route_messages(store):
    session, engine = store
    engine.deploy(session, DIAGRAM, {}, now=T0)
    first = engine.start(session, "pay_wait", {"account_id": "A-1", "customer_phone": "13800000001"},
                         actor=None, now=T0)
    second = engine.start(session, "pay_wait", {"account_id": "A-2", "customer_phone": "13800000001"},
                          actor=None, now=T0)
    session.commit()
    assert _waits(session, first.id) == [("paid", "A-1")]  # by the event's own correlation variable
    assert waiting_instance(session, "paid", "A-2").id == second.id
    assert waiting_instance(session, "paid", "A-3") is None
    assert waiting_instance(session, "sms_reply", "13800000001") is None  # nobody waits for it yet

    engine.deliver_message(session, first.id, "paid", {"amount": 5000}, T0)
    session.commit()
    assert _waits(session, first.id) == [("sms_reply", "13800000001")]  # by default: the customer's phone
    assert engine.waiting_for_message(session, "sms_reply", "13800000001").id == first.id

    engine.deliver_message(session, first.id, "sms_reply", {"text": "1"}, T0)
    session.commit()
    assert session.get(ProcessInstance, first.id).status == "completed"
    assert _waits(session, first.id) == []
    assert waiting_instance(session, "sms_reply", "13800000001") is None


def test_cases_from_before_the_index_are_indexed_by_the_catch_up(store):
    session, engine = store
    engine.deploy(session, DIAGRAM, {}, now=T0)
    instance = engine.start(session, "pay_wait", {"account_id": "A-9"}, actor=None, now=T0)
    session.commit()
    # As a case started before the index existed: no rows, never indexed.
    session.query(MessageWait).delete()
    instance.waiting_on = None
    session.commit()
    assert waiting_instance(session, "paid", "A-9") is None
    assert engine.index_unindexed_waits(session) == 1
    assert waiting_instance(session, "paid", "A-9").id == instance.id
    assert engine.index_unindexed_waits(session) == 0


GATEWAY_DIAGRAM = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="gw_defs"
  targetNamespace="http://kefu.example/bpmn">
  <bpmn:message id="msg_paid" name="paid" />
  <bpmn:message id="msg_reply" name="sms_reply" />
  <bpmn:process id="pay_or_timeout" name="等待缴费或超时" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:eventBasedGateway id="gw" name="等待缴费">
      <bpmn:incoming>f1</bpmn:incoming>
      <bpmn:outgoing>f_timer</bpmn:outgoing><bpmn:outgoing>f_paid</bpmn:outgoing><bpmn:outgoing>f_reply</bpmn:outgoing>
    </bpmn:eventBasedGateway>
    <bpmn:intermediateCatchEvent id="timeout" name="三天未缴">
      <bpmn:incoming>f_timer</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:timerEventDefinition id="timeout_def"><bpmn:timeDuration>"P3D"</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:intermediateCatchEvent id="wait_paid" name="已缴费">
      <bpmn:extensionElements><spiffworkflow:properties>
        <spiffworkflow:property name="kefu.correlation" value="account_id" />
      </spiffworkflow:properties></bpmn:extensionElements>
      <bpmn:incoming>f_paid</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing>
      <bpmn:messageEventDefinition id="wait_paid_def" messageRef="msg_paid">
        <bpmn:extensionElements><spiffworkflow:messageVariable>payment</spiffworkflow:messageVariable>
        </bpmn:extensionElements>
      </bpmn:messageEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:intermediateCatchEvent id="wait_reply" name="客户回复">
      <bpmn:incoming>f_reply</bpmn:incoming><bpmn:outgoing>f4</bpmn:outgoing>
      <bpmn:messageEventDefinition id="wait_reply_def" messageRef="msg_reply">
        <bpmn:extensionElements><spiffworkflow:messageVariable>reply</spiffworkflow:messageVariable>
        </bpmn:extensionElements>
      </bpmn:messageEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:endEvent id="end_timeout"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:endEvent id="end_paid"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
    <bpmn:endEvent id="end_reply"><bpmn:incoming>f4</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="gw" />
    <bpmn:sequenceFlow id="f_timer" sourceRef="gw" targetRef="timeout" />
    <bpmn:sequenceFlow id="f_paid" sourceRef="gw" targetRef="wait_paid" />
    <bpmn:sequenceFlow id="f_reply" sourceRef="gw" targetRef="wait_reply" />
    <bpmn:sequenceFlow id="f2" sourceRef="timeout" targetRef="end_timeout" />
    <bpmn:sequenceFlow id="f3" sourceRef="wait_paid" targetRef="end_paid" />
    <bpmn:sequenceFlow id="f4" sourceRef="wait_reply" targetRef="end_reply" />
  </bpmn:process>
</bpmn:definitions>
""".encode()


def test_a_catching_event_behind_an_event_based_gateway_correlates_by_its_own_variable(store):
    """Spiff waits on the gateway, which carries no properties: the correlation variable must still
    be the catching event's (here ``account_id``), not the default customer phone, or a payment for
    one account would reach the newest case of the same phone."""
    session, engine = store
    engine.deploy(session, GATEWAY_DIAGRAM, {}, now=T0)
    phone = "13800000009"
    first = engine.start(session, "pay_or_timeout", {"account_id": "A-1", "customer_phone": phone},
                         actor=None, now=T0)
    second = engine.start(session, "pay_or_timeout", {"account_id": "A-2", "customer_phone": phone},
                          actor=None, now=T0)
    session.commit()
    # Each message by its own event's variable: the payment by account, the reply by the phone.
    assert _waits(session, first.id) == [("paid", "A-1"), ("sms_reply", phone)]
    assert _waits(session, second.id) == [("paid", "A-2"), ("sms_reply", phone)]
    assert waiting_instance(session, "paid", phone) is None

    target = engine.waiting_for_message(session, "paid", "A-1")
    assert target is not None and target.id == first.id
    engine.deliver_message(session, target.id, "paid", {"amount": 5000}, T0)
    session.commit()
    assert session.get(ProcessInstance, first.id).status == "completed"
    assert session.get(ProcessInstance, second.id).status == "running"  # the other account still waits
    assert waiting_instance(session, "paid", "A-1") is None
    assert waiting_instance(session, "paid", "A-2").id == second.id


def test_the_shipped_diagrams_correlate_their_gated_messages_as_their_events_say(bundled):
    """The shipped diagrams' messages caught behind an event-based gateway, with the variable each
    is routed by: read from the catching event (dunning names customer_phone on each), never from
    the gateway."""
    from SpiffWorkflow.bpmn.specs.mixins.events.intermediate_event import EventBasedGateway

    from engine.messages import _caught_messages
    from engine.models import ProcessDefinition

    session, engine = bundled
    found = set()
    for definition in session.query(ProcessDefinition).all():
        spec, subs, _ = engine.specs.get(session, definition.id)
        for process in (spec, *subs.values()):
            found.update((definition.key, task_spec.bpmn_id, *caught)
                         for task_spec in process.task_specs.values() if isinstance(task_spec, EventBasedGateway)
                         for caught in _caught_messages(task_spec))
    assert found == {
        ("complaint", "gw_wait_reply", "sms_reply", "customer_phone"),
        ("complaint", "gw_wait_visit", "return_visit", "customer_phone"),
        *{("dunning", gw, "dunning_paid", "customer_phone") for gw in (
            "gw_wait_hours", "gw_wait_retry", "gw_wait_recall", "gw_wait_month", "gw_wait_two", "gw_wait_final")},
    }
