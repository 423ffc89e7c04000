"""取下一单 (``POST /api/v1/tasks/next``): each call claims a different free task of the caller's
groups, due soonest first; nothing left is a 404 in words, a bad body a 422."""

from __future__ import annotations

from tests.conftest import INTAKE


def _free_triage_tasks(client, token, count: int) -> list[int]:
    ids = []
    for n in range(count):
        case = client.post("/api/v1/processes/complaint/instances", headers=token("agent1"),
                           json={"data": {**INTAKE, "customer_phone": f"1390000700{n}"}}).get_json()
        (task,) = client.get(f"/api/v1/instances/{case['id']}", headers=token("agent1")).get_json()["tasks"]
        if task["assignee"]:
            assert client.post(f"/api/v1/tasks/{task['id']}/unclaim", headers=token("agent1")).status_code == 200
        ids.append(task["id"])
    return ids


def test_each_agent_takes_a_different_task_until_none_waits(client, token):
    free = _free_triage_tasks(client, token, 3)
    taken = []
    for user in ("agent2", "agent2", "agent1"):
        response = client.post("/api/v1/tasks/next", headers=token(user), json={"name": "triage"})
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["assignee"] == user
        taken.append(response.get_json()["id"])
    assert sorted(taken) == sorted(free)  # three calls, three different tasks
    none = client.post("/api/v1/tasks/next", headers=token("agent2"))
    assert none.status_code == 404 and none.get_json()["error"] == "not_found"
    mine = {t["id"] for t in client.get("/api/v1/tasks?scope=mine", headers=token("agent2")).get_json()["items"]}
    assert set(taken[:2]) <= mine


def test_a_step_nobody_waits_at_and_a_bad_body(client, token):
    _free_triage_tasks(client, token, 1)
    assert client.post("/api/v1/tasks/next", headers=token("agent2"), json={"name": "no_such_step"}).status_code == 404
    bad = client.post("/api/v1/tasks/next", headers=token("agent2"), json={"name": 5})
    assert bad.status_code == 422 and "name" in bad.get_json()["fields"]
    # a member of another group finds nothing of the intake queue
    assert client.post("/api/v1/tasks/next", headers=token("net1")).status_code == 404
