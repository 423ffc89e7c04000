"""Checks for bpmn/complaint.bpmn (投诉闭环) and its forms in bpmn/forms/.

The diagram must be valid BPMN 2.0, carry complete DI so that it renders in bpmn.io / Camunda
Modeler, parse with SpiffWorkflow's SpiffBpmnParser, follow docs/bpmn-conventions.md, and run
through every branch of the complaint loop with sample data that its form schemas accept.
"""

import copy
import itertools
import json
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest
import SpiffWorkflow
from lxml import etree
from SpiffWorkflow.bpmn.util import BpmnEvent
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.spiff.parser.process import VALIDATOR, SpiffBpmnParser
from SpiffWorkflow.spiff.specs.defaults import UserTask
from SpiffWorkflow.spiff.specs.event_definitions import MessageEventDefinition
from SpiffWorkflow.util.task import TaskState

from connectors.base import Operation
from engine.messages import waits_for_message
from engine.service_tasks import ConnectorCalls, begin_step, end_step, make_parser
from processes.complaint_rules import operations as complaint_operations

ROOT = Path(__file__).resolve().parents[2]
BPMN_FILE = ROOT / "bpmn" / "complaint.bpmn"
FORMS_DIR = ROOT / "bpmn" / "forms"
BPMN_XSD = Path(SpiffWorkflow.__file__).parent / "bpmn" / "parser" / "schema" / "BPMN20.xsd"

NS = {
    "bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL",
    "bpmndi": "http://www.omg.org/spec/BPMN/20100524/DI",
    "dc": "http://www.omg.org/spec/DD/20100524/DC",
    "di": "http://www.omg.org/spec/DD/20100524/DI",
    "spiffworkflow": "http://spiffworkflow.org/bpmn/schema/1.0/core",
}
LANES = {"投诉受理组", "责任部门", "质检组", "计费部"}
USER_TASKS = {"triage", "dept_first_reply", "handle", "quality_check", "refund", "reply"}
FLOW_NODE_TAGS = {
    "startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent",
    "task", "userTask", "manualTask", "scriptTask", "serviceTask", "sendTask", "receiveTask",
    "businessRuleTask", "callActivity", "subProcess",
    "exclusiveGateway", "parallelGateway", "inclusiveGateway", "eventBasedGateway", "complexGateway",
}


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

def _tree():
    return etree.parse(str(BPMN_FILE))


def _process(tree):
    return tree.find("bpmn:process", NS)


def _local(el):
    return etree.QName(el).localname


def _flow_nodes(tree):
    return [el for el in _process(tree) if isinstance(el.tag, str) and _local(el) in FLOW_NODE_TAGS]


def _bounds(shape):
    b = shape.find("dc:Bounds", NS)
    x, y, w, h = (float(b.get(k)) for k in ("x", "y", "width", "height"))
    return x, y, x + w, y + h


def _shapes(tree):
    return {s.get("bpmnElement"): s for s in tree.iterfind(".//bpmndi:BPMNShape", NS)}


def _edges(tree):
    return {e.get("bpmnElement"): e for e in tree.iterfind(".//bpmndi:BPMNEdge", NS)}


def _waypoints(edge):
    return [(float(w.get("x")), float(w.get("y"))) for w in edge.iterfind("di:waypoint", NS)]


def _on_border(point, box, tol=1.0):
    x, y = point
    x1, y1, x2, y2 = box
    inside = x1 - tol <= x <= x2 + tol and y1 - tol <= y <= y2 + tol
    on_edge = min(abs(x - x1), abs(x - x2), abs(y - y1), abs(y - y2)) <= tol
    return inside and on_edge


def _load_form(filename):
    with open(FORMS_DIR / filename, encoding="utf-8") as fh:
        return json.load(fh)


