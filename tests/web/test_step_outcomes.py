"""A step's outcome is said as what it is: a wrong service password, a refusal for arrears or a
wrong request is an amber/red flash and a notice on the task where the agent retries (declared by
the forms' ``x-notices``), never a green "done"; date-times shown again after a validation error
stay in Beijing time; what was typed on a step someone else holds is shown back."""

from __future__ import annotations

import re
import time

import pytest

from engine.models import open_tasks_of_instance
from engine.people import user_by_name
from tests.conftest import INTAKE, T0
from tests.web.test_pages import Browser
from web.schema_forms import coerce, fields_of

VIP, ARREARS = "13800000001", "13800000002"


def _flashes(html: str) -> list[tuple[str, str]]:
    return [(c, re.sub(r"\s+", " ", t).strip())
            for c, t in re.findall(r'<div class="flash (\w+)" role="status">(.*?)</div>', html, re.DOTALL)]


def _notices(html: str) -> list[tuple[str, str]]:
    return [(c, re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", t)).strip())
            for c, t in re.findall(r'<div class="notice step-notice (\w+)" role="alert">(.*?)</div>', html, re.DOTALL)]


def _start(app, phone: str) -> int:
    from web.extensions import db

    with app.app_context():
        engine = app.extensions["kefu_engine"]
        instance = engine.start(db.session, "business_acceptance", {"customer_phone": phone},
                                actor=user_by_name(db.session, "agent1"), now=T0)
        db.session.commit()
        (task,) = open_tasks_of_instance(db.session, instance.id)
        return task.id


def test_a_wrong_password_is_an_amber_refusal_on_the_retry_not_a_green_done(app, billing):
    agent = Browser(app, "agent1")
    task_id = _start(app, VIP)
    first = agent.get(f"/tasks/{task_id}").get_data(as_text=True)
    assert _notices(first) == []  # nothing to say before the first try

    answer = agent.post(f"/tasks/{task_id}/complete", {"service_password": "654321"})
    assert answer.status_code == 302
    retry = agent.get(answer.headers["Location"]).get_data(as_text=True)
    flashes = _flashes(retry)
    assert [c for c, _t in flashes] == ["warning"], flashes
    assert "服务密码不正确，还可尝试2次" in flashes[0][1] and "环节已完成" not in retry
    assert _notices(retry) == [("warn", "身份核验未通过 服务密码不正确，还可尝试2次")]
    assert 'name="service_password"' in retry  # the same step again, ready for the retry

    # the third wrong try goes to the leader's review: said in red, to the agent and on that step
    for _attempt in range(2):
        (task,) = re.findall(r'action="/tasks/(\d+)/complete"', retry)
        answer = agent.post(f"/tasks/{task}/complete", {"service_password": "654321"})
        retry = agent.get(answer.headers["Location"]).get_data(as_text=True)
    assert ("error" in [c for c, _t in _flashes(retry)]) and "连续3次服务密码错误，受理终止" in retry


def test_arrears_show_the_reason_and_advice_in_red_not_placeholders(app, billing):
    agent = Browser(app, "agent1")
    task_id = _start(app, ARREARS)
    answer = agent.post(f"/tasks/{task_id}/complete", {"service_password": "123456"})
    page = agent.get(answer.headers["Location"]).get_data(as_text=True)
    assert "告知客户不能受理" in page
    (notice,) = _notices(page)
    assert notice[0] == "error" and notice[1].startswith("不能受理") and "欠费" in notice[1]
    assert [c for c, _t in _flashes(page)] == ["error"]
    assert "standing." not in page and "（standing" not in page


def test_a_request_billing_refuses_stays_on_the_step_with_the_reason(app, billing):
    agent = Browser(app, "agent1")
    task_id = _start(app, VIP)
    answer = agent.post(f"/tasks/{task_id}/complete", {"service_password": "123456"})
    page = agent.get(answer.headers["Location"]).get_data(as_text=True)
    assert _notices(page) == [] and [c for c, _t in _flashes(page)] == ["success"]
    (task,) = re.findall(r'action="/tasks/(\d+)/complete"', page)
    answer = agent.post(f"/tasks/{task}/complete", {"request_type": "set_family_numbers",
                                                    "family_numbers": "13800000001,13800000001"})
    page = agent.get(answer.headers["Location"]).get_data(as_text=True)
    assert ("error", "受理内容有误，请更正后重新提交 亲友号码不能重复") in _notices(page)


def test_the_english_page_says_the_refusal_with_an_english_headline(app, billing):
    agent = Browser(app, "agent1")
    agent.get("/lang/en")
    task_id = _start(app, VIP)
    answer = agent.post(f"/tasks/{task_id}/complete", {"service_password": "654321"})
    page = agent.get(answer.headers["Location"]).get_data(as_text=True)
    assert _notices(page)[0][1].startswith("Identification failed")
    assert "submitted" in _flashes(page)[0][1]


@pytest.fixture
def utc_machine(monkeypatch):
    """The server's clock in UTC (as in production containers), whatever this machine uses."""
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_a_date_time_shown_again_after_an_error_stays_in_beijing_time(utc_machine):
    schema = {"properties": {"due": {"type": "string", "format": "date-time", "title": "部门最终回复时限"},
                             "note": {"type": "string", "title": "备注"}}}
    posted = {"due": "2026-12-07T10:00", "note": ""}
    (due, _note) = fields_of(schema, posted, {"note": "required"}, "zh_CN")
    assert due.value == "2026-12-07T10:00"
    assert coerce(schema, {"due": due.value})["due"] == "2026-12-07T10:00:00+08:00"
    (stored, _note) = fields_of(schema, {"due": "2026-12-07T02:00:00+00:00"}, {}, "zh_CN")
    assert stored.value == "2026-12-07T10:00"


def test_typing_on_a_step_someone_else_holds_is_shown_back(app, ctx):
    session, engine = ctx
    instance = engine.start(session, "complaint", INTAKE, actor=user_by_name(session, "agent1"), now=T0)
    session.commit()
    (task,) = open_tasks_of_instance(session, instance.id)
    agent2 = Browser(app, "agent2")
    quiet = agent2.get(f"/tasks/{task.id}").get_data(as_text=True)
    assert 'id="typed-back"' not in quiet
    answer = agent2.post(f"/tasks/{task.id}/complete", {"resolution": "answer_now", "first_reply": "乙的答复：已查明"})
    page = answer.get_data(as_text=True)
    assert answer.status_code == 409 and 'id="typed-back"' in page
    box = page.split('id="typed-back"', 1)[1].split("</div>", 1)[0]
    assert "乙的答复：已查明" in box and "您填写的内容" in box
    assert "answer_now" not in box  # a choice is shown by its label


def test_billings_refusal_is_the_notice_on_the_callback_step(app, client, token, billing):
    from datetime import UTC, datetime, timedelta

    from tests.web.test_business_acceptance import Desk, _simulate

    desk = Desk(app, client, token, billing)
    desk.identify()
    desk.take({"request_type": "feature_off", "feature": "three_way_calling"})
    now = datetime.now(UTC)
    desk.run_jobs(now)
    _simulate(billing, now)
    desk.run_jobs(now + timedelta(seconds=20))
    task = desk.task("callback")
    page = Browser(app, "agent1").get(f"/tasks/{task['id']}").get_data(as_text=True)
    assert _notices(page) == [("warn", "计费系统未能办理 三方通话未开通，无需关闭")]
    assert "billing_result" not in page
