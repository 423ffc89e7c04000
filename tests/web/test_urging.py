"""Urging (催办, DESIGN.md "Urging"): anyone who may see the case urges a step; the holder and the
group's leader are told (once if the same person) — the inbox badge at once, an SMS from the second urge; the same step again
within KEFU_URGE_MINUTES → 429; GET /api/v1/tasks/<id> lists the urges."""

from __future__ import annotations

from datetime import timedelta

import pytest

from engine import outbox
from engine.clock import utcnow
from engine.models import open_tasks_of_instance
from engine.people import user_by_name
from processes import urging
from tests.conftest import INTAKE, T0


def _dispatched(client, token):
    case = client.post("/api/v1/processes/complaint/instances", json={"data": INTAKE}, headers=token("agent1"))
    instance_id = case.get_json()["id"]
    (triage,) = client.get(f"/api/v1/instances/{instance_id}", headers=token("agent1")).get_json()["tasks"]
    done = client.post(f"/api/v1/tasks/{triage['id']}/complete", headers=token("agent1"), json={"data": {
        "resolution": "dispatch", "first_reply": "已派单网络部", "department": "network",
        "final_reply_due": (utcnow() + timedelta(days=3)).isoformat()}})
    assert done.status_code == 200, done.get_json()
    (handle,) = client.get(f"/api/v1/instances/{instance_id}", headers=token("agent1")).get_json()["tasks"]
    return instance_id, handle["id"]


def test_the_agent_urges_the_departments_step_and_the_holder_is_told(client, token):
    _instance_id, task_id = _dispatched(client, token)
    first = client.post(f"/api/v1/tasks/{task_id}/urge", json={"note": "客户再次来电"}, headers=token("agent1"))
    assert first.status_code == 201
    body = first.get_json()
    assert body["task_id"] == task_id and body["by"] == "坐席一 王芳" and body["at"]
    again = client.post(f"/api/v1/tasks/{task_id}/urge", json={}, headers=token("agent1"))
    assert again.status_code == 429 and again.get_json()["error"] == "too_many_urges"
    detail = client.get(f"/api/v1/tasks/{task_id}", headers=token("net1")).get_json()
    assert [(u["by"], u["note"]) for u in detail["urges"]] == [("坐席一 王芳", "客户再次来电")]
    # The holder's inbox shows the badge.
    client.post("/login", data={"username": "net1", "password": "kefu-demo"})
    assert "已催办1次" in client.get("/inbox?scope=group").get_data(as_text=True)


def _handled_by(session, engine, holder: str | None):
    """A dispatched complaint whose network step is held by ``holder`` (None: nobody)."""
    agent = user_by_name(session, "agent1")
    instance = engine.start(session, "complaint", INTAKE, actor=agent, now=T0)
    session.commit()
    (triage,) = open_tasks_of_instance(session, instance.id)
    engine.complete_task(session, triage.id, {"resolution": "dispatch", "first_reply": "已派单", "department": "network",
                                              "final_reply_due": (T0 + timedelta(days=3)).isoformat()}, actor=agent, now=T0)
    (handle,) = open_tasks_of_instance(session, instance.id)
    handle.assignee_id = user_by_name(session, holder).id if holder else None
    session.commit()
    return agent, instance, handle


def _urge_texts(session, instance_id):
    return sorted(j.params["to"] for j in outbox.jobs_of_instance(session, instance_id) if j.key.startswith("urge-"))


@pytest.mark.slow
def test_a_second_urge_texts_the_holder_and_the_groups_leader_through_the_smsc(app, ctx, smsc):
    from processes.tick import tick
    from web.connectors_setup import start_links, use_smsc

    use_smsc(app, smsc.url)
    start_links(app)
    try:
        session, engine = ctx
        net, lead = user_by_name(session, "net1"), user_by_name(session, "netlead1")
        agent, instance, handle = _handled_by(session, engine, "net1")
        urging.urge(session, handle.id, agent, "", T0)
        session.commit()
        assert _urge_texts(session, instance.id) == []  # the first urge: the inbox badge only
        row = urging.urge(session, handle.id, agent, "请今天处理", T0 + timedelta(minutes=31))
        session.commit()
        assert row.notified_id == net.id
        assert _urge_texts(session, instance.id) == sorted([net.phone, lead.phone])
        tick(session, engine, T0 + timedelta(minutes=31))
        def urged(peer):
            found = [m for m in peer.messages() if "催办2次" in m["text"]]
            return found if len(found) >= 2 else None

        texts = smsc.wait_for(urged)
        assert sorted(m["destination"] for m in texts) == sorted([net.phone, lead.phone])
        assert all(instance.reference in m["text"] and "请今天处理" in m["text"] for m in texts)
    finally:
        app.extensions["kefu_connectors"].close()


def test_the_leader_holding_the_step_is_told_once_and_nobody_holding_it_tells_the_leader(ctx):
    session, engine = ctx
    lead = user_by_name(session, "netlead1")
    for holder in ("netlead1", None):
        agent, instance, handle = _handled_by(session, engine, holder)
        urging.urge(session, handle.id, agent, "", T0)
        row = urging.urge(session, handle.id, agent, "", T0 + timedelta(minutes=31))
        session.commit()
        assert row.notified_id == lead.id
        assert _urge_texts(session, instance.id) == [lead.phone]


def test_someone_who_may_not_see_the_case_cannot_urge_it(client, token):
    _instance_id, task_id = _dispatched(client, token)
    assert client.post(f"/api/v1/tasks/{task_id}/urge", json={}, headers=token("bill1")).status_code == 404
    assert client.post(f"/api/v1/tasks/{task_id}/urge", json={"note": 5}, headers=token("agent1")).status_code == 422
