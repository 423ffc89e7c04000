"""The city level on the desk and in the API (issue 15): the task page's transfer to the city's
remote seat (转接到地市远程坐席), the seats' inbox, and a city leader's case list."""

from __future__ import annotations

from tests.conftest import INTAKE


def _browser(app, username: str):
    browser = app.test_client()
    assert browser.post("/login", data={"username": username, "password": "kefu-demo"}).status_code == 302
    return browser


def _complaint(client, token, phone: str) -> tuple[int, int]:
    case = client.post("/api/v1/processes/complaint/instances", headers=token("agent1"),
                       json={"data": {**INTAKE, "customer_phone": phone, "contact_phone": phone}})
    assert case.status_code == 201, case.get_json()
    instance_id = case.get_json()["id"]
    (step,) = client.get(f"/api/v1/instances/{instance_id}", headers=token("agent1")).get_json()["tasks"]
    return instance_id, step["id"]


def test_the_holder_transfers_a_step_to_the_city_remote_seat_from_the_task_page(app, client, token):
    local, step = _complaint(client, token, "13800000021")
    other, _other_step = _complaint(client, token, "13800000022")
    agent = _browser(app, "agent1")
    page = agent.get(f"/tasks/{step}").get_data(as_text=True)
    assert "转接到地市远程坐席" in page and "杭州 · 杭州地市中心" in page
    refused = agent.post(f"/tasks/{step}/city-transfer", data={"group": "hz_city", "reason": " "}, follow_redirects=True)
    assert "未转接：请填写转接原因。" in refused.get_data(as_text=True)
    done = agent.post(f"/tasks/{step}/city-transfer", data={"group": "hz_city", "reason": "需要上门测试信号"},
                      follow_redirects=True)
    text = done.get_data(as_text=True)
    assert "已转接到杭州地市中心" in text
    history = agent.get(f"/cases/{local}").get_data(as_text=True)
    assert "转接到地市远程坐席" in history and "需要上门测试信号" in history
    seat = _browser(app, "hzseat1")
    assert f"/tasks/{step}" in seat.get("/inbox?scope=group").get_data(as_text=True)
    # the city leader's case list: the city's case, not the provincial one
    cases = _browser(app, "hzlead1").get("/cases").get_data(as_text=True)
    assert f"/cases/{local}" in cases and f"/cases/{other}" not in cases
    assert _browser(app, "hzlead1").get(f"/cases/{other}").status_code == 404
    assert f"/cases/{other}" in _browser(app, "leader1").get("/cases").get_data(as_text=True)


def test_the_api_lists_city_groups_and_transfers(client, token):
    groups = client.get("/api/v1/city-groups", headers=token("agent1")).get_json()["items"]
    assert {"code": "hz_city", "name": "杭州地市中心", "name_en": "Hangzhou city center", "city": "杭州"} in groups
    _instance, step = _complaint(client, token, "13800000023")
    bad = client.post(f"/api/v1/tasks/{step}/city-transfer", json={"group": "intake", "reason": "x"},
                      headers=token("agent1"))
    assert bad.status_code in (400, 422) and bad.get_json()["fields"] == {"group": "not_city_group"}
    stranger = client.post(f"/api/v1/tasks/{step}/city-transfer", json={"group": "hz_city", "reason": "x"},
                           headers=token("net1"))
    assert stranger.status_code == 404
    ok = client.post(f"/api/v1/tasks/{step}/city-transfer", json={"group": "hz_city", "reason": "本地处理"},
                     headers=token("agent1"))
    assert ok.status_code == 200 and ok.get_json()["city"] == "杭州"
    seat = client.get(f"/api/v1/tasks/{step}", headers=token("hzseat1"))
    assert seat.status_code == 200
