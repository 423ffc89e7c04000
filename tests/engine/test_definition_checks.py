"""Deploy-time checks of a diagram: flow structure (unreachable elements, dead ends), lanes and
forms, time limits, connector operations — each error names its element, nothing is stored."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy import func, select

from engine import definitions
from engine.definitions import flow_errors
from engine.errors import DefinitionInvalid
from engine.models import ProcessDefinition
from slas.policies import check_properties
from tests.conftest import T0

HEAD = ('<?xml version="1.0" encoding="UTF-8"?>\n'
        '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
        'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" '
        'id="defs" targetNamespace="http://kefu.example/bpmn">')
FORM = ('<bpmn:extensionElements><spiffworkflow:properties>'
        '<spiffworkflow:property name="formJsonSchemaFilename" value="note.schema.json" />{extra}'
        '</spiffworkflow:properties></bpmn:extensionElements>')
FORMS = {"note.schema.json": {"type": "object", "properties": {}}}


def diagram(body: str, lanes: str = "") -> bytes:
    return (HEAD + f'<bpmn:process id="checked" name="检查" isExecutable="true">{lanes}{body}'
            "</bpmn:process></bpmn:definitions>").encode()


def flows(*pairs: str) -> str:
    return "".join(f'<bpmn:sequenceFlow id="f_{s}_{t}" sourceRef="{s}" targetRef="{t}" />'
                   for s, t in (p.split(">") for p in pairs))


def ids(errors) -> list[tuple[str | None, str]]:
    return sorted((e["element_id"], e["message"].split(":")[0]) for e in errors)


def test_a_clean_chain_passes():
    xml = diagram('<bpmn:startEvent id="s" /><bpmn:task id="t" /><bpmn:endEvent id="e" />' + flows("s>t", "t>e"))
    assert flow_errors(xml) == []


def test_unreachable_elements_and_dead_ends_are_named():
    xml = diagram('<bpmn:startEvent id="s" /><bpmn:task id="t" /><bpmn:endEvent id="e" />'
                  '<bpmn:task id="island" /><bpmn:task id="stuck" /><bpmn:exclusiveGateway id="g" />'
                  + flows("s>g", "g>t", "g>stuck", "t>e", "island>e"))
    assert ids(flow_errors(xml)) == [("island", "unreachable"), ("stuck", "dead end")]


def test_boundary_events_links_event_subprocesses_and_compensation():
    xml = diagram(
        '<bpmn:startEvent id="s" /><bpmn:userTask id="t" /><bpmn:endEvent id="e" />'
        '<bpmn:boundaryEvent id="late" attachedToRef="t"><bpmn:timerEventDefinition /></bpmn:boundaryEvent>'
        '<bpmn:intermediateThrowEvent id="jump"><bpmn:linkEventDefinition name="L" /></bpmn:intermediateThrowEvent>'
        '<bpmn:intermediateCatchEvent id="land"><bpmn:linkEventDefinition name="L" /></bpmn:intermediateCatchEvent>'
        '<bpmn:endEvent id="e2" />'
        '<bpmn:task id="undo" isForCompensation="true" />'
        '<bpmn:subProcess id="on_error" triggeredByEvent="true">'
        '<bpmn:startEvent id="es"><bpmn:errorEventDefinition /></bpmn:startEvent><bpmn:task id="et" />'
        '<bpmn:endEvent id="ee" />' + flows("es>et") + "</bpmn:subProcess>"
        + flows("s>t", "t>e", "late>jump", "land>e2"))
    # Inside the event subprocess (a scope of its own) its end is cut off: both ends are reported.
    assert ids(flow_errors(xml)) == [("ee", "unreachable"), ("et", "dead end")]


def test_subprocess_inside_is_checked_as_its_own_scope():
    inner = '<bpmn:startEvent id="ss" /><bpmn:task id="st" />' + flows("ss>st")
    xml = diagram(f'<bpmn:startEvent id="s" /><bpmn:subProcess id="sub">{inner}</bpmn:subProcess>'
                  '<bpmn:endEvent id="e" />' + flows("s>sub", "sub>e"))
    assert ids(flow_errors(xml)) == [("st", "dead end")]


LANE = ('<bpmn:laneSet id="ls"><bpmn:lane id="lane" name="{name}"><bpmn:flowNodeRef>s</bpmn:flowNodeRef>'
        '<bpmn:flowNodeRef>t</bpmn:flowNodeRef><bpmn:flowNodeRef>e</bpmn:flowNodeRef></bpmn:lane></bpmn:laneSet>')


def user_task(lane: str | None = "投诉受理组", extra: str = "", form: bool = True) -> bytes:
    task = f'<bpmn:userTask id="t" name="处理">{FORM.format(extra=extra) if form else ""}</bpmn:userTask>'
    body = '<bpmn:startEvent id="s" />' + task + '<bpmn:endEvent id="e" />' + flows("s>t", "t>e")
    return diagram(body, LANE.format(name=lane) if lane else "")


def _deploy(session, xml: bytes, forms=None, operations=None):
    return definitions.deploy(session, xml, FORMS if forms is None else forms, now=T0, deployed_by="analyst1",
                              checks=[check_properties], operations=operations)


def _versions(session) -> int:
    return session.scalar(select(func.count()).select_from(ProcessDefinition).where(ProcessDefinition.key == "checked"))


@pytest.mark.parametrize(("xml", "forms", "expected"), [
    (user_task(lane=None), None, [("t", "user task is not in a lane")]),
    (user_task(lane="不存在的组"), None, [("t", "lane '不存在的组' names no group")]),
    (user_task(form=False), None, [("t", "user task has no form (formJsonSchemaFilename)")]),
    (user_task(), {}, [("t", "form 'note.schema.json' was not supplied")]),
    (user_task(extra='<spiffworkflow:property name="kefu.sla.duration" value="24 hours" />'), None,
     [("t", "time limit: '24 HOURS' is not an ISO-8601 duration such as PT2H or P3D")]),
])
def test_each_rule_names_the_element_and_nothing_is_stored(store, xml, forms, expected):
    session, _engine = store
    with pytest.raises(DefinitionInvalid) as caught:
        _deploy(session, xml, forms)
    assert [(e["element_id"], e["message"]) for e in caught.value.errors] == expected
    assert _versions(session) == 0


def test_a_valid_diagram_deploys_as_version_one_then_two(store):
    session, _engine = store
    first = _deploy(session, user_task(extra='<spiffworkflow:property name="kefu.sla.duration" value="PT2H" />'))
    second = _deploy(session, user_task())  # the form comes from version 1
    assert (first.version, second.version, second.forms) == (1, 2, FORMS)
    assert second.deployed_by == "analyst1"


@dataclass(frozen=True)
class FakeOperation:
    name: str
    required: tuple[str, ...] = ()


def service_task(operation: str, params: dict[str, str]) -> bytes:
    parameters = "".join(f'<spiffworkflow:parameter id="{k}" type="str" value="{v}" />' for k, v in params.items())
    task = (f'<bpmn:serviceTask id="t"><bpmn:extensionElements><spiffworkflow:serviceTaskOperator id="{operation}">'
            f"<spiffworkflow:parameters>{parameters}</spiffworkflow:parameters></spiffworkflow:serviceTaskOperator>"
            "</bpmn:extensionElements></bpmn:serviceTask>")
    return diagram('<bpmn:startEvent id="s" />' + task + '<bpmn:endEvent id="e" />' + flows("s>t", "t>e"))


def test_service_tasks_name_installed_operations_with_their_required_parameters(store):
    session, _engine = store
    operations = {"sms.send": FakeOperation("sms.send", ("to", "text"))}
    with pytest.raises(DefinitionInvalid) as caught:
        _deploy(session, service_task("fax.send", {"to": "phone"}), operations=operations)
    assert [e["element_id"] for e in caught.value.errors] == ["t"] and "fax.send" in caught.value.message
    with pytest.raises(DefinitionInvalid) as caught:
        _deploy(session, service_task("sms.send", {"to": "phone"}), operations=operations)
    assert [e["element_id"] for e in caught.value.errors] == ["t"] and "text" in caught.value.message
    assert _deploy(session, service_task("sms.send", {"to": "phone", "text": "'hi'"}), operations=operations).version == 1


def test_parse_errors_come_first_and_alone(store):
    session, _engine = store
    with pytest.raises(DefinitionInvalid) as caught:
        _deploy(session, b"<bpmn:definitions")
    assert caught.value.errors[0]["element_id"] is None and "well-formed" in caught.value.message
    with pytest.raises(DefinitionInvalid):  # not BPMN 2.0 by the schema: a task with an unknown attribute kind
        _deploy(session, diagram('<bpmn:startEvent id="s" /><bpmn:task id="t" isForCompensation="maybe" />'))
    assert _versions(session) == 0
