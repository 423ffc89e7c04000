"""The complaint work order's carrier features on the engine as the product builds it (``bundled``):
the department's first-reply deadline runs a clock that escalates, a past deadline refuses the
dispatch, a department passes the order on to the next one with the history kept, an answer at
once records the satisfaction, and groups hand out new steps by their rule (系统分配)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from engine.assignment import AutoAssignment, TaskAutoAssignment
from engine.errors import ValidationFailed
from engine.models import AuditEvent, instance_events, open_tasks_of_instance
from engine.people import Group, User, user_by_name
from engine.runtime import Engine
from slas.clocks import SlaListener
from slas.models import Escalation
from slas.policies import check_properties
from slas.scanner import scan
from tests.conftest import INTAKE, ROOT, T0


def _iso(delta: timedelta) -> str:
    return (T0 + delta).isoformat()


DISPATCH = {"resolution": "dispatch", "first_reply": "已派网络部处理", "department": "network",
            "first_reply_due": _iso(timedelta(hours=2)), "final_reply_due": _iso(timedelta(hours=24))}
FIRST_REPLY = {"dept_first_reply": "已联系客户，明天上门测试。"}
HANDLED = {"handling_result": "已调整基站参数。", "cause": "network_fault", "refund_due": False}


def _start(session, engine):
    agent = user_by_name(session, "agent1")
    instance = engine.start(session, "complaint", INTAKE, actor=agent, now=T0)
    (triage,) = open_tasks_of_instance(session, instance.id)
    return agent, instance, triage


def _only_open(session, instance_id):
    (task,) = open_tasks_of_instance(session, instance_id)
    return task


def test_department_first_reply_deadline_runs_a_clock_that_escalates(bundled):
    session, engine = bundled
    agent, instance, triage = _start(session, engine)
    engine.complete_task(session, triage.id, DISPATCH, actor=agent, now=T0)
    session.commit()
    first = _only_open(session, instance.id)
    assert (first.name, first.due_at) == ("dept_first_reply", T0 + timedelta(hours=2))
    assert first.group_id == session.scalar(select(Group.id).where(Group.code == "network"))
    assert scan(session, T0 + timedelta(minutes=119)).escalations == []
    raised = scan(session, T0 + timedelta(hours=2, minutes=1)).escalations
    assert [(e.task_id, e.level, e.target) for e in raised] == [(first.id, 1, "leader")]
    # the department replies: its alert clears and the handling step opens on the final deadline
    engine.complete_task(session, first.id, FIRST_REPLY, actor=user_by_name(session, "net1"),
                         now=T0 + timedelta(hours=3))
    session.commit()
    handle = _only_open(session, instance.id)
    assert (handle.name, handle.due_at) == ("handle", T0 + timedelta(hours=24))
    assert session.scalars(select(Escalation).where(Escalation.task_id == first.id)).one().cleared_at


@pytest.mark.parametrize(("change", "field", "code"), [
    ({"first_reply_due": _iso(-timedelta(minutes=5))}, "first_reply_due", "deadline_past"),
    ({"final_reply_due": _iso(-timedelta(days=1))}, "final_reply_due", "deadline_past"),
    ({"first_reply_due": _iso(timedelta(hours=30))}, "first_reply_due", "deadline_order"),
])
def test_a_past_deadline_refuses_the_dispatch(bundled, change, field, code):
    session, engine = bundled
    agent, instance, triage = _start(session, engine)
    session.commit()
    with pytest.raises(ValidationFailed) as refused:
        engine.complete_task(session, triage.id, {**DISPATCH, **change}, actor=agent, now=T0)
    session.rollback()
    assert refused.value.codes == {field: {"code": code, "params": {}}}
    # nothing of the refused step was written: the first reply is still to be done
    assert _only_open(session, instance.id).id == triage.id


def test_pass_on_to_the_next_department_keeps_the_history(bundled):
    session, engine = bundled
    agent, instance, triage = _start(session, engine)
    net1, bill1 = user_by_name(session, "net1"), user_by_name(session, "bill1")
    engine.complete_task(session, triage.id, DISPATCH, actor=agent, now=T0)
    engine.complete_task(session, _only_open(session, instance.id).id, FIRST_REPLY, actor=net1, now=T0)
    handle = _only_open(session, instance.id)
    engine.claim(session, handle.id, net1, T0)
    engine.complete_task(session, handle.id, {"handle_outcome": "pass_on", "handling_result": "网络正常",
                                              "next_department": "billing", "pass_on_reason": "疑为计费问题"},
                         actor=net1, now=T0 + timedelta(hours=1))
    session.commit()
    second = _only_open(session, instance.id)
    billing = session.scalar(select(Group.id).where(Group.code == "billing"))
    assert (second.name, second.group_id, second.assignee_id) == ("handle", billing, None)
    data = engine.task_data(session, second)
    assert data["department"] == "billing"
    assert data["passed_on"] == [{"from": "network", "to": "billing", "reason": "疑为计费问题", "result": "网络正常"}]
    # passing it on to the department that has it is refused on the field, nothing written
    session.commit()
    with pytest.raises(ValidationFailed) as refused:
        engine.complete_task(session, second.id, {"handle_outcome": "pass_on", "handling_result": "转回",
                                                  "next_department": "billing", "pass_on_reason": "x"},
                             actor=bill1, now=T0 + timedelta(hours=2))
    session.rollback()
    assert refused.value.codes == {"next_department": {"code": "same_department", "params": {}}}
    assert _only_open(session, instance.id).id == second.id
    engine.complete_task(session, second.id, HANDLED, actor=bill1, now=T0 + timedelta(hours=2))
    session.commit()
    assert _only_open(session, instance.id).name == "quality_check"
    done = [(e.actor, e.data.get("handle_outcome")) for e in instance_events(session, instance.id)
            if e.kind == "task_completed" and e.message == "部门处理"]
    assert done == [("net1", "pass_on"), ("bill1", None)]


def test_answer_at_once_records_the_satisfaction(bundled):
    session, engine = bundled
    agent, instance, triage = _start(session, engine)
    engine.complete_task(session, triage.id, {"resolution": "answer_now", "first_reply": "已解释",
                                              "satisfaction": "basic", "customer_comment": "还行"},
                         actor=agent, now=T0)
    session.commit()
    assert instance.status == "completed"
    data = engine.workflow_data(session, instance)
    assert (data["satisfaction"], data["customer_comment"]) == ("basic", "还行")


# -- automatic assignment -----------------------------------------------------------------------

@pytest.fixture
def assigning(bundled, operations_catalog):
    """The bundled engine with the automatic assignment installed as the product does, and a
    billing department of three handlers (one inactive)."""
    session, _engine = bundled
    engine = Engine(listeners=[AutoAssignment(), SlaListener()], checks=[check_properties],
                    operations=operations_catalog)
    engine.deploy_directory(session, ROOT / "bpmn", now=T0)
    billing = session.scalars(select(Group).where(Group.code == "billing")).one()
    for name, active in (("bill2", True), ("bill3", False)):
        user = User(username=name, display_name=name, roles="handler", active=active, created_at=T0)
        user.set_password("x")
        user.groups = [billing]
        session.add(user)
    session.commit()
    return session, engine, billing


def _dispatch_to_billing(session, engine, n):
    agent = user_by_name(session, "agent1")
    tasks = []
    for i in range(n):
        instance = engine.start(session, "complaint", INTAKE, actor=agent, now=T0 + timedelta(minutes=i))
        (triage,) = open_tasks_of_instance(session, instance.id)
        straight = {k: v for k, v in DISPATCH.items() if k != "first_reply_due"}  # straight to 部门处理
        engine.complete_task(session, triage.id, {**straight, "department": "billing"},
                             actor=agent, now=T0 + timedelta(minutes=i))
        session.commit()
        tasks.append(_only_open(session, instance.id))
    return tasks


def test_manual_groups_leave_new_steps_to_be_claimed(assigning):
    session, engine, _billing = assigning
    (task,) = _dispatch_to_billing(session, engine, 1)
    assert task.assignee_id is None
    assert session.scalars(select(TaskAutoAssignment)).all() == []


def test_round_robin_takes_active_members_in_turn(assigning):
    session, engine, billing = assigning
    billing.assignment = "round_robin"
    session.commit()
    tasks = _dispatch_to_billing(session, engine, 4)
    names = [session.get(User, t.assignee_id).username for t in tasks]
    assert names == ["bill1", "billlead1", "bill2", "bill1"]  # member ids in order; bill3 is inactive
    event = session.scalars(select(AuditEvent).where(AuditEvent.kind == "task_auto_assigned",
                                                     AuditEvent.task_id == tasks[0].id)).one()
    assert event.data == {"user_id": tasks[0].assignee_id, "mode": "round_robin"}


def test_least_loaded_goes_to_whoever_holds_fewest(assigning):
    session, engine, billing = assigning
    bill1 = user_by_name(session, "bill1")
    (held,) = _dispatch_to_billing(session, engine, 1)  # manual: bill1 claims it
    engine.claim(session, held.id, bill1, T0)
    billing.assignment = "least_loaded"
    session.commit()
    tasks = _dispatch_to_billing(session, engine, 3)
    names = [session.get(User, t.assignee_id).username for t in tasks]
    # bill1 holds one already; then the one given a step longest ago (never, before bill1) goes first
    assert names == ["billlead1", "bill2", "bill1"]


def test_the_leader_can_still_reassign_an_automatic_step(assigning):
    from engine.assignment import auto_assigned_to

    session, engine, billing = assigning
    billing.assignment = "round_robin"
    session.commit()
    (task,) = _dispatch_to_billing(session, engine, 1)
    assert auto_assigned_to(session, [task.id]) == {task.id: task.assignee_id}
    bill2 = user_by_name(session, "bill2")
    engine.assign(session, task.id, bill2, user_by_name(session, "billlead1"), T0 + timedelta(hours=1))
    session.commit()
    assert task.assignee_id == bill2.id != auto_assigned_to(session, [task.id])[task.id]


# -- running cases move to the new diagram -------------------------------------------------------

def test_cases_on_the_diagram_before_the_work_order_features_move_to_it(bundled):
    """Cases waiting in the department or for the customer's SMS under the diagram as shipped before
    (tests/engine/diagrams/complaint_before_work_orders.bpmn) move to the current one and go on."""
    import json

    from engine import migration

    session, engine = bundled
    forms = {p.name: json.loads(p.read_text("utf-8")) for p in (ROOT / "bpmn" / "forms").glob("*.json")}
    old = (ROOT / "tests" / "engine" / "diagrams" / "complaint_before_work_orders.bpmn").read_bytes()
    new = (ROOT / "bpmn" / "complaint.bpmn").read_bytes()
    engine.deploy(session, old, forms, now=T0)
    session.commit()
    agent, at_handle, triage = _start(session, engine)
    engine.complete_task(session, triage.id, DISPATCH, actor=agent, now=T0)  # the old one had no first reply
    agent, at_survey, triage = _start(session, engine)
    net1, leader = user_by_name(session, "net1"), user_by_name(session, "leader1")
    engine.complete_task(session, triage.id, DISPATCH, actor=agent, now=T0)
    for user, data in ((net1, HANDLED), (leader, {"qc_result": "accept"}),
                       (agent, {"final_reply": "已处理", "reply_method": "phone"})):
        engine.complete_task(session, _only_open(session, at_survey.id).id, data, actor=user, now=T0)
    session.commit()
    assert _only_open(session, at_handle.id).name == "handle" and not open_tasks_of_instance(session, at_survey.id)
    latest = engine.deploy(session, new, forms, now=T0 + timedelta(hours=1))
    session.commit()
    admin = user_by_name(session, "admin")
    for instance in (at_handle, at_survey):
        plan = migration.migrate(engine, session, instance.id, actor=admin, now=T0 + timedelta(hours=1))
        assert plan.allowed and plan.to_version == latest.version, plan.reason
    session.commit()
    engine.workflows.clear()
    # the department can now pass the order on; the unanswered survey books a visit and awaits it
    engine.complete_task(session, _only_open(session, at_handle.id).id,
                         {"handle_outcome": "pass_on", "handling_result": "非本部门", "next_department": "sales",
                          "pass_on_reason": "营业问题"}, actor=net1, now=T0 + timedelta(hours=2))
    engine.fire_due_timers(session, T0 + timedelta(hours=49))
    session.commit()
    assert _only_open(session, at_handle.id).group_id == session.scalar(select(Group.id).where(Group.code == "sales"))
    session.expire_all()
    assert session.get(type(at_survey), at_survey.id).status == "running"
    from processes.complaint_rules import waits_for_visit

    assert waits_for_visit(session, session.get(type(at_survey), at_survey.id))


# -- upgraded complaints (越级投诉) ----------------------------------------------------------------

@pytest.fixture
def upgrading(bundled, operations_catalog):
    from slas.upgrades import UpgradeListener

    session, _engine = bundled
    engine = Engine(listeners=[SlaListener(), UpgradeListener()], checks=[check_properties],
                    operations=operations_catalog)
    engine.deploy_directory(session, ROOT / "bpmn", now=T0)
    session.commit()
    return session, engine


def test_a_complaint_upgraded_at_intake_runs_on_the_stricter_limits(upgrading):
    from engine.outbox import ConnectorJob
    from slas.models import UpgradedCase

    session, engine = upgrading
    agent = user_by_name(session, "agent1")
    instance = engine.start(session, "complaint", {**INTAKE, "upgrade_source": "hotline_10015"}, actor=agent, now=T0)
    session.commit()
    triage = _only_open(session, instance.id)
    assert triage.due_at == T0 + timedelta(hours=1)  # not 2 hours: declared on the diagram
    row = session.get(UpgradedCase, instance.id)
    manager = user_by_name(session, "manager1")
    assert (row.source, row.supervisor_id, row.flagged_by) == ("hotline_10015", manager.id, None)
    (text,) = session.scalars(select(ConnectorJob).where(ConnectorJob.key == f"upgraded-{instance.id}")).all()
    assert (text.params["to"], text.params["template"]) == (manager.phone, "complaint_upgraded")
    # the leader hears at half time, the manager at the limit
    levels = [(e.level, e.target) for e in scan(session, T0 + timedelta(minutes=31)).escalations]
    assert levels == [(1, "leader")]
    assert [(e.level, e.target) for e in scan(session, T0 + timedelta(minutes=61)).escalations] == [(2, "manager")]


def test_flagged_later_the_next_steps_are_stricter(upgrading):
    from slas import upgrades

    session, engine = upgrading
    agent, instance, triage = _start(session, engine)
    assert triage.due_at == T0 + timedelta(hours=2)
    upgrades.flag(session, instance, "ministry", actor=user_by_name(session, "leader1"), now=T0, note="工信部转来")
    with pytest.raises(Exception, match="already upgraded"):
        upgrades.flag(session, instance, "ministry", actor=user_by_name(session, "leader1"), now=T0)
    straight = {k: v for k, v in DISPATCH.items() if k != "first_reply_due"}
    engine.complete_task(session, triage.id, {**straight, "final_reply_due": _iso(timedelta(days=2))},
                         actor=agent, now=T0)
    session.commit()
    handle = _only_open(session, instance.id)
    assert handle.due_at == T0 + timedelta(hours=12)  # the upgraded limit, not 24 hours
    assert [(r.source, i.id) for r, i in upgrades.upgraded_cases(session)] == [("ministry", instance.id)]
    with pytest.raises(ValidationFailed):
        upgrades.flag(session, _start(session, engine)[1], "somewhere", actor=None, now=T0)
