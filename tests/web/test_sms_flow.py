"""Texts through the outbox and the real SMPP client to a loopback SMSC (node-smpp): the complaint's
notices, delivery receipts on the history, a customer's SMS reply closing the satisfaction survey,
a refused bind as an incident, and supervisors texted on escalation."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from engine import outbox, peer_events
from engine.models import ProcessInstance, instance_events, open_tasks_of_instance
from engine.people import user_by_name
from processes.tick import tick
from tests.conftest import INTAKE, T0
from web.connectors_setup import start_links, use_smsc


def _poll(session, engine, now, condition, failure):
    """Tick until ``condition()`` holds. The read transaction ends before each pause: on SQLite a
    transaction left open while sleeping holds the write lock, and the SMPP client's callback
    thread, which stores receipts and replies, would starve behind it."""
    for _ in range(200):
        tick(session, engine, now)
        session.expire_all()
        result = condition()
        session.rollback()
        if result:
            return result
        time.sleep(0.05)
    pytest.fail(failure)


def _wait_for_receipt(session, engine, instance_id, now, count=1):
    def received():
        kinds = [e.kind for e in instance_events(session, instance_id)]
        return kinds if kinds.count("smpp_delivered") >= count else None

    return _poll(session, engine, now, received, "no delivery receipt reached the case")


@pytest.fixture
def sms_ctx(app, ctx, smsc):
    use_smsc(app, smsc.url)
    start_links(app)  # as `serve` does: bound before anything is sent, so replies arrive
    yield ctx[0], ctx[1], smsc
    app.extensions["kefu_connectors"].close()


def _walk_to_reply(session, engine, instance, satisfaction=None):
    agent, net, leader = (user_by_name(session, n) for n in ("agent1", "net1", "leader1"))
    steps = [("triage", agent, {"resolution": "dispatch", "first_reply": "已派单网络部", "department": "network",
                                "final_reply_due": "2026-11-25T09:00:00+08:00"}),
             ("handle", net, {"handling_result": "已优化基站", "cause": "network_fault", "refund_due": False}),
             ("quality_check", leader, {"qc_result": "accept"})]
    reply = {"final_reply": "基站已修复", "reply_method": "phone"}
    if satisfaction:
        reply["satisfaction"] = satisfaction
    steps.append(("reply", agent, reply))
    for name, user, data in steps:
        (task,) = open_tasks_of_instance(session, instance.id)
        assert task.name == name
        engine.complete_task(session, task.id, data, actor=user, now=T0)
        session.commit()


def test_complaint_texts_reach_the_smsc_with_receipts_and_the_reply_closes_the_survey(sms_ctx):
    session, engine, smsc = sms_ctx
    instance = engine.start(session, "complaint", INTAKE, actor=user_by_name(session, "agent1"), now=T0)
    session.commit()
    tick(session, engine, T0)
    (accepted,) = smsc.wait_for(lambda p: p.messages())
    assert accepted["destination"] == "13800000009" and instance.reference in accepted["text"]
    assert "投诉已受理" in accepted["text"] and accepted["data_coding"] == 8

    # The SMSC's delivery receipt lands on the case's history.
    _wait_for_receipt(session, engine, instance.id, T0)

    _walk_to_reply(session, engine, instance)  # satisfaction not known → survey by SMS
    tick(session, engine, T0)
    texts = [m["text"] for m in smsc.wait_for(lambda p: len(p.messages()) >= 3 and p.messages())]
    assert "已派单网络部" in texts[1] and "1 满意" in texts[2]

    smsc.send_mo("8613800000009", "10010", "1 满意，谢谢")
    _poll(session, engine, T0 + timedelta(minutes=1),
          lambda: session.get(ProcessInstance, instance.id).status == "completed",
          "the SMS reply did not reach the case")
    data = engine.workflow_data(session, session.get(ProcessInstance, instance.id))
    assert data["satisfaction"] == "satisfied" and data["satisfaction_source"] == "sms"
    assert len(smsc.messages()) == 3  # nothing sent twice


def test_an_unsatisfied_sms_reply_sends_the_case_back_to_the_department(sms_ctx):
    session, engine, smsc = sms_ctx
    instance = engine.start(session, "complaint", INTAKE, actor=user_by_name(session, "agent1"), now=T0)
    session.commit()
    _walk_to_reply(session, engine, instance)
    tick(session, engine, T0)
    smsc.wait_for(lambda p: len(p.messages()) >= 3 or None)
    smsc.send_mo("13800000009", "10010", "3")
    _poll(session, engine, T0, lambda: [t.name for t in open_tasks_of_instance(session, instance.id)] == ["handle"],
          "the unsatisfied reply did not reopen the handling")


def test_a_reply_no_case_waits_for_is_kept_and_not_lost(sms_ctx):
    session, engine, smsc = sms_ctx
    smsc.send_mo("13911112222", "10010", "你好")
    (reply, *_) = _poll(session, engine, T0,
                        lambda: [r for r in peer_events.recent_inbound(session, "sms_mo") if r.processed_at],
                        "the reply was not handled")
    assert reply.payload["text"] == "你好"
    assert reply.outcome == "no case waits for a reply from this number"


def test_a_refused_bind_becomes_an_incident_naming_the_reason(app, ctx, smsc):
    session, engine = ctx
    use_smsc(app, smsc.url.replace(":secret@", ":wrong@"))
    try:
        instance = engine.start(session, "complaint", INTAKE, actor=user_by_name(session, "agent1"), now=T0)
        session.commit()
        tick(session, engine, T0)
        (incident,) = outbox.open_incidents(session)
        assert incident.kind == "refused" and incident.instance_id == instance.id
        assert "ESME_RINVPASWD" in incident.message
        # Fixed configuration + retry → the text goes out once.
        use_smsc(app, smsc.url)
        outbox.retry_incident(session, incident.id, actor="admin", now=T0)
        session.commit()
        tick(session, engine, T0)
        assert len(smsc.wait_for(lambda p: p.messages())) == 1
    finally:
        app.extensions["kefu_connectors"].close()


def test_escalations_text_the_supervisor(sms_ctx):
    session, engine, smsc = sms_ctx
    engine.start(session, "complaint", INTAKE, actor=user_by_name(session, "agent1"), now=T0)
    session.commit()
    report = tick(session, engine, T0 + timedelta(hours=2, minutes=30))  # first reply: within 2 h
    assert [e.level for e in report.scan.escalations] == [1]
    leader_phone = user_by_name(session, "leader1").phone
    texts = smsc.wait_for(lambda p: [m for m in p.messages() if m["destination"] == leader_phone] or None)
    assert "升级L1" in texts[0]["text"] and "首次答复" in texts[0]["text"]


def _text_across_a_restart(session, engine, smsc, smsc_factory, *, before_second=None, **config):
    """A complaint texted through ``smsc`` (its receipt settled); the SMSC restarts on the same port
    with ``config`` and numbers from 1 again; ``before_second(restarted)``; a second complaint
    texted, given the first text's id again, and its receipt settled. Returns both cases and the
    restarted SMSC."""
    agent = user_by_name(session, "agent1")
    first = engine.start(session, "complaint", INTAKE, actor=agent, now=T0)
    session.commit()
    tick(session, engine, T0)
    (before,) = smsc.wait_for(lambda p: p.parts())
    _wait_for_receipt(session, engine, first.id, T0)

    port = smsc.smpp_port
    smsc.stop()
    restarted = smsc_factory(port=port, **config)
    if before_second is not None:
        before_second(restarted)
    later = T0 + timedelta(minutes=5)
    second = engine.start(session, "complaint", {**INTAKE, "customer_phone": "13800000008",
                                                  "contact_phone": "13800000008"}, actor=agent, now=later)
    session.commit()
    _poll(session, engine, later, restarted.parts, "nothing reached the restarted SMSC")
    (after,) = restarted.wait_for(lambda p: p.parts())
    assert after["message_id"] == before["message_id"]  # the id is given again
    _wait_for_receipt(session, engine, second.id, later)
    session.expire_all()
    return first, second, restarted


def _receipts_on(session, instance) -> int:
    return [e.kind for e in instance_events(session, instance.id)].count("smpp_delivered")


def test_an_smsc_restart_that_reuses_message_ids_strands_nothing(sms_ctx, smsc_factory):
    session, engine, smsc = sms_ctx
    first, second, _restarted = _text_across_a_restart(session, engine, smsc, smsc_factory)
    assert outbox.open_incidents(session) == []
    for instance in (first, second):
        jobs = [j for j in outbox.jobs_of_instance(session, instance.id) if j.operation == "sms.send"]
        assert [j.status for j in jobs] == ["done"]
    # Each receipt is on its own case's history, once.
    assert _receipts_on(session, first) == _receipts_on(session, second) == 1


def test_receipts_reach_their_own_case_whichever_bind_gets_them_across_an_smsc_restart(app, ctx, smsc_factory):
    """Production runs several processes, each bound to the SMSC (web, worker, scheduler), and the
    SMSC hands a receipt to any of the binds. Here bind B sends the first text and the SMSC hands
    its receipt to bind A; after the SMSC restarts (ids from 1 again), A sends the second text and
    its receipt — same id — goes to B, which once sent id 1 itself (issue 17 item 2)."""
    session, engine = ctx
    smsc = smsc_factory(receipt_route="other")
    registry = app.extensions["kefu_connectors"]
    use_smsc(app, smsc.url)
    sends_with_a = registry.operations["sms.send"]
    use_smsc(app, smsc.url)  # a second link: another process's bind; texts go through it for now
    start_links(app)

    def send_with_a(restarted) -> None:
        restarted.wait_for(lambda p: p.stats()["bound"] == 2, timeout=10)
        registry.operations["sms.send"] = sends_with_a

    try:
        smsc.wait_for(lambda p: p.stats()["bound"] == 2)
        first, second, restarted = _text_across_a_restart(session, engine, smsc, smsc_factory,
                                                          before_second=send_with_a, receipt_route="other")
        assert _receipts_on(session, first) == _receipts_on(session, second) == 1
        assert restarted.stats()["receipts_sent"] == 1 and restarted.stats()["deliver_sm_resp"] == 1
    finally:
        registry.close()
