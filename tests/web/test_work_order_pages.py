"""The complaint work order through the product: a past department deadline refused (API and
page, in Chinese), 不满意 heard on a return visit reopening the case, and the inbox saying 系统分配."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from connectors.base import Call
from engine.models import ProcessInstance, instance_events, open_tasks_of_instance
from engine.people import Group, user_by_name
from processes.outbound_call_operations import op_visit_result
from tests.conftest import INTAKE


def _case(client, token, user="agent1"):
    response = client.post("/api/v1/processes/complaint/instances", json={"data": INTAKE}, headers=token(user))
    assert response.status_code == 201, response.get_json()
    instance_id = response.get_json()["id"]
    task = client.get(f"/api/v1/instances/{instance_id}", headers=token(user)).get_json()["tasks"][0]
    return instance_id, task["id"]


def _dispatch(**deadlines):
    return {"resolution": "dispatch", "first_reply": "已派单", "department": "network", **deadlines}


def test_a_past_deadline_is_refused_with_a_clear_message(client, token):
    _instance_id, task_id = _case(client, token)
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    ahead = (datetime.now(UTC) + timedelta(hours=24)).isoformat()
    response = client.post(f"/api/v1/tasks/{task_id}/complete", headers=token("agent1"),
                           json={"data": _dispatch(first_reply_due=past, final_reply_due=ahead)})
    assert response.status_code == 422
    assert list(response.get_json()["fields"]) == ["first_reply_due"]
    # the same refusal on the task page, in Chinese, on the field
    client.post("/login", data={"username": "agent1", "password": "kefu-demo"})
    page = client.post(f"/tasks/{task_id}/complete", data={
        "resolution": "dispatch", "first_reply": "已派单", "department": "network",
        "first_reply_due": "2020-01-01T10:00", "final_reply_due": "2099-01-01T10:00"})
    assert page.status_code == 422
    assert "该时限已过" in page.get_data(as_text=True)
    # a deadline ahead is accepted
    response = client.post(f"/api/v1/tasks/{task_id}/complete", headers=token("agent1"),
                           json={"data": _dispatch(final_reply_due=ahead)})
    assert response.status_code == 200, response.get_json()


def test_unsatisfied_on_the_return_visit_reopens_the_case(app, client, token, ctx):
    session, engine = ctx
    instance_id, task_id = _case(client, token)
    now = datetime.now(UTC)
    assert client.post(f"/api/v1/tasks/{task_id}/complete", headers=token("agent1"), json={"data": _dispatch(
        final_reply_due=(now + timedelta(hours=24)).isoformat())}).status_code == 200
    for user, data in (("net1", {"handling_result": "已处理", "cause": "network_fault", "refund_due": False}),
                       ("leader1", {"qc_result": "accept"}),
                       ("agent1", {"final_reply": "已处理完毕", "reply_method": "phone"})):
        (task,) = open_tasks_of_instance(session, instance_id)
        response = client.post(f"/api/v1/tasks/{task.id}/complete", headers=token(user), json={"data": data})
        assert response.status_code == 200, response.get_json()
        session.expire_all()
    # no SMS answer within 48 hours: a return visit is booked and the complaint waits for it
    engine.fire_due_timers(session, now + timedelta(hours=49))
    session.commit()
    engine.run_jobs(session, now + timedelta(hours=49))
    complaint = session.get(ProcessInstance, instance_id)
    session.refresh(complaint)
    assert complaint.status == "running" and open_tasks_of_instance(session, instance_id) == []
    visit = session.scalars(select(ProcessInstance).where(ProcessInstance.process_key == "outbound_callback")
                            .order_by(ProcessInstance.id.desc())).first()
    # the visiting agent records 不满意 (the callback's own step writes it, as save_visit does)
    at = now + timedelta(hours=50)
    op_visit_result({"origin_id": instance_id, "satisfaction": "unsatisfied", "comment": "还是没信号",
                     "agent": "agent2"}, Call(job_id=0, key="t", attempt=1, now=at, instance_id=visit.id,
                                              session=session))
    session.commit()
    engine.run_jobs(session, at)
    session.expire_all()
    (reopened,) = open_tasks_of_instance(session, instance_id)
    network = session.scalar(select(Group.id).where(Group.code == "network"))
    assert (reopened.name, reopened.group_id) == ("handle", network)
    kinds = [e.kind for e in instance_events(session, instance_id)]
    assert "return_visit" in kinds and "message_received" in kinds
    assert engine.task_data(session, reopened)["satisfaction_source"] == "return_visit"
    # the case page tells the story in words
    client.post("/login", data={"username": "manager1", "password": "kefu-demo"})
    page = client.get(f"/cases/{instance_id}").get_data(as_text=True)
    assert "回访结果已送回" in page


def test_the_inbox_says_assigned_by_the_system(app, client, token, ctx):
    session, _engine = ctx
    billing = session.scalars(select(Group).where(Group.code == "billing")).one()
    billing.assignment = "round_robin"
    session.commit()
    instance_id, task_id = _case(client, token)
    ahead = (datetime.now(UTC) + timedelta(hours=24)).isoformat()
    assert client.post(f"/api/v1/tasks/{task_id}/complete", headers=token("agent1"), json={"data": {
        **_dispatch(final_reply_due=ahead), "department": "billing"}}).status_code == 200
    session.expire_all()
    (handle,) = open_tasks_of_instance(session, instance_id)
    holder = session.get(type(user_by_name(session, "bill1")), handle.assignee_id)
    assert holder.username in ("bill1", "billlead1")
    client.post("/login", data={"username": holder.username, "password": "kefu-demo"})
    page = client.get("/inbox?scope=mine").get_data(as_text=True)
    assert "系统分配" in page and str(handle.id) in page


def test_the_intake_form_shows_the_facts_to_ask_per_category(client):
    client.post("/login", data={"username": "agent1", "password": "kefu-demo"})
    page = client.get("/cases/new/complaint").get_data(as_text=True)
    assert "装移机及维修人员服务" in page and "越级/申诉" in page
    assert "请询问客户：" in page and "装机、移机或维修单号" in page
    assert 'data-prompts-for="f-category"' in page


def test_upgraded_complaints_flagged_by_a_leader_listed_for_managers(client, token):
    instance_id, _task_id = _case(client, token)
    client.post("/login", data={"username": "agent1", "password": "kefu-demo"})
    assert "标记为越级投诉" not in client.get(f"/cases/{instance_id}").get_data(as_text=True)
    assert client.post(f"/cases/{instance_id}/upgrade", data={"source": "ministry"}).status_code == 403
    client.post("/login", data={"username": "leader1", "password": "kefu-demo"})
    assert "标记为越级投诉" in client.get(f"/cases/{instance_id}").get_data(as_text=True)
    done = client.post(f"/cases/{instance_id}/upgrade", data={"source": "ministry", "note": "工信部转来"},
                       follow_redirects=True).get_data(as_text=True)
    assert "已标记为越级投诉" in done and "来源：工信部/通信管理局" in done and "督办人：中心经理 陈刚" in done
    again = client.post(f"/cases/{instance_id}/upgrade", data={"source": "ministry"}, follow_redirects=True)
    assert "该投诉已关闭或已是越级投诉" in again.get_data(as_text=True)
    client.post("/login", data={"username": "manager1", "password": "kefu-demo"})
    listing = client.get("/upgraded").get_data(as_text=True)
    assert "越级投诉" in listing and "工信部/通信管理局" in listing and "首次答复" in listing
    client.post("/login", data={"username": "agent1", "password": "kefu-demo"})
    assert client.get("/upgraded").status_code == 403


def test_the_api_flags_an_upgraded_complaint_after_intake(client, token, app):
    from slas.upgrades import is_upgraded

    instance_id, _task_id = _case(client, token)
    url = f"/api/v1/instances/{instance_id}/upgrade"
    refused = client.post(url, json={"source": "ministry"}, headers=token("agent1"))
    assert refused.status_code == 403 and refused.get_json()["error"] == "forbidden"
    for body, fields in (({}, {"source"}), ({"source": "weibo"}, {"source"}), ({"source": 3}, {"source"}),
                         ({"source": "ministry", "note": ["x"]}, {"note"})):
        bad = client.post(url, json=body, headers=token("leader1"))
        assert bad.status_code == 422 and set(bad.get_json()["fields"]) == fields, body
    assert client.post(url, data="[1]", content_type="application/json", headers=token("leader1")).status_code == 422
    assert client.post("/api/v1/instances/999999/upgrade", json={"source": "ministry"},
                       headers=token("leader1")).status_code == 404
    done = client.post(url, json={"source": "hotline_10015", "note": " 10015转来 "}, headers=token("leader1"))
    assert done.status_code == 201, done.get_json()
    body = done.get_json()
    assert (body["instance_id"], body["source"], body["note"], body["supervisor"]) == (
        instance_id, "hotline_10015", "10015转来", "manager1")
    assert datetime.fromisoformat(body["flagged_at"]).tzinfo is not None
    with app.app_context():
        from web.extensions import db

        assert is_upgraded(db.session, instance_id)
    again = client.post(url, json={"source": "ministry"}, headers=token("manager1"))
    assert again.status_code == 409 and again.get_json()["error"]
    client.post("/login", data={"username": "manager1", "password": "kefu-demo"})
    assert "10015" in client.get("/upgraded").get_data(as_text=True)
