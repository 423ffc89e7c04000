"""The browser pages: Chinese by default, CSRF-protected forms, the complaint loop by hand,
inbox colours, and the self-refreshing escalation page."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import INTAKE


@pytest.fixture
def csrf_app(app):
    app.config["WTF_CSRF_ENABLED"] = True
    return app


class Browser:
    """A signed-in test client that submits forms with their CSRF token, like a browser."""

    def __init__(self, app, username: str) -> None:
        self.client = app.test_client()
        page = self.client.get("/login")
        self.post("/login", {"username": username, "password": "kefu-demo"}, page=page)

    def token(self, html: str) -> str:
        return re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)

    def get(self, url: str):
        return self.client.get(url, follow_redirects=True)

    def post(self, url: str, data: dict, page=None):
        page = page or self.client.get("/inbox")
        return self.client.post(url, data={**data, "csrf_token": self.token(page.get_data(as_text=True))})


def _text(response) -> str:
    return response.get_data(as_text=True)


def test_login_page_is_chinese_and_english_on_request(client):
    assert "登录" in _text(client.get("/login"))
    client.get("/lang/en")
    assert "Sign in" in _text(client.get("/login"))


def test_wrong_password_is_refused(client):
    response = client.post("/login", data={"username": "agent1", "password": "nope"})
    assert response.status_code == 401
    assert "用户名或密码错误" in _text(response)


def test_form_without_csrf_token_is_refused(csrf_app):
    browser = Browser(csrf_app, "agent1")
    response = browser.client.post("/cases/new/complaint", data=INTAKE)
    assert response.status_code == 400


def test_complaint_loop_through_the_pages(csrf_app):
    agent, net, leader = (Browser(csrf_app, u) for u in ("agent1", "net1", "leader1"))
    form = agent.get("/complaints/new?customer_phone=13800000009")
    assert "客户号码" in _text(form) and "投诉类别" in _text(form)
    # Bad input: the form comes back with the field marked, nothing is recorded.
    bad = agent.post("/cases/new/complaint", {**INTAKE, "channel": ""}, page=form)
    assert bad.status_code == 422 and "has-error" in _text(bad)
    response = agent.post("/cases/new/complaint", INTAKE, page=form)
    assert response.status_code == 302 and "/tasks/" in response.headers["Location"]
    triage_url = response.headers["Location"]
    page = agent.get(triage_url)
    assert "首次答复" in _text(page)
    response = agent.post(triage_url + "/complete", {
        "resolution": "dispatch", "first_reply": "已派网络部", "department": "network",
        "final_reply_due": (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")}, page=page)
    assert response.status_code == 302

    inbox = _text(net.get("/inbox?scope=group"))
    assert "部门处理" in inbox and "row-ok" in inbox
    task_id = re.search(r'/tasks/(\d+)"', inbox).group(1)
    assert net.post(f"/tasks/{task_id}/claim", {}).status_code == 302
    response = net.post(f"/tasks/{task_id}/complete", {
        "handling_result": "已修复", "cause": "network_fault"})  # checkbox unticked → no refund
    assert response.status_code == 302

    qc_list = _text(leader.get("/inbox?scope=group"))
    qc_id = re.search(r'/tasks/(\d+)">质检', qc_list).group(1)
    rejected = leader.post(f"/tasks/{qc_id}/complete", {"qc_result": "reject"})  # reason missing
    assert rejected.status_code == 422
    leader.post(f"/tasks/{qc_id}/complete", {"qc_result": "reject", "qc_reason": "原因未写清"})
    redo = re.search(r'/tasks/(\d+)"', _text(net.get("/inbox?scope=mine"))).group(1)
    net.post(f"/tasks/{redo}/complete", {"handling_result": "基站已更换", "cause": "network_fault"})
    qc_list = _text(leader.get("/inbox?scope=group"))
    qc_id = re.search(r'/tasks/(\d+)">质检', qc_list).group(1)
    leader.post(f"/tasks/{qc_id}/complete", {"qc_result": "accept"})

    mine = _text(agent.get("/inbox?scope=mine"))
    reply_id = re.search(r'/tasks/(\d+)">回复客户', mine).group(1)
    agent.post(f"/tasks/{reply_id}/complete", {"final_reply": "已更换基站", "reply_method": "phone",
                                               "satisfaction": "satisfied"})
    case_id = re.search(r"/cases/(\d+)", mine).group(1)
    case = _text(agent.get(f"/cases/{case_id}"))
    assert "已办结" in case or "办结" in case
    for step in ("首次答复", "部门处理", "质检", "回复客户"):
        assert step in case
    assert "原因未写清" in case  # the QC reason is in the history


def test_history_of_the_customer_is_listed_while_recording(csrf_app):
    agent = Browser(csrf_app, "agent1")
    form = agent.get("/complaints/new")
    agent.post("/cases/new/complaint", INTAKE, page=form)
    fragment = _text(agent.get("/cases/history?key=complaint&customer_phone=" + INTAKE["customer_phone"]))
    assert "TS" in fragment
    assert "TS" not in _text(agent.get("/cases/history?key=complaint&customer_phone=13700000000"))


def test_suspend_pauses_and_shows(csrf_app):
    agent = Browser(csrf_app, "agent1")
    form = agent.get("/complaints/new")
    task_url = agent.post("/cases/new/complaint", INTAKE, page=form).headers["Location"]
    case_id = re.search(r"/cases/(\d+)", _text(agent.get(task_url))).group(1)
    assert agent.post(f"/cases/{case_id}/suspend", {"reason": "等待客户补充话单"}).status_code == 302
    page = _text(agent.get(task_url))
    assert "等待客户补充话单" in page and "sla-paused" in page
    assert agent.post(f"/cases/{case_id}/resume", {}).status_code == 302
    assert "sla-ok" in _text(agent.get(task_url))


def test_escalation_page_for_manager_only(csrf_app, app):
    from slas.scanner import scan
    from web.extensions import db

    agent = Browser(csrf_app, "agent1")
    agent.post("/cases/new/complaint", INTAKE, page=agent.get("/complaints/new"))
    with app.app_context():
        scan(db.session, datetime.now(UTC) + timedelta(hours=3, minutes=1))
    manager = Browser(csrf_app, "manager1")
    page = _text(manager.get("/escalations"))
    assert "data-refresh" in page and "首次答复" in page and "L2" in page
    fragment = _text(manager.get("/escalations?fragment=1"))
    assert "<html" not in fragment and "首次答复" in fragment
    assert agent.get("/escalations").status_code == 403
