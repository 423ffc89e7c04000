"""The national centre's answer as a BPMN message (issue 15): an escalated complaint runs the
diagram's event sub-process 上报全国中心, whose step 等待全国中心答复 waits for ``national_answer``
by the escalation's serial number under the time limit declared on the diagram; the centre's
receipt resumes it (once, late or not, never lost). The wire between two deployments is tested in
tests/web/test_national_escalation.py; here the receipt goes in through the same function the API
calls, against the real engine, diagram and database."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from engine import migration
from engine.errors import Conflict
from engine.messages import MessageWait
from engine.models import AuditEvent, ProcessInstance, open_tasks_of_instance
from engine.outbox import ConnectorJob
from engine.people import user_by_name
from processes import national, roaming
from processes.roaming_partners import Partner, Partners
from slas.models import Escalation, SlaClock
from slas.scanner import scan
from tests.conftest import INTAKE, ROOT, T0

CENTRE = Partner("QG", "全国客服中心", "http://127.0.0.1:9", "secret", national=True)
COMPLAINT = (ROOT / "bpmn" / "complaint.bpmn").read_text("utf-8")
TRIAGE = {"resolution": "dispatch", "first_reply": "已派单", "department": "network",
          "final_reply_due": "2026-11-30T09:00:00+08:00"}


def _partners() -> Partners:
    return Partners("YN", {"QG": CENTRE})


def _at_handle(session, engine):
    agent = user_by_name(session, "agent1")
    instance = engine.start(session, "complaint", INTAKE, actor=agent, now=T0)
    session.commit()
    (triage,) = open_tasks_of_instance(session, instance.id)
    engine.complete_task(session, triage.id, TRIAGE, actor=agent, now=T0 + timedelta(minutes=5))
    session.commit()
    return instance


def _escalate(session, engine, instance, at=T0 + timedelta(minutes=10)):
    row = national.escalate(session, _partners(), instance, engine.workflow_data(session, instance),
                            "涉及多省携号转网，需全国协调", engine=engine, actor=user_by_name(session, "leader1"), now=at)
    session.commit()
    return row


def _receipt(row, result="已协调广东、四川两省，三日内办结。", at=T0 + timedelta(days=1)):
    return {"company_code": "QG", "dispatch_company_code": "YN", "dispatch_serial_no": row.serial_no,
            "responder_name": "全国中心王工", "responder_phone": "010-66258800", "result": result,
            "replied_at": roaming._iso(at)}


def _answer(session, row, at, **kwargs):
    roaming.receive_receipt(session, _partners(), CENTRE, _receipt(row, at=at, **kwargs), at)
    session.commit()


def _waits(session, instance_id):
    return sorted((w.name, w.correlation) for w in session.scalars(
        select(MessageWait).where(MessageWait.instance_id == instance_id)))


def _clock(session, instance_id):
    (clock,) = session.scalars(select(SlaClock).where(SlaClock.instance_id == instance_id,
                                                      SlaClock.title.like(national.WAIT_TITLE + "%")))
    return clock


def _kinds(session, instance_id):
    return [e.kind for e in session.scalars(select(AuditEvent).where(AuditEvent.instance_id == instance_id)
                                            .order_by(AuditEvent.id))]


def _finish_main_flow(session, engine, instance, at):
    for user, data in (("net1", {"handling_result": "已处理", "cause": "network_fault", "refund_due": False}),
                       ("leader1", {"qc_result": "accept"}),
                       ("agent1", {"final_reply": "已处理", "reply_method": "phone", "satisfaction": "satisfied"})):
        (task,) = open_tasks_of_instance(session, instance.id)
        engine.complete_task(session, task.id, data, actor=user_by_name(session, user), now=at)
        session.commit()


def test_an_escalated_complaint_waits_for_the_answer_under_the_diagrams_limit(bundled):
    session, engine = bundled
    instance = _at_handle(session, engine)
    row = _escalate(session, engine, instance)
    escalated_at = T0 + timedelta(minutes=10)

    # The sub-process waits by the escalation's serial number; the complaint's own step goes on.
    assert _waits(session, instance.id) == [("national_answer", row.serial_no)]
    assert "wait_national" in migration.diagram_states(engine, session, instance)["active"]
    assert [t.title for t in open_tasks_of_instance(session, instance.id)] == ["部门处理"]
    # The diagram's limit (P3D, 7×24) runs a clock and is the centre's final-reply deadline.
    clock = _clock(session, instance.id)
    assert (clock.title, clock.state, clock.calendar) == ("等待全国中心答复（全国客服中心）", "running", "24x7")
    assert clock.due_at == escalated_at + timedelta(days=3) == row.final_reply_due.replace(tzinfo=clock.due_at.tzinfo)
    assert row.dispatch["final_reply_due"] == roaming._iso(escalated_at + timedelta(days=3))
    assert row.dispatch["problem"].startswith(national.MARK)
    job = session.scalar(select(ConnectorJob).where(ConnectorJob.id == row.job_id))
    assert job.operation == "roaming.dispatch" and job.params["partner"] == "QG"
    with pytest.raises(Conflict):  # one open escalation per case
        _escalate(session, engine, instance)
    session.rollback()

    # The complaint's own loop ends, but the case stays open until the centre answers.
    _finish_main_flow(session, engine, instance, T0 + timedelta(hours=5))
    assert session.get(ProcessInstance, instance.id).status == "running"
    assert open_tasks_of_instance(session, instance.id) == []

    _answer(session, row, T0 + timedelta(days=1))
    assert _clock(session, instance.id).state == "stopped"  # the centre answered in time
    exchange = roaming.Roaming(_partners(), lambda: engine)
    assert exchange.advance(session, T0 + timedelta(days=1, minutes=1)) == 1
    session.expire_all()
    assert session.get(ProcessInstance, instance.id).status == "completed"
    assert _waits(session, instance.id) == []
    kinds = _kinds(session, instance.id)
    assert kinds.count("national_answered") == 1 and kinds.count("message_received") == 2
    answered = session.scalar(select(AuditEvent).where(AuditEvent.instance_id == instance.id,
                                                       AuditEvent.kind == "national_answered"))
    assert answered.message == "全国客服中心：已协调广东、四川两省，三日内办结。"
    assert answered.data["late"] is False

    # The same receipt again changes nothing and delivers nothing twice.
    _answer(session, row, T0 + timedelta(days=1, hours=1), result="另一个答复")
    assert exchange.advance(session, T0 + timedelta(days=1, hours=2)) == 0
    assert session.get(roaming.RoamingTransfer, row.id).receipt["result"].startswith("已协调")
    assert _kinds(session, instance.id).count("national_answered") == 1


def test_a_late_answer_to_a_suspended_case_waits_until_it_resumes(bundled):
    session, engine = bundled
    instance = _at_handle(session, engine)
    row = _escalate(session, engine, instance)
    leader = user_by_name(session, "leader1")
    engine.suspend(session, instance.id, "客户出差，下周联系", actor=leader, now=T0 + timedelta(hours=1))
    session.commit()

    late = T0 + timedelta(days=4)  # after the three days the diagram gives the centre
    _answer(session, row, late)
    exchange = roaming.Roaming(_partners(), lambda: engine)
    for minutes in (1, 2):  # suspended: kept, not lost, tried again on every tick
        exchange.advance(session, late + timedelta(minutes=minutes))
        session.expire_all()
        assert session.get(roaming.RoamingTransfer, row.id).delivered_at is None
    assert _waits(session, instance.id) == [("national_answer", row.serial_no)]

    engine.resume(session, instance.id, actor=leader, now=late + timedelta(minutes=5))
    session.commit()
    assert exchange.advance(session, late + timedelta(minutes=6)) == 1
    session.expire_all()
    transfer = session.get(roaming.RoamingTransfer, row.id)
    assert transfer.late and transfer.delivered_at is not None
    assert _waits(session, instance.id) == []
    answered = session.scalar(select(AuditEvent).where(AuditEvent.instance_id == instance.id,
                                                       AuditEvent.kind == "national_answered"))
    assert answered.data["late"] is True
    # The answer resumed only the escalation's branch: the department's step is still open.
    assert [t.title for t in open_tasks_of_instance(session, instance.id)] == ["部门处理"]
    assert session.get(ProcessInstance, instance.id).status == "running"
    # Answered, the complaint may go up again: a second run of the sub-process, its own serial.
    again = _escalate(session, engine, session.get(ProcessInstance, instance.id), at=late + timedelta(hours=1))
    assert again.serial_no != row.serial_no
    assert _waits(session, instance.id) == [("national_answer", again.serial_no)]


def _without_national_wait(xml: str) -> str:
    """The complaint as it was before the sub-process (a version running cases may be on)."""
    xml = re.sub(r"\s*<!-- 上报全国中心: .*?</bpmn:subProcess>", "", xml, flags=re.DOTALL)
    xml = re.sub(r"\s*<!-- 上报全国中心 \(event sub-process\).*?(?=\s*</bpmndi:BPMNPlane>)", "", xml, flags=re.DOTALL)
    xml = xml.replace("<bpmn:flowNodeRef>national_wait</bpmn:flowNodeRef>", "")
    return re.sub(r'\s*<bpmn:message id="msg_national_\w+" name="\w+" />', "", xml)


def test_cases_on_the_version_before_move_to_the_wait_and_unmoved_ones_still_get_the_answer(bundled):
    session, engine = bundled
    old = _without_national_wait(COMPLAINT)
    assert "national_wait" not in old and "wait_national" not in old
    engine.deploy(session, old.encode(), {}, now=T0, deployed_by="analyst1", summary="before")
    session.commit()
    moved, kept = _at_handle(session, engine), _at_handle(session, engine)
    assert moved.definition.version == kept.definition.version == 2
    engine.deploy(session, COMPLAINT.encode(), {}, now=T0, deployed_by="analyst1", summary="national wait")
    session.commit()

    plan = migration.preview(engine, session, moved)
    assert plan.allowed, plan.reason
    assert {(c.element_id, c.change) for c in plan.changes} >= {("national_wait", "added")}
    migration.migrate(engine, session, moved.id, actor=user_by_name(session, "admin"), now=T0 + timedelta(minutes=6),
                      lock_version=plan.lock_version)
    session.commit()
    row = _escalate(session, engine, moved)
    assert _waits(session, moved.id) == [("national_answer", row.serial_no)]
    # Past the diagram's three days the wait's clock escalates to the intake group's leader …
    clock = _clock(session, moved.id)
    overdue = T0 + timedelta(minutes=10, days=3, seconds=1)
    raised = [(e.instance_id, e.level, e.target) for e in scan(session, overdue).escalations]
    assert (moved.id, 1, "leader") in raised
    # … and the late answer stops it and clears the alert.
    _answer(session, row, overdue + timedelta(hours=1))
    assert session.get(roaming.RoamingTransfer, row.id).late
    session.expire_all()
    assert _clock(session, moved.id).state == "stopped"
    assert all(e.cleared_at is not None for e in session.scalars(
        select(Escalation).where(Escalation.clock_id == clock.id)))

    # A case left on the old version is escalated all the same; its answer becomes a history line.
    legacy = _escalate(session, engine, kept)
    assert _waits(session, kept.id) == []
    _answer(session, legacy, overdue + timedelta(hours=1))
    # One tick hands both answers over: the moved case's by its wait, the other's as history.
    assert roaming.Roaming(_partners(), lambda: engine).advance(session, overdue + timedelta(hours=2)) == 2
    assert _waits(session, moved.id) == [] and _kinds(session, moved.id).count("national_answered") == 1
    assert _kinds(session, kept.id).count("national_answered") == 1
    assert session.get(roaming.RoamingTransfer, legacy.id).delivered_at is not None
