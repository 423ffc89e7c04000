"""The REST contract of DESIGN.md and the foundation issue, including permissions and bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.conftest import INTAKE

DISPATCH = {"resolution": "dispatch", "first_reply": "已派单，明天答复", "department": "network",
            # a deadline still ahead: a past one is refused (processes/complaint_rules.py)
            "final_reply_due": (datetime.now(UTC) + timedelta(days=2)).isoformat()}


def _start(client, token, data=None):
    response = client.post("/api/v1/processes/complaint/instances", json={"data": data or INTAKE},
                           headers=token("agent1"))
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def _open_task(client, token, user, instance_id, scope="group"):
    items = client.get(f"/api/v1/tasks?scope={scope}", headers=token(user)).get_json()["items"]
    return next(t for t in items if t["instance_id"] == instance_id)


def test_token_and_processes(client, token):
    assert client.post("/api/v1/auth/token", json={"username": "agent1", "password": "bad"}).status_code == 401
    body = client.get("/api/v1/processes", headers=token("agent1")).get_json()
    assert {"key": "complaint", "version": 1, "name": "投诉闭环"} in body["items"]


def test_no_or_bad_token_is_401(client):
    assert client.get("/api/v1/tasks").status_code == 401
    response = client.get("/api/v1/tasks", headers={"Authorization": "Bearer forged.token.value"})
    assert response.status_code == 401
    assert response.get_json()["error"] == "unauthorized"


def test_whole_loop_over_the_api(client, token):
    instance_id = _start(client, token)
    instance = client.get(f"/api/v1/instances/{instance_id}", headers=token("agent1")).get_json()
    assert instance["status"] == "running" and instance["data"]["customer_phone"] == INTAKE["customer_phone"]
    (triage,) = instance["tasks"]
    assert (triage["name"], triage["group"], triage["assignee"]) == ("triage", "intake", "agent1")
    detail = client.get(f"/api/v1/tasks/{triage['id']}", headers=token("agent1")).get_json()
    assert set(detail) >= {"id", "name", "title", "instance_id", "process_key", "group", "assignee",
                           "created_at", "due_at", "sla_state", "form", "data"}
    assert detail["form"]["properties"]["resolution"]["title"] == "处理方式"
    assert detail["sla_state"] == "ok"
    done = client.post(f"/api/v1/tasks/{triage['id']}/complete", json={"data": DISPATCH},
                       headers=token("agent1"))
    assert done.status_code == 200, done.get_json()

    handle = _open_task(client, token, "net1", instance_id)
    assert handle["name"] == "handle" and handle["assignee"] is None and handle["group"] == "network"
    assert client.post(f"/api/v1/tasks/{handle['id']}/claim", headers=token("net1")).status_code == 200
    assert client.post(f"/api/v1/tasks/{handle['id']}/claim", headers=token("net1")).status_code == 200
    assert client.post(f"/api/v1/tasks/{handle['id']}/claim", headers=token("netlead1")).status_code == 409
    client.post(f"/api/v1/tasks/{handle['id']}/complete", headers=token("net1"), json={"data": {
        "handling_result": "已修复", "cause": "network_fault", "refund_due": True, "refund_amount": 12.5}})

    qc = _open_task(client, token, "leader1", instance_id)
    assert qc["name"] == "quality_check"
    client.post(f"/api/v1/tasks/{qc['id']}/complete", headers=token("leader1"),
                json={"data": {"qc_result": "accept"}})
    refund = _open_task(client, token, "bill1", instance_id)
    assert refund["name"] == "refund"
    client.post(f"/api/v1/tasks/{refund['id']}/complete", headers=token("bill1"),
                json={"data": {"refund_reference": "R2026-1", "refund_done_amount": 12.5}})
    reply = _open_task(client, token, "agent1", instance_id, scope="mine")
    assert reply["name"] == "reply"
    client.post(f"/api/v1/tasks/{reply['id']}/complete", headers=token("agent1"), json={"data": {
        "final_reply": "已修复并退费", "reply_method": "phone", "satisfaction": "unsatisfied"}})
    rework = _open_task(client, token, "net1", instance_id, scope="mine")  # back to the same handler
    assert rework["name"] == "handle"

    final = client.get(f"/api/v1/instances/{instance_id}", headers=token("manager1")).get_json()
    kinds = [e["kind"] for e in final["events"]]
    assert kinds.count("task_completed") == 5 and "started" in kinds


def test_complete_validates_against_the_form(client, token):
    instance_id = _start(client, token)
    task = _open_task(client, token, "agent1", instance_id, scope="mine")
    response = client.post(f"/api/v1/tasks/{task['id']}/complete", headers=token("agent1"),
                           json={"data": {"resolution": "dispatch", "first_reply": "x" * 5000,
                                          "bogus": 1}})
    assert response.status_code == 422
    body = response.get_json()
    assert body["error"] == "validation_failed"
    assert set(body["fields"]) == {"first_reply", "department", "final_reply_due", "bogus"}
    assert body["fields"]["department"] == "此项必填。"  # Chinese by default
    # Nothing changed: the task is still open and unassigned work is untouched.
    again = client.get(f"/api/v1/tasks/{task['id']}", headers=token("agent1")).get_json()
    assert again["status"] == "open"


def test_start_validates_intake(client, token):
    response = client.post("/api/v1/processes/complaint/instances", headers=token("agent1"),
                           json={"data": {**INTAKE, "channel": "pigeon", "customer_phone": "abc"}})
    assert response.status_code == 422
    assert set(response.get_json()["fields"]) == {"channel", "customer_phone"}
    assert client.get("/api/v1/instances", headers=token("manager1")).get_json()["items"] == []


def test_malformed_and_oversized_requests(client, token):
    headers = {**token("agent1"), "Content-Type": "application/json"}
    response = client.post("/api/v1/processes/complaint/instances", data="{not json", headers=headers)
    assert response.status_code == 422 and response.get_json()["fields"] == {"body": "malformed JSON"}
    response = client.post("/api/v1/processes/complaint/instances", json={"data": [1, 2]},
                           headers=token("agent1"))
    assert response.status_code == 422
    response = client.post("/api/v1/processes/complaint/instances", headers=headers,
                           data='{"data": {"description": "' + "x" * (3 * 1024 * 1024) + '"}}')
    assert response.status_code == 413 and response.get_json()["error"] == "too_large"
    assert client.post("/api/v1/processes/nope/instances", json={"data": {}},
                       headers=token("agent1")).status_code == 404


def test_unknown_task_and_outside_groups(client, token):
    assert client.get("/api/v1/tasks/999999", headers=token("agent1")).status_code == 404
    instance_id = _start(client, token)
    task = _open_task(client, token, "agent1", instance_id, scope="mine")
    # A network handler neither sees nor acts on an intake task, nor reads the case.
    assert client.get(f"/api/v1/tasks/{task['id']}", headers=token("net1")).status_code in (403, 404)
    assert client.post(f"/api/v1/tasks/{task['id']}/complete", headers=token("net1"),
                       json={"data": {}}).status_code in (403, 404)
    assert client.get(f"/api/v1/instances/{instance_id}", headers=token("net1")).status_code == 404
    assert client.get("/api/v1/tasks?scope=group", headers=token("net1")).get_json()["items"] == []
    assert client.get("/api/v1/tasks?scope=everything", headers=token("net1")).status_code == 422
    # Only the intake group may record complaints.
    assert client.post("/api/v1/processes/complaint/instances", json={"data": INTAKE},
                       headers=token("net1")).status_code == 403


def test_escalations_by_role(app, client, token):
    from datetime import datetime, timedelta

    from slas.scanner import scan
    from web.extensions import db

    instance_id = _start(client, token)
    task = _open_task(client, token, "agent1", instance_id, scope="mine")
    with app.app_context():
        scan(db.session, datetime.now(UTC) + timedelta(hours=2, minutes=1))
    items = client.get("/api/v1/escalations", headers=token("manager1")).get_json()["items"]
    assert [(e["task_id"], e["level"]) for e in items] == [(task["id"], 1)]
    assert set(items[0]) >= {"instance_id", "task_id", "level", "raised_at"}
    assert client.get("/api/v1/escalations", headers=token("leader1")).get_json()["items"] == items
    assert client.get("/api/v1/escalations", headers=token("netlead1")).get_json()["items"] == []
    assert client.get("/api/v1/escalations", headers=token("agent1")).get_json()["items"] == []
    state = client.get(f"/api/v1/tasks/{task['id']}", headers=token("agent1")).get_json()["sla_state"]
    assert state == "ok"  # the real clock has not moved; the scan ran as of a later time


def test_suspended_case_is_running_on_hold(client, token):
    instance_id = _start(client, token)
    response = client.post(f"/api/v1/instances/{instance_id}/suspend", json={"reason": "等待客户补充资料"},
                           headers=token("agent1"))
    assert response.status_code == 200
    body = client.get(f"/api/v1/instances/{instance_id}", headers=token("agent1")).get_json()
    assert (body["status"], body["suspended"], body["suspend_reason"]) == ("running", True, "等待客户补充资料")
    task = body["tasks"][0]
    assert client.get(f"/api/v1/tasks/{task['id']}", headers=token("agent1")).get_json()["sla_state"] == "paused"
    refused = client.post(f"/api/v1/tasks/{task['id']}/complete", headers=token("agent1"),
                          json={"data": {"resolution": "answer_now", "first_reply": "x"}})
    assert refused.status_code == 409
    assert client.post(f"/api/v1/instances/{instance_id}/suspend", json={"reason": ""},
                       headers=token("agent1")).status_code == 409  # already on hold
    resumed = client.post(f"/api/v1/instances/{instance_id}/resume", headers=token("agent1")).get_json()
    assert (resumed["status"], resumed["suspended"]) == ("running", False)
