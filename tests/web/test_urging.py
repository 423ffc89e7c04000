"""Urging (催办, DESIGN.md "Urging"): anyone who may see the case urges a step; the holder (or the
group's leader) is told — the inbox badge at once, an SMS from the second urge; the same step again
within KEFU_URGE_MINUTES → 429; GET /api/v1/tasks/<id> lists the urges."""

from __future__ import annotations

from datetime import timedelta

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


def test_a_second_urge_later_texts_the_holder_or_the_groups_leader(app, ctx):
    session, engine = ctx
    agent = user_by_name(session, "agent1")
    instance = engine.start(session, "complaint", INTAKE, actor=agent, now=T0)
    session.commit()
    (triage,) = open_tasks_of_instance(session, instance.id)
    engine.complete_task(session, triage.id, {"resolution": "dispatch", "first_reply": "已派单", "department": "network",
                                              "final_reply_due": (T0 + timedelta(days=3)).isoformat()}, actor=agent, now=T0)
    session.commit()
    (handle,) = open_tasks_of_instance(session, instance.id)
    urging.urge(session, handle.id, agent, "", T0)
    session.commit()
    texts = [j for j in outbox.jobs_of_instance(session, instance.id) if j.key.startswith("urge-")]
    assert texts == []  # the first urge: the inbox badge only
    row = urging.urge(session, handle.id, agent, "请今天处理", T0 + timedelta(minutes=31))
    session.commit()
    (text,) = [j for j in outbox.jobs_of_instance(session, instance.id) if j.key.startswith("urge-")]
    target = session.get(type(agent), row.notified_id)
    assert text.params["to"] == target.phone and "催办2次" in text.params["text"]
    # The holder is told; a step nobody holds tells its group's leader.
    from engine.people import Group

    assert row.notified_id == (handle.assignee_id or session.get(Group, handle.group_id).leader_id)


def test_someone_who_may_not_see_the_case_cannot_urge_it(client, token):
    _instance_id, task_id = _dispatched(client, token)
    assert client.post(f"/api/v1/tasks/{task_id}/urge", json={}, headers=token("bill1")).status_code == 404
    assert client.post(f"/api/v1/tasks/{task_id}/urge", json={"note": 5}, headers=token("agent1")).status_code == 422
