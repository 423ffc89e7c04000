"""The outbound callback and return visit (呼出服务 / 回访): preview dialling through the outbox and
the real AMI client to the loopback AMI peer — busy then answered on retry, three unanswered
attempts then the SMS fallback, the calling window, VIP first, the return visit's satisfaction on
the complaint — and ``POST /api/v1/callbacks``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from engine import outbox
from engine.clock import frozen_at
from engine.models import (
    HumanTask,
    ProcessInstance,
    inbox_query,
    instance_events,
    open_tasks_of_instance,
)
from engine.people import user_by_name
from engine.workflow_cache import WorkflowCache
from processes.outbound_calls import CallingHours, start_callback
from processes.telephony import Call, ScreenPop
from processes.tick import tick
from tests.conftest import INTAKE, T0

PHONE = "13900000001"
NIGHT = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)        # Monday 22:00 in Beijing
NEXT_MORNING = datetime(2026, 11, 24, 0, 0, tzinfo=UTC)  # Tuesday 08:00 in Beijing
SOON = timedelta(seconds=1)  # Spiff fires a timer once its time has passed (not at the instant)




@pytest.fixture(autouse=True)
def _reload_every_step(app):
    """Every step of this diagram starts from its stored state (no cached workflow), so that
    whatever the state does not keep is found here (save→reload at every step)."""
    app.extensions["kefu_engine"].workflows = WorkflowCache(0)


@pytest.fixture
def cb(pbx_app, ctx):
    return ctx


def _start(session, engine, phone=PHONE, now=T0, **kwargs):
    kwargs.setdefault("reason", "遇忙回叫")
    kwargs.setdefault("kind", "ivr_callback")
    kwargs.setdefault("priority", 0)
    instance, created = start_callback(session, engine, phone=phone, now=now, **kwargs)
    session.commit()
    assert created
    return instance


def _task(session, instance, name):
    tasks = [t for t in open_tasks_of_instance(session, instance.id) if t.name == name]
    assert tasks, f"no open task {name}: {[t.name for t in open_tasks_of_instance(session, instance.id)]}"
    return tasks[0]


def _dial(session, engine, instance, username="agent1", now=T0):
    """The agent presses 拨打, and the worker places the call (the job runs and is delivered)."""
    task = _task(session, instance, "dial")
    engine.complete_task(session, task.id, {}, actor=user_by_name(session, username), now=now)
    session.commit()
    tick(session, engine, now)
    session.expire_all()


def _attempts(session, instance):
    return [e for e in instance_events(session, instance.id) if e.kind == "callback_attempt"]


def _calls(session, instance):
    return list(session.scalars(select(Call).where(Call.instance_id == instance.id).order_by(Call.id)))


def test_busy_then_answered_on_retry_pops_the_task_on_the_dialling_agent(cb, ami_peer):
    session, engine = cb
    ami_peer.script_originate(PHONE, "busy", "answer")
    instance = _start(session, engine)
    dial = _task(session, instance, "dial")
    assert dial.assignee_id is None  # the IVR's request waits in the agents' group inbox
    assert dial.due_at.replace(tzinfo=UTC) == T0 + timedelta(minutes=30)

    _dial(session, engine, instance)
    (first,) = _attempts(session, instance)
    assert first.data["outcome"] == "busy" and "第1/3次" in first.message and first.actor == "agent1"
    assert open_tasks_of_instance(session, instance.id) == []  # waiting to retry
    assert session.get(ProcessInstance, instance.id).next_timer_at.replace(tzinfo=UTC) == T0 + timedelta(minutes=10)
    originate = ami_peer.actions("Originate")[0]
    assert "8001" in originate["channel"] and originate["exten"] == PHONE  # agent first, then customer

    tick(session, engine, T0 + timedelta(minutes=9))
    assert open_tasks_of_instance(session, instance.id) == []
    later = T0 + timedelta(minutes=10) + SOON
    tick(session, engine, later)
    retry = _task(session, instance, "dial")
    assert retry.assignee_id == user_by_name(session, "agent1").id  # the same agent retries
    _dial(session, engine, instance, now=later)

    assert [e.data["outcome"] for e in _attempts(session, instance)] == ["busy", "answered"]
    assert [(c.direction, c.source, c.outcome, c.extension) for c in _calls(session, instance)] == [
        ("outbound", "callback", "busy", "8001"), ("outbound", "callback", "answered", "8001")]
    result = _task(session, instance, "record_result")
    agent1 = user_by_name(session, "agent1")
    assert result.assignee_id == agent1.id
    pops = list(session.scalars(select(ScreenPop).where(ScreenPop.kind == "task")))
    assert [(p.user_id, p.url) for p in pops] == [(agent1.id, f"/cases/{instance.id}")]
    assert instance.reference in pops[0].title

    engine.complete_task(session, result.id, {"call_result": "resolved", "result_note": "已解答"},
                         actor=agent1, now=later + timedelta(minutes=3))
    session.commit()
    instance = session.get(ProcessInstance, instance.id)
    assert instance.status == "completed"
    assert [e.message for e in instance_events(session, instance.id) if e.kind == "completed"] == ["回叫完成"]
    assert len(ami_peer.actions("Originate")) == 2


def test_three_unanswered_attempts_then_an_sms_and_the_case_closes_unreached(cb, ami_peer):
    session, engine = cb
    ami_peer.script_originate(PHONE, "noanswer")
    instance = _start(session, engine)
    now = T0
    for attempt in range(1, 4):
        _dial(session, engine, instance, now=now)
        assert len(_attempts(session, instance)) == attempt
        now += timedelta(minutes=10) + SOON
        tick(session, engine, now)
    session.expire_all()
    instance = session.get(ProcessInstance, instance.id)
    assert instance.status == "completed" and open_tasks_of_instance(session, instance.id) == []
    assert [e.message for e in instance_events(session, instance.id) if e.kind == "completed"] == ["未接通关闭"]
    assert [e.data["outcome"] for e in _attempts(session, instance)] == ["no_answer"] * 3
    assert [c.outcome for c in _calls(session, instance)] == ["no_answer"] * 3
    (sms,) = [j for j in outbox.jobs_of_instance(session, instance.id) if j.operation == "sms.send"]
    assert sms.params["to"] == PHONE and sms.params["template"] == "callback_unreached"
    assert len(ami_peer.actions("Originate")) == 3


@pytest.mark.slow
def test_the_unreached_text_reaches_the_customer_through_the_smsc(app, cb, ami_peer, smsc):
    from web.connectors_setup import use_smsc

    session, engine = cb
    use_smsc(app, smsc.url)
    try:
        ami_peer.script_originate(PHONE, "busy")
        instance = engine.start(session, "outbound_callback",
                                {"customer_phone": PHONE, "reason": "遇忙回叫", "kind": "ivr_callback",
                                 "max_attempts": 1}, actor=None, now=T0)
        session.commit()
        _dial(session, engine, instance)
        tick(session, engine, T0)  # the text was queued by the step that got the call's outcome
        (text,) = smsc.wait_for(lambda peer: peer.messages())
        assert text["destination"] == PHONE and "未能联系到您（遇忙回叫）" in text["text"]
    finally:
        app.extensions["kefu_connectors"].close()


def test_a_retry_delay_and_attempt_limit_can_be_set_per_case(cb, ami_peer):
    session, engine = cb
    ami_peer.script_originate(PHONE, "congested")
    # The start form also takes max_attempts / retry_delay (e.g. from the modeler's test start).
    instance = engine.start(session, "outbound_callback",
                            {"customer_phone": PHONE, "reason": "测试", "kind": "ivr_callback",
                             "max_attempts": 1, "retry_delay": "PT5M"}, actor=None, now=T0)
    session.commit()
    _dial(session, engine, instance)
    instance = session.get(ProcessInstance, instance.id)
    assert instance.status == "completed"
    assert [e.message for e in instance_events(session, instance.id) if e.kind == "completed"] == ["未接通关闭"]


def test_outside_the_calling_hours_the_callback_waits_until_the_window_opens(cb, ami_peer):
    session, engine = cb
    instance = _start(session, engine, now=NIGHT)
    assert open_tasks_of_instance(session, instance.id) == []
    assert session.get(ProcessInstance, instance.id).next_timer_at.replace(tzinfo=UTC) == NEXT_MORNING
    tick(session, engine, NEXT_MORNING - timedelta(minutes=1))
    assert open_tasks_of_instance(session, instance.id) == []
    tick(session, engine, NEXT_MORNING + SOON)
    dial = _task(session, instance, "dial")
    assert dial.due_at.replace(tzinfo=UTC) == NEXT_MORNING + SOON + timedelta(minutes=30)
    assert ami_peer.actions("Originate") == []


def test_a_dial_pressed_after_the_window_closed_waits_for_the_next_morning(cb, ami_peer):
    session, engine = cb
    evening = datetime(2026, 11, 23, 12, 50, tzinfo=UTC)  # 20:50 in Beijing
    instance = _start(session, engine, now=evening)
    _dial(session, engine, instance, now=evening + timedelta(minutes=15))  # 21:05: too late to call
    assert ami_peer.actions("Originate") == [] and _attempts(session, instance) == []
    assert open_tasks_of_instance(session, instance.id) == []
    tick(session, engine, NEXT_MORNING + SOON)
    assert _task(session, instance, "dial").assignee_id == user_by_name(session, "agent1").id


def test_vip_callbacks_come_first(cb, billing):
    session, engine = cb
    ordinary = _start(session, engine, phone="13911112222", now=NIGHT)
    vip = _start(session, engine, phone="13800000001", now=NIGHT + timedelta(minutes=20))  # billing: VIP
    data = engine.workflow_data(session, session.get(ProcessInstance, vip.id))
    assert data["vip"] is True and data["priority"] == 5
    assert engine.workflow_data(session, session.get(ProcessInstance, ordinary.id))["vip"] is False

    tick(session, engine, NEXT_MORNING + SOON)  # both wait for 08:00; then the VIP is due first
    agent2 = user_by_name(session, "agent2")
    inbox = [t.instance_id for t in session.scalars(inbox_query(agent2.id, agent2.group_ids, "group"))
             if t.name == "dial"]
    assert inbox == [vip.id, ordinary.id]
    assert _task(session, vip, "dial").vip is True and _task(session, ordinary, "dial").vip is False  # on the row
    assert _task(session, vip, "dial").due_at.replace(tzinfo=UTC) == NEXT_MORNING + SOON + timedelta(minutes=10)


def test_the_originate_job_request_carries_the_cases_priority(cb, billing, monkeypatch):
    from engine import runtime

    session, engine = cb
    steps = []
    real_begin = runtime.begin_step

    def capture(calls):
        steps.append(calls)
        return real_begin(calls)

    monkeypatch.setattr(runtime, "begin_step", capture)
    vip = _start(session, engine, phone="13800000001")
    engine.complete_task(session, _task(session, vip, "dial").id, {}, actor=user_by_name(session, "agent1"),
                         now=T0)
    session.commit()
    (request,) = [r for calls in steps for r in calls.requests if r.operation == "pbx.originate"]
    assert request.priority == 5 and request.params == {"agent_extension": "8001", "phone": "13800000001"}


def test_a_vip_callback_dials_ahead_of_queued_calls(cb, billing):
    session, engine = cb
    vip = _start(session, engine, phone="13800000001")
    task = _task(session, vip, "dial")
    engine.complete_task(session, task.id, {}, actor=user_by_name(session, "agent1"), now=T0)
    session.commit()
    (job,) = [j for j in outbox.jobs_of_instance(session, vip.id) if j.operation == "pbx.originate"]
    assert job.priority == 5


def test_a_return_visit_after_a_complaint_closed_records_the_satisfaction_on_it(cb, ami_peer):
    session, engine = cb
    agent1, net, leader = (user_by_name(session, n) for n in ("agent1", "net1", "leader1"))
    complaint = engine.start(session, "complaint", INTAKE, actor=agent1, now=T0)
    session.commit()
    for name, user, data in [
        ("triage", agent1, {"resolution": "dispatch", "first_reply": "已派单", "department": "network",
                            "final_reply_due": "2026-11-25T09:00:00+08:00"}),
        ("handle", net, {"handling_result": "已优化基站", "cause": "network_fault", "refund_due": False}),
        ("quality_check", leader, {"qc_result": "accept"}),
        ("reply", agent1, {"final_reply": "基站已修复", "reply_method": "sms"}),  # satisfaction unknown
    ]:
        (task,) = open_tasks_of_instance(session, complaint.id)
        assert task.name == name
        engine.complete_task(session, task.id, data, actor=user, now=T0)
        session.commit()
    later = T0 + timedelta(hours=48) + SOON  # no SMS reply within 48 h → a visit is booked
    tick(session, engine, later)
    session.expire_all()
    complaint = session.get(ProcessInstance, complaint.id)
    assert complaint.status == "running"  # waiting for the visit's result (不满意 would reopen it)
    (visit,) = session.scalars(select(ProcessInstance).where(ProcessInstance.process_key == "outbound_callback"))
    data = engine.workflow_data(session, visit)
    assert (data["kind"], data["origin_id"], data["customer_phone"]) == ("return_visit", complaint.id,
                                                                          INTAKE["contact_phone"])
    assert [e.kind for e in instance_events(session, complaint.id)].count("callback_requested") == 1
    tick(session, engine, later)  # a second run of the job would not book a second visit
    assert session.scalar(select(ProcessInstance.id).where(
        ProcessInstance.process_key == "outbound_callback", ProcessInstance.id != visit.id)) is None

    _dial(session, engine, visit, username="agent2", now=later)
    record = _task(session, visit, "record_visit")
    agent2 = user_by_name(session, "agent2")
    assert record.assignee_id == agent2.id
    engine.complete_task(session, record.id, {"satisfaction": "basic", "visit_comment": "速度可以更快"},
                         actor=agent2, now=later + timedelta(minutes=5))
    session.commit()
    assert session.get(ProcessInstance, visit.id).status == "completed"
    (event,) = [e for e in instance_events(session, complaint.id) if e.kind == "return_visit"]
    assert event.data["satisfaction"] == "basic" and event.data["callback_reference"] == visit.reference
    assert "基本满意" in event.message and event.actor == "agent2"
    # the result reaches the complaint through the outbox: 基本满意 closes it
    tick(session, engine, later + timedelta(minutes=6))
    session.expire_all()
    complaint = session.get(ProcessInstance, complaint.id)
    assert complaint.status == "completed"
    assert engine.workflow_data(session, complaint)["satisfaction"] == "basic"


def test_an_agent_cannot_dial_someone_elses_extension(cb, ami_peer):
    session, engine = cb
    instance = _start(session, engine)
    task = _task(session, instance, "dial")
    # The dial form refuses unknown fields; the extension comes from the completing agent's profile.
    with pytest.raises(Exception, match="form has errors"):
        engine.complete_task(session, task.id, {"dialer": {"extension": "8002"}},
                             actor=user_by_name(session, "agent1"), now=T0)
    session.rollback()
    _dial(session, engine, instance)
    assert "8001" in ami_peer.actions("Originate")[0]["channel"]


def test_an_agent_without_an_extension_is_told_so_and_nothing_is_dialled(cb, ami_peer):
    from engine.errors import PeerUnavailable

    session, engine = cb
    agent2 = user_by_name(session, "agent2")
    agent2.extension = None
    instance = _start(session, engine)
    with pytest.raises(PeerUnavailable, match="没有登记分机号"):
        engine.complete_task(session, _task(session, instance, "dial").id, {}, actor=agent2, now=T0)
    session.rollback()
    assert _task(session, instance, "dial").assignee_id is None and ami_peer.actions("Originate") == []


# --------------------------------------------------------------------------- the API
def test_api_starts_a_callback_and_is_idempotent_with_a_request_id(client, token, app):
    body = {"phone": "139-0000-0001", "reason": "IVR 等待超时", "request_id": "ivr-call-77"}
    with frozen_at(T0):
        first = client.post("/api/v1/callbacks", json=body, headers=token("agent2"))
        again = client.post("/api/v1/callbacks", json=body, headers=token("agent2"))
        other = client.post("/api/v1/callbacks", json={**body, "phone": "13900000002"}, headers=token("agent2"))
    assert first.status_code == 201, first.get_json()
    assert first.get_json()["reference"].startswith("HJ") and first.get_json()["created"] is True
    assert again.status_code == 201 and again.get_json()["id"] == first.get_json()["id"]
    assert again.get_json()["created"] is False
    assert other.status_code == 409
    from web.extensions import db

    with app.app_context():
        instance = db.session.get(ProcessInstance, first.get_json()["id"])
        assert instance.process_key == "outbound_callback" and instance.customer_phone == "13900000001"
        assert instance.started_by is None  # the agents' group works it, not the requesting account
        (task,) = open_tasks_of_instance(db.session, instance.id)
        assert task.name == "dial" and task.assignee_id is None


@pytest.mark.parametrize("body, field", [
    ({"reason": "x"}, "phone"),
    ({"phone": "12", "reason": "x"}, "phone"),
    ({"phone": "13900000001"}, "reason"),
    ({"phone": "13900000001", "reason": "x", "priority": 10}, "priority"),
    ({"phone": "13900000001", "reason": "x", "priority": "high"}, "priority"),
    ({"phone": "13900000001", "reason": "x", "kind": "survey"}, "kind"),
    ({"phone": "13900000001", "reason": "x", "kind": "return_visit"}, "case_reference"),
    ({"phone": "13900000001", "reason": "x", "request_id": "a b"}, "request_id"),
])
def test_api_refuses_a_malformed_request(client, token, body, field):
    response = client.post("/api/v1/callbacks", json=body, headers=token("agent1"))
    assert response.status_code == 400
    assert field in response.get_json()["fields"]


def test_api_needs_a_token_and_an_agent_account(client, token):
    body = {"phone": "13900000001", "reason": "x"}
    assert client.post("/api/v1/callbacks", json=body).status_code == 401
    assert client.post("/api/v1/callbacks", json=body, headers=token("analyst1")).status_code == 403


def test_api_links_a_reply_call_to_its_case(client, token, app):
    with frozen_at(T0):
        complaint = client.post("/api/v1/processes/complaint/instances", json={"data": INTAKE},
                                headers=token("agent1")).get_json()
        response = client.post("/api/v1/callbacks", json={
            "phone": "13800000009", "reason": "投诉需电话答复", "kind": "complaint_reply",
            "case_reference": complaint["reference"], "priority": 3}, headers=token("agent1"))
        missing = client.post("/api/v1/callbacks", json={
            "phone": "13800000009", "reason": "x", "case_reference": "TS000"}, headers=token("agent1"))
    assert response.status_code == 201 and missing.status_code == 422
    from web.extensions import db

    with app.app_context():
        events = instance_events(db.session, complaint["id"])
        assert [e.data["callback_id"] for e in events if e.kind == "callback_requested"] == [response.get_json()["id"]]
        data = app.extensions["kefu_engine"].workflow_data(db.session, db.session.get(ProcessInstance,
                                                                                      response.get_json()["id"]))
        assert data["priority"] == 3 and data["origin_reference"] == complaint["reference"]


# --------------------------------------------------------------------------- the window
@pytest.mark.parametrize("local, is_open, opens", [
    ("2026-11-23T07:59", False, "2026-11-23T08:00"),
    ("2026-11-23T08:00", True, "2026-11-23T08:00"),
    ("2026-11-23T20:59", True, "2026-11-23T20:59"),
    ("2026-11-23T21:00", False, "2026-11-24T08:00"),
    ("2026-11-23T23:30", False, "2026-11-24T08:00"),
])
def test_calling_hours_in_beijing_time(local, is_open, opens):
    from engine.clock import LOCAL_TZ

    now = datetime.fromisoformat(local).replace(tzinfo=LOCAL_TZ).astimezone(UTC)
    window = CallingHours.parse("08:00-21:00").window(now)
    assert window["open"] is is_open
    assert datetime.fromisoformat(window["opens_at"]) == datetime.fromisoformat(opens).replace(tzinfo=LOCAL_TZ)


@pytest.mark.parametrize("text", ["", "8-21", "21:00-08:00", "08:00-25:00", "08:60-21:00"])
def test_bad_calling_hours_are_refused(text):
    with pytest.raises(ValueError):
        CallingHours.parse(text)


def test_the_agent_sees_the_dial_task_and_the_case_pages(app, cb):
    session, engine = cb
    instance = _start(session, engine)
    row = session.scalar(select(HumanTask).where(HumanTask.instance_id == instance.id))
    assert row.title == "回叫客户" and instance.title == "遇忙回叫 13900000001"
    client = app.test_client()
    client.post("/login", data={"username": "agent1", "password": "kefu-demo"})
    task_page = client.get(f"/tasks/{row.id}")
    assert task_page.status_code == 200 and "提交即拨打" in task_page.get_data(as_text=True)
    case_page = client.get(f"/cases/{instance.id}")
    assert case_page.status_code == 200 and instance.reference in case_page.get_data(as_text=True)
