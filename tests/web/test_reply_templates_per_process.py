"""Reply templates beyond complaints (issue 16): kept per process and, where the process has one, per
kind of case (an acceptance's request type, a callback's kind); offered on the steps of that process
that have a reply or answer field, into that field, and nowhere else."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from processes import reply_templates
from tests.web.test_business_acceptance import ARREARS, Desk, _simulate
from web.extensions import db


def _login(client, username: str) -> None:
    assert client.post("/login", data={"username": username, "password": "kefu-demo"}).status_code == 302


def _save(client, scope: str, title: str, body: str = "") -> int:
    return client.post("/admin/reply-templates", data={"scope": scope, "title": title, "body": body or title + "。"}
                       ).status_code


def _offered(page: str) -> list[str]:
    box = re.search(r'<select id="reply-template">(.*?)</select>', page, re.DOTALL)
    return re.findall(r'data-body="([^"]*)"', box.group(1)) if box else []


@pytest.fixture
def desk(app, client, token, billing):
    return Desk(app, client, token, billing)


def test_templates_are_kept_per_process_and_kind_with_chinese_labels(client):
    _login(client, "leader1")
    page = client.get("/admin/reply-templates").get_data(as_text=True)
    for label in ("业务受理 · 挂失（紧急停机）", "回叫/回访 · 客户回访", "欠费催缴 · 所有类型", "投诉 · 网络",
                  "漫游投诉转递 · 计费"):
        assert label in page, label
    assert _save(client, "business_acceptance:report_loss", "挂失已受理") == 302
    assert _save(client, "outbound_callback:return_visit", "回访问候") == 302
    assert _save(client, "dunning:", "催缴提醒") == 302
    assert _save(client, "complaint:network", "信号问题已派单") == 302
    # A kind the process's form does not offer, a kind for a process without kinds, an unknown process.
    for scope in ("business_acceptance:network", "dunning:report_loss", "billing:"):
        refused = client.post("/admin/reply-templates", data={"scope": scope, "title": "x", "body": "y"})
        assert refused.status_code == 422 and "不在可选范围内" in refused.get_data(as_text=True), scope
    with client.application.app_context():
        rows = {(t.process_key, t.category, t.title) for t in reply_templates.all_templates(db.session)}
    assert rows == {("business_acceptance", "report_loss", "挂失已受理"), ("outbound_callback", "return_visit", "回访问候"),
                    ("dunning", "", "催缴提醒"), ("complaint", "network", "信号问题已派单")}
    listed = client.get("/admin/reply-templates").get_data(as_text=True)
    assert "<td>业务受理</td><td>挂失（紧急停机）</td><td>挂失已受理</td>" in listed
    assert "<td>欠费催缴</td><td>所有类型</td><td>催缴提醒</td>" in listed
    _login(client, "agent1")
    assert client.get("/admin/reply-templates").status_code == 403
    assert _save(client, "dunning:", "坐席不能保存") == 403


def test_the_manage_page_in_english_names_processes_and_kinds_in_english(client):
    _login(client, "manager1")
    client.get("/lang/en")
    assert _save(client, "business_acceptance:report_loss", "挂失已受理") == 302
    page = client.get("/admin/reply-templates").get_data(as_text=True)
    assert "Business acceptance · Report loss (emergency suspension)" in page
    assert "<td>Business acceptance</td><td>Report loss (emergency suspension)</td>" in page
    assert "Callback / return visit · Return visit" in page and "Dunning · Every type" in page
    assert not re.search(r"<option[^>]*>[^<]*[\u4e00-\u9fff]", page)  # no Chinese choice


def test_a_refused_acceptance_offers_the_processes_templates_in_its_answer_field(desk, client):
    _login(client, "leader1")
    for scope, title in (("business_acceptance:", "欠费请先缴费"), ("business_acceptance:report_loss", "挂失已受理"),
                         ("complaint:", "投诉通用答复"), ("dunning:", "催缴提醒")):
        assert _save(client, scope, title) == 302
    desk.identify(ARREARS)
    task_id = desk.task("refused")["id"]
    _login(client, "agent1")
    page = client.get(f"/tasks/{task_id}").get_data(as_text=True)
    # The refusal names no request type yet: the templates for every type of this process only.
    assert _offered(page) == ["欠费请先缴费。"]
    assert 'data-reply-field="refusal_note"' in page and 'name="refusal_note"' in page


def test_a_rejected_order_offers_the_request_types_templates_first(desk, client, billing):
    _login(client, "leader1")
    for scope, title in (("business_acceptance:", "通用说明"), ("business_acceptance:feature_off", "功能本未开通"),
                         ("business_acceptance:report_loss", "挂失已受理")):
        assert _save(client, scope, title) == 302
    desk.identify()
    verify_page = client.get(f"/cases/{desk.instance_id}").get_data(as_text=True)
    assert "data-reply-templates" not in verify_page  # the case page never offers them
    desk.take({"request_type": "feature_off", "feature": "three_way_calling"})
    now = datetime.now(UTC)
    desk.run_jobs(now)
    _simulate(billing, now)
    desk.run_jobs(now + timedelta(seconds=20))
    task_id = desk.task("callback")["id"]
    _login(client, "agent1")
    page = client.get(f"/tasks/{task_id}").get_data(as_text=True)
    assert _offered(page) == ["功能本未开通。", "通用说明。"]
    assert 'data-reply-field="callback_note"' in page
    assert "功能本未开通（关闭功能）" in page and "通用说明（所有类型）" in page


def test_a_step_without_a_reply_field_offers_none(desk, client):
    _login(client, "leader1")
    assert _save(client, "business_acceptance:", "通用说明") == 302
    desk.start()
    task_id = desk.task("verify")["id"]  # the service password only
    _login(client, "agent1")
    page = client.get(f"/tasks/{task_id}").get_data(as_text=True)
    assert 'name="service_password"' in page and "data-reply-templates" not in page


def test_the_reply_field_is_the_first_answer_field_of_the_form():
    assert reply_templates.reply_field(["first_reply", "work_order_note"]) == "first_reply"
    assert reply_templates.reply_field(["callback_result", "callback_note"]) == "callback_note"
    assert reply_templates.reply_field(["call_result", "result_note"]) == "result_note"
    assert reply_templates.reply_field(["dunning_result", "dunning_note"]) == "dunning_note"
    assert reply_templates.reply_field(["service_password"]) is None