def _form_validator(filename):
    return jsonschema.Draft202012Validator(
        _load_form(filename), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def _parser():
    parser = make_parser()  # Kefu's: service tasks go through the connector outbox
    parser.add_bpmn_file(str(BPMN_FILE))
    return parser


def _spec():
    return _parser().get_spec("complaint")


def _specs():
    """The process and its sub-processes (the national escalation's event sub-process)."""
    parser = _parser()
    return parser.get_spec("complaint"), parser.get_subprocess_specs("complaint")


def test_stock_spiff_parser_reads_it_too():
    parser = SpiffBpmnParser(validator=VALIDATOR)
    parser.add_bpmn_file(str(BPMN_FILE))
    assert parser.get_spec("complaint").task_specs["notify_accepted"].operation_name == "sms.send"


def _form_of(task_spec):
    return task_spec.extensions["properties"]["formJsonSchemaFilename"]


# ---------------------------------------------------------------------------------------------
# the XML and its diagram
# ---------------------------------------------------------------------------------------------

def test_valid_against_bpmn20_xsd():
    assert BPMN_XSD.is_file(), BPMN_XSD
    schema = etree.XMLSchema(etree.parse(str(BPMN_XSD)))
    tree = _tree()
    assert schema.validate(tree), schema.error_log


def test_process_collaboration_and_lanes():
    tree = _tree()
    process = _process(tree)
    assert process.get("id") == "complaint"
    assert process.get("name") == "投诉闭环"
    assert process.get("isExecutable") == "true"
    assert len(tree.findall("bpmn:process", NS)) == 1

    participants = tree.findall("bpmn:collaboration/bpmn:participant", NS)
    assert len(participants) == 1
    assert participants[0].get("processRef") == "complaint"

    lanes = process.findall("bpmn:laneSet/bpmn:lane", NS)
    assert [lane.get("name") for lane in lanes] == ["投诉受理组", "责任部门", "质检组", "计费部"]

    # every flow node sits in exactly one lane
    node_ids = [n.get("id") for n in _flow_nodes(tree)]
    refs = [r.text for lane in lanes for r in lane.iterfind("bpmn:flowNodeRef", NS)]
    assert sorted(refs) == sorted(node_ids)


def test_gateway_flows_have_names_and_conditions():
    tree = _tree()
    process = _process(tree)
    gateways = {g.get("id") for g in process.iterfind("bpmn:exclusiveGateway", NS)}
    assert gateways == {"gw_resolution", "gw_dept_first", "gw_handled", "gw_quality", "gw_refund",
                        "gw_reply_merge", "gw_survey", "gw_satisfaction"}
    for flow in process.iterfind("bpmn:sequenceFlow", NS):
        source = flow.get("sourceRef")
        outgoing = process.findall(f"bpmn:sequenceFlow[@sourceRef='{source}']", NS)
        if source in gateways and len(outgoing) > 1:
            assert flow.get("name"), f"{flow.get('id')} out of {source} has no label"
            cond = flow.find("bpmn:conditionExpression", NS)
            assert cond is not None and cond.text.strip(), flow.get("id")
            assert cond.get("{http://www.w3.org/2001/XMLSchema-instance}type") == "bpmn:tFormalExpression"


def test_every_element_has_di():
    tree = _tree()
    process = _process(tree)
    shapes = _shapes(tree)
    edges = _edges(tree)

    participant = tree.find("bpmn:collaboration/bpmn:participant", NS).get("id")
    assert participant in shapes
    for lane in process.iterfind("bpmn:laneSet/bpmn:lane", NS):
        assert lane.get("id") in shapes, lane.get("id")
    for node in _flow_nodes(tree):
        assert node.get("id") in shapes, node.get("id")
        if _local(node) == "exclusiveGateway":
            assert shapes[node.get("id")].get("isMarkerVisible") == "true", node.get("id")
    for flow in process.iterfind("bpmn:sequenceFlow", NS):
        assert flow.get("id") in edges, flow.get("id")
        assert len(_waypoints(edges[flow.get("id")])) >= 2, flow.get("id")

    # no DI for things that do not exist
    known = {el.get("id") for el in tree.iter() if isinstance(el.tag, str) and el.get("id")}
    for ref in list(shapes) + list(edges):
        assert ref in known, ref


def test_layout_is_clean():
    tree = _tree()
    process = _process(tree)
    shapes = _shapes(tree)
    edges = _edges(tree)

    pool = _bounds(shapes[tree.find("bpmn:collaboration/bpmn:participant", NS).get("id")])
    lane_boxes = {}
    for lane in process.iterfind("bpmn:laneSet/bpmn:lane", NS):
        box = _bounds(shapes[lane.get("id")])
        assert pool[0] <= box[0] and box[2] <= pool[2] and pool[1] <= box[1] and box[3] <= pool[3]
        for ref in lane.iterfind("bpmn:flowNodeRef", NS):
            lane_boxes[ref.text] = box
    lanes = sorted(set(lane_boxes.values()), key=lambda b: b[1])
    for upper, lower in itertools.pairwise(lanes):
        assert upper[3] == lower[1], "lanes must be stacked without gaps or overlap"

    # every node inside its lane; no two nodes overlap
    nodes = [n.get("id") for n in _flow_nodes(tree)]
    boxes = {n: _bounds(shapes[n]) for n in nodes}
    for n, (x1, y1, x2, y2) in boxes.items():
        lx1, ly1, lx2, ly2 = lane_boxes[n]
        assert lx1 < x1 and x2 < lx2 and ly1 < y1 and y2 < ly2, f"{n} sticks out of its lane"
    for i, a in enumerate(nodes):
        for b in nodes[i + 1:]:
            ax1, ay1, ax2, ay2 = boxes[a]
            bx1, by1, bx2, by2 = boxes[b]
            assert ax2 <= bx1 or bx2 <= ax1 or ay2 <= by1 or by2 <= ay1, f"{a} overlaps {b}"

    # edges are orthogonal and start/end on their nodes' borders
    for flow in process.iterfind("bpmn:sequenceFlow", NS):
        points = _waypoints(edges[flow.get("id")])
        for (x1, y1), (x2, y2) in itertools.pairwise(points):
            assert x1 == x2 or y1 == y2, f"{flow.get('id')} has a diagonal segment"
        assert _on_border(points[0], boxes[flow.get("sourceRef")]), flow.get("id")
        assert _on_border(points[-1], boxes[flow.get("targetRef")]), flow.get("id")


# ---------------------------------------------------------------------------------------------
# SpiffWorkflow view of the diagram
# ---------------------------------------------------------------------------------------------

def test_spiff_parses_user_tasks_lanes_and_forms():
    spec = _spec()
    user_tasks = {s.bpmn_id: s for s in spec.task_specs.values() if isinstance(s, UserTask)}
    assert set(user_tasks) == USER_TASKS
    for bpmn_id, task_spec in user_tasks.items():
        assert task_spec.lane in LANES, (bpmn_id, task_spec.lane)
        assert task_spec.documentation, bpmn_id
        form = FORMS_DIR / _form_of(task_spec)
        assert form.is_file(), form
        jsonschema.Draft202012Validator.check_schema(_load_form(form.name))

    assert user_tasks["triage"].lane == "投诉受理组"
    assert user_tasks["handle"].lane == "责任部门"
    assert user_tasks["dept_first_reply"].lane == "责任部门"
    assert user_tasks["quality_check"].lane == "质检组"
    assert user_tasks["refund"].lane == "计费部"
    assert user_tasks["reply"].lane == "投诉受理组"


def test_sla_properties():
    spec = _spec()
    props = {name: s.extensions.get("properties", {}) for name, s in spec.task_specs.items()
             if hasattr(s, "extensions")}
    assert props["start"] == {
        "formJsonSchemaFilename": "complaint_intake.schema.json",
        "kefu.reference_prefix": "TS",
        "kefu.sla.duration": "P3D",
        "kefu.sla.calendar": "workdays",
        "kefu.sla.warn": "0.8",
        "kefu.sla.escalations": "1.0:leader,1.5:manager",
    }
    assert props["triage"]["kefu.sla.duration"] == "PT2H"
    assert props["triage"]["kefu.sla.calendar"] == "24x7"
    assert props["handle"]["kefu.group_var"] == "department"
    assert props["handle"]["kefu.sla.duration"] == "PT24H"
    assert props["handle"]["kefu.sla.due_var"] == "final_reply_due"
    # the department's first-reply deadline runs a clock of its own, escalating like the others
    assert props["dept_first_reply"]["kefu.group_var"] == "department"
    assert props["dept_first_reply"]["kefu.sla.due_var"] == "first_reply_due"
    assert props["dept_first_reply"]["kefu.sla.escalations"] == "1.0:leader,1.5:manager"
    assert props["quality_check"]["kefu.sla.duration"] == "PT4H"
    assert props["refund"]["kefu.sla.duration"] == "PT24H"
    assert props["reply"]["kefu.sla.duration"] == "PT4H"
    for name in USER_TASKS | {"start"}:
        p = props[name]
        assert p.get("kefu.sla.calendar", "24x7") in {"24x7", "workdays"}
        assert 0 < float(p.get("kefu.sla.warn", "0.8")) < 1


# ---------------------------------------------------------------------------------------------
# forms
# ---------------------------------------------------------------------------------------------

FORMS = sorted(p.name for p in FORMS_DIR.glob("complaint_*.schema.json"))


def test_all_seven_forms_exist():
    assert FORMS == sorted([
        "complaint_intake.schema.json", "complaint_dept_first_reply.schema.json", "complaint_handle.schema.json", "complaint_quality.schema.json", "complaint_refund.schema.json",
        "complaint_reply.schema.json", "complaint_triage.schema.json",
    ])


@pytest.mark.parametrize("filename", FORMS)
def test_form_follows_conventions(filename):
    schema = _load_form(filename)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert schema["title"] and schema["x-title-en"]
    assert set(schema["required"]) <= set(schema["properties"])
    for name, prop in schema["properties"].items():
        assert prop.get("title") and prop.get("x-title-en"), f"{filename}:{name}"
        if prop.get("type") == "string":
            assert isinstance(prop.get("maxLength"), int), f"{filename}:{name} has no maxLength"
        for choice in prop.get("oneOf", []):
            assert set(choice) == {"const", "title", "x-title-en"}, f"{filename}:{name}"


# ---------------------------------------------------------------------------------------------
# running the process
# ---------------------------------------------------------------------------------------------

TRIAGE_ANSWER = {
    "resolution": "answer_now",
    "first_reply": "已为您核实：本月套餐外流量费用系国际漫游产生，明细已短信发送。",
    "satisfaction": "satisfied",
}
TRIAGE_DISPATCH = {
    "resolution": "dispatch",
    "first_reply": "您的问题已派单至网络部，我们将在24小时内给您最终答复。",
    "department": "network",
    "first_reply_due": "2026-11-23T12:00:00+08:00",
    "final_reply_due": "2026-11-24T10:00:00+08:00",
    "work_order_note": "客户反映小区晚间信号差，已多次投诉。",
}
HANDLE_NO_REFUND = {
    "handling_result": "已调整基站参数，客户所在小区信号恢复正常。",
    "cause": "network_fault",
    "refund_due": False,
    "handler_phone": "0571-88880000",
}
HANDLE_REFUND = {
    "handling_result": "核实为计费系统重复扣费，同意退还。",
    "cause": "billing_error",
    "refund_due": True,
    "refund_amount": 58.5,
}
QC_REJECT = {"qc_result": "reject", "qc_reason": "处理结果未说明故障原因，请补充。"}
QC_ACCEPT = {"qc_result": "accept"}
REFUND_DONE = {"refund_reference": "RF20240506000123", "refund_done_amount": 58.5}
REPLY_SATISFIED = {
    "final_reply": "您反映的问题已处理完毕，感谢您的耐心。",
    "reply_method": "phone",
    "satisfaction": "satisfied",
}
REPLY_BASIC = {
    "final_reply": "重复扣费已退还至您的账户。",
    "reply_method": "sms",
    "satisfaction": "basic",
    "customer_comment": "希望以后不要再出现。",
}
REPLY_UNSATISFIED = {
    "final_reply": "退费已完成。",
    "reply_method": "phone",
    "satisfaction": "unsatisfied",
    "customer_comment": "退费金额不对，还少了一个月。",
}


INTAKE = {"customer_phone": "13800000001", "contact_phone": "13800000001", "reference": "TS20261123000001"}
SMS_OP = Operation("sms.send", "发送短信", lambda params, call: {}, required=("to",))
VISIT_OP = Operation("callback.request", "发起回访/回叫", lambda params, call: {}, required=("phone",))
OPERATIONS = {"sms.send": SMS_OP, "callback.request": VISIT_OP,
              **{op.name: op for op in complaint_operations(None, None)}}
DEPT_FIRST_REPLY = {"dept_first_reply": "已电话联系客户，技术人员明天上门测试信号。"}


def _steps(wf):
    """Run engine steps the way Kefu does: texts become outbox requests, kept on ``wf.sent``;
    the inline dispatch check is the product's own (processes/complaint_rules.py)."""
    calls = ConnectorCalls(OPERATIONS, datetime(2026, 11, 23, tzinfo=UTC))
    token = begin_step(calls)
    try:
        wf.do_engine_steps()
    finally:
        end_step(token)
    wf.sent.extend((r.element_id, r.params) for r in calls.requests)


def _start():
    wf = BpmnWorkflow(*_specs())
    wf.sent = []
    for task in wf.get_tasks(state=TaskState.READY):
        task.data.update(INTAKE)
    _steps(wf)
    return wf


def _complete(wf, bpmn_id, data):
    ready = wf.get_tasks(state=TaskState.READY, manual=True)
    assert [t.task_spec.bpmn_id for t in ready] == [bpmn_id]
    task = ready[0]
    # the sample data must pass the task's own form
    errors = list(_form_validator(_form_of(task.task_spec)).iter_errors(data))
    assert not errors, [e.message for e in errors]
    task.data.update(copy.deepcopy(data))
    task.run()
    _steps(wf)


def _finished_at(wf):
    return {
        t.task_spec.bpmn_id
        for t in wf.get_tasks(state=TaskState.COMPLETED)
        if t.task_spec.bpmn_id in {"end_answered", "end_closed"}
    }


def test_answer_at_once():
    wf = _start()
    _complete(wf, "triage", TRIAGE_ANSWER)
    assert wf.is_completed()
    assert _finished_at(wf) == {"end_answered"}
    assert [e for e, _ in wf.sent] == ["notify_accepted", "notify_first_reply"]
    assert wf.sent[0][1] == {"to": "13800000001", "template": "complaint_accepted",
                             "context": {"reference": "TS20261123000001", "first_reply_hours": 2}}


def test_closure_without_known_satisfaction_asks_by_sms_and_waits_for_the_reply():
    wf = _start()
    _complete(wf, "triage", TRIAGE_DISPATCH)
    _complete(wf, "dept_first_reply", DEPT_FIRST_REPLY)
    _complete(wf, "handle", HANDLE_NO_REFUND)
    _complete(wf, "quality_check", QC_ACCEPT)
    _complete(wf, "reply", {k: v for k, v in REPLY_SATISFIED.items() if k != "satisfaction"})
    assert wf.sent[-1][0] == "notify_survey" and not wf.is_completed()
    assert waits_for_message(wf, "sms_reply")
    wf.send_event(BpmnEvent(MessageEventDefinition("sms_reply"), payload={"choice": "3", "text": "3 不满意"}))
    _steps(wf)
    # 不满意 → back to the department
    assert [t.task_spec.bpmn_id for t in wf.get_tasks(state=TaskState.READY, manual=True)] == ["handle"]


def test_dispatch_qc_reject_then_accept_no_refund():
    wf = _start()
    _complete(wf, "triage", TRIAGE_DISPATCH)
    _complete(wf, "dept_first_reply", DEPT_FIRST_REPLY)
    _complete(wf, "handle", HANDLE_NO_REFUND)
    _complete(wf, "quality_check", QC_REJECT)
    _complete(wf, "handle", {**HANDLE_NO_REFUND, "handling_result": "补充：故障原因为基站板卡老化，已更换。"})
    _complete(wf, "quality_check", QC_ACCEPT)
    # no refund: straight to the reply
    _complete(wf, "reply", REPLY_SATISFIED)
    assert wf.is_completed()
    assert _finished_at(wf) == {"end_closed"}
    assert not wf.get_tasks(spec_name="refund", state=TaskState.COMPLETED)


def test_dispatch_refund_unsatisfied_rework():
    wf = _start()
    _complete(wf, "triage", {**TRIAGE_DISPATCH, "department": "billing"})
    _complete(wf, "dept_first_reply", DEPT_FIRST_REPLY)
    _complete(wf, "handle", HANDLE_REFUND)
    _complete(wf, "quality_check", QC_ACCEPT)
    _complete(wf, "refund", REFUND_DONE)
    _complete(wf, "reply", REPLY_UNSATISFIED)
    assert not wf.is_completed()
    # rework: back to the department, this time with a second refund
    _complete(wf, "handle", {**HANDLE_REFUND, "refund_amount": 29.0})
    _complete(wf, "quality_check", QC_ACCEPT)
    _complete(wf, "refund", {"refund_reference": "RF20240507000456", "refund_done_amount": 29})
    _complete(wf, "reply", REPLY_BASIC)
    assert wf.is_completed()
    assert _finished_at(wf) == {"end_closed"}
    assert len(wf.get_tasks(spec_name="refund", state=TaskState.COMPLETED)) == 2
    # the case data at the end holds the latest answers
    assert wf.data["satisfaction"] == "basic"
    assert wf.data["refund_done_amount"] == 29


def test_rework_without_refund_second_time():
    wf = _start()
    _complete(wf, "triage", TRIAGE_DISPATCH)
    _complete(wf, "dept_first_reply", DEPT_FIRST_REPLY)
    _complete(wf, "handle", HANDLE_REFUND)
    _complete(wf, "quality_check", QC_ACCEPT)
    _complete(wf, "refund", REFUND_DONE)
    _complete(wf, "reply", REPLY_UNSATISFIED)
    # the second pass needs no refund: the earlier refund_due=True must not leak through
    _complete(wf, "handle", HANDLE_NO_REFUND)
    _complete(wf, "quality_check", QC_ACCEPT)
    _complete(wf, "reply", REPLY_SATISFIED)
    assert wf.is_completed()


def test_dispatch_without_first_reply_deadline_goes_straight_to_the_department():
    wf = _start()
    _complete(wf, "triage", {k: v for k, v in TRIAGE_DISPATCH.items() if k != "first_reply_due"})
    assert [t.task_spec.bpmn_id for t in wf.get_tasks(state=TaskState.READY, manual=True)] == ["handle"]


def test_a_past_or_disordered_deadline_refuses_the_dispatch():
    from engine.errors import ValidationFailed

    for bad, field in (({"first_reply_due": "2026-11-23T07:00:00+08:00"}, "first_reply_due"),
                       ({"final_reply_due": "2026-11-22T10:00:00+08:00"}, "final_reply_due"),
                       ({"first_reply_due": "2026-11-25T10:00:00+08:00"}, "first_reply_due")):
        wf = _start()
        with pytest.raises(ValidationFailed) as refused:
            _complete(wf, "triage", {**TRIAGE_DISPATCH, **bad})
        assert list(refused.value.fields) == [field]


def test_pass_on_to_a_second_department_keeps_the_history():
    wf = _start()
    _complete(wf, "triage", TRIAGE_DISPATCH)
    _complete(wf, "dept_first_reply", DEPT_FIRST_REPLY)
    _complete(wf, "handle", {"handle_outcome": "pass_on", "handling_result": "基站正常，疑为计费问题。",
                             "next_department": "billing", "pass_on_reason": "网络侧无故障"})
    ready = wf.get_tasks(state=TaskState.READY, manual=True)
    assert [t.task_spec.bpmn_id for t in ready] == ["handle"]
    assert ready[0].data["department"] == "billing"
    assert ready[0].data["passed_on"] == [{"from": "network", "to": "billing", "reason": "网络侧无故障",
                                           "result": "基站正常，疑为计费问题。"}]
    # the second department handles it: on to the quality check, not passed on again
    _complete(wf, "handle", HANDLE_NO_REFUND)
    _complete(wf, "quality_check", QC_ACCEPT)
    _complete(wf, "reply", REPLY_SATISFIED)
    assert wf.is_completed() and len(wf.data["passed_on"]) == 1


def test_answer_at_once_records_the_satisfaction():
    wf = _start()
    _complete(wf, "triage", {**TRIAGE_ANSWER, "satisfaction": "basic", "customer_comment": "还行"})
    assert wf.is_completed() and wf.data["satisfaction"] == "basic"


def _to_return_visit():
    wf = _start()
    _complete(wf, "triage", TRIAGE_DISPATCH)
    _complete(wf, "dept_first_reply", DEPT_FIRST_REPLY)
    _complete(wf, "handle", HANDLE_NO_REFUND)
    _complete(wf, "quality_check", QC_ACCEPT)
    _complete(wf, "reply", {k: v for k, v in REPLY_SATISFIED.items() if k != "satisfaction"})
    # 48 hours without an SMS answer: a return visit is booked and its result awaited
    from datetime import timedelta

    from engine.clock import frozen_at

    with frozen_at(datetime.now(UTC) + timedelta(hours=49)):
        wf.refresh_timers()
        _steps(wf)
    assert wf.sent[-1][0] == "request_return_visit"
    assert waits_for_message(wf, "return_visit") and not wf.is_completed()
    return wf


def test_unsatisfied_on_the_return_visit_reopens_the_case():
    wf = _to_return_visit()
    wf.send_event(BpmnEvent(MessageEventDefinition("return_visit"),
                            payload={"satisfaction": "unsatisfied", "comment": "信号还是差"}))
    _steps(wf)
    ready = wf.get_tasks(state=TaskState.READY, manual=True)
    assert [t.task_spec.bpmn_id for t in ready] == ["handle"]
    assert ready[0].data["satisfaction_source"] == "return_visit"
    # the second pass closes on a satisfied reply; the old visit result does not leak
    _complete(wf, "handle", HANDLE_NO_REFUND)
    _complete(wf, "quality_check", QC_ACCEPT)
    _complete(wf, "reply", REPLY_SATISFIED)
    assert wf.is_completed() and wf.data["satisfaction"] == "satisfied"


def test_satisfied_on_the_return_visit_closes_it():
    wf = _to_return_visit()
    wf.send_event(BpmnEvent(MessageEventDefinition("return_visit"), payload={"satisfaction": "satisfied"}))
    _steps(wf)
    assert wf.is_completed() and _finished_at(wf) == {"end_closed"}


# ---------------------------------------------------------------------------------------------
# bad data the forms must reject
# ---------------------------------------------------------------------------------------------

BAD = [
    ("complaint_triage.schema.json", {k: v for k, v in TRIAGE_DISPATCH.items() if k != "department"}),
    ("complaint_triage.schema.json", {k: v for k, v in TRIAGE_DISPATCH.items() if k != "final_reply_due"}),
    ("complaint_triage.schema.json", {**TRIAGE_ANSWER, "first_reply": "长" * 2001}),
    ("complaint_triage.schema.json", {**TRIAGE_ANSWER, "resolution": "ignore"}),
    ("complaint_triage.schema.json", {**TRIAGE_ANSWER, "unexpected": "x"}),
    ("complaint_triage.schema.json", {"resolution": "answer_now"}),
    ("complaint_triage.schema.json", {**TRIAGE_ANSWER, "satisfaction": "happy"}),
    ("complaint_triage.schema.json", {**TRIAGE_DISPATCH, "satisfaction": "satisfied"}),
    ("complaint_handle.schema.json", {"handle_outcome": "pass_on", "handling_result": "转出"}),
    ("complaint_handle.schema.json", {k: v for k, v in HANDLE_NO_REFUND.items() if k != "cause"}),
    ("complaint_dept_first_reply.schema.json", {}),
    ("complaint_handle.schema.json", {k: v for k, v in HANDLE_REFUND.items() if k != "refund_amount"}),
    ("complaint_handle.schema.json", {**HANDLE_REFUND, "refund_amount": 0}),
    ("complaint_handle.schema.json", {**HANDLE_REFUND, "refund_amount": 100000.01}),
    ("complaint_handle.schema.json", {**HANDLE_NO_REFUND, "refund_due": "yes"}),
    ("complaint_handle.schema.json", {**HANDLE_NO_REFUND, "handling_result": "x" * 4001}),
    ("complaint_handle.schema.json", {**HANDLE_NO_REFUND, "handler_phone": "1" * 33}),
    ("complaint_quality.schema.json", {"qc_result": "reject"}),
    ("complaint_quality.schema.json", {"qc_result": "reject", "qc_reason": "差"}),
    ("complaint_refund.schema.json", {"refund_reference": "RF1"}),
    ("complaint_refund.schema.json", {**REFUND_DONE, "refund_done_amount": -1}),
    ("complaint_refund.schema.json", {**REFUND_DONE, "refund_reference": "R" * 65}),
    ("complaint_reply.schema.json", {**REPLY_SATISFIED, "reply_method": "fax"}),
    ("complaint_reply.schema.json", {k: v for k, v in REPLY_SATISFIED.items() if k != "final_reply"}),
]


@pytest.mark.parametrize(("filename", "data"), BAD)
def test_forms_reject_bad_data(filename, data):
    assert not _form_validator(filename).is_valid(data)


def test_forms_accept_optional_fields_left_out():
    assert _form_validator("complaint_quality.schema.json").is_valid({"qc_result": "accept"})
    assert _form_validator("complaint_handle.schema.json").is_valid(
        {"handling_result": "已处理", "cause": "other", "refund_due": False}
    )
    assert _form_validator("complaint_triage.schema.json").is_valid(TRIAGE_ANSWER)


def test_the_national_escalation_is_an_event_sub_process_waiting_for_the_answer():
    """上报全国中心 (processes/national.py): the message ``national_escalation`` starts a non-interrupting
    event sub-process beside the complaint; its wait 等待全国中心答复 catches ``national_answer`` by the
    escalation's serial number under a time limit declared here; the complaint closes only when
    both its own loop and the wait are done."""
    process = _process(_tree())
    sub = process.find("bpmn:subProcess[@id='national_wait']", NS)
    assert sub is not None and sub.get("triggeredByEvent") == "true"
    start = sub.find("bpmn:startEvent", NS)
    assert start.get("isInterrupting") == "false"
    subs = _specs()[1]
    wait = next(s for sp in subs.values() for s in sp.task_specs.values() if getattr(s, "bpmn_id", "") == "wait_national")
    assert wait.bpmn_name == "等待全国中心答复" and wait.event_definition.name == "national_answer"
    props = wait.extensions["properties"]
    assert props["kefu.correlation"] == "national_serial_no"
    assert (props["kefu.sla.duration"], props["kefu.sla.calendar"]) == ("P3D", "24x7")

    wf = _start()
    wf.send_event(BpmnEvent(MessageEventDefinition("national_escalation"), payload={"serial_no": "NC0000000101"}))
    _steps(wf)
    assert waits_for_message(wf, "national_answer")
    _complete(wf, "triage", TRIAGE_ANSWER)
    assert _finished_at(wf) == {"end_answered"} and not wf.is_completed()  # waits for the centre
    wf.send_event(BpmnEvent(MessageEventDefinition("national_answer"), payload={"result": "已协调"}))
    _steps(wf)
    assert wf.is_completed() and not waits_for_message(wf, "national_answer")
