"""Case pages speak the user's language: the history as Chinese sentences (texts sent, delivered,
failing and the reason in words, incidents in words), the case data from the forms' labels, and
no internal key, Python dict, JSON or English event code on the page."""

from __future__ import annotations

import re

from engine import outbox, peer_events
from engine.models import record_event
from engine.people import user_by_name
from processes.tick import tick
from tests.conftest import INTAKE, T0

RAW = [re.compile(p) for p in (r"\{'", r'\{"', r"\bjob_done\b", r"\bjob_retry\b", r"\bsmpp_\w+",
                               r"\bsms\.send\b", r"\btask_opened\b", r"\bincident\b", r"\bmessage_received\b")]


def _page(client, token_header, instance_id):
    client.post("/login", data={"username": "agent1", "password": "kefu-demo"})
    return client.get(f"/cases/{instance_id}", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)


def test_the_case_page_tells_the_history_in_words(app, ctx, client, token):
    session, engine = ctx
    instance = engine.start(session, "complaint", INTAKE, actor=user_by_name(session, "agent1"), now=T0)
    session.commit()
    tick(session, engine, T0)  # the acceptance text: no SMS centre configured → retried
    (job,) = [j for j in outbox.jobs_of_instance(session, instance.id) if j.operation == "sms.send"]
    outbox.open_incident(session, job, outbox.REFUSED, "'139-0000-1234' is not a phone number", T0)
    peer_events.add_references(session, job, "smpp", ["0000000001"], "submitted", T0)
    peer_events.update_reference(session, "smpp", "0000000001", "delivered", T0)
    record_event(session, "message_received", at=T0, instance_id=instance.id, message="sms_reply",
                 data={"text": "1", "choice": "1"})
    record_event(session, "something_new", at=T0, instance_id=instance.id, message="新的事件")
    session.commit()

    html = _page(client, token, instance.id)
    visible = re.sub(r"<script\b.*?</script>", " ", html, flags=re.DOTALL)  # data for the diagram viewer
    text = re.sub(r"<[^>]+>", " ", visible)
    for pattern in RAW:
        assert not pattern.search(text), pattern.pattern
    for words in ("发送短信未成功，稍后自动重试", "尚未配置与该系统的连接", "发送短信失败，已转管理员处理",
                  "号码不是有效的电话号码", "短信已送达客户手机", "客户已短信回复", "新的事件"):
        assert words in text, words
    assert "王先生" in text  # the complainant's name, under its form label


def test_error_pages_speak_chinese_and_hide_internal_ids(app, client):
    client.post("/login", data={"username": "agent1", "password": "kefu-demo"})
    page = client.get("/tasks/99999")
    text = page.get_data(as_text=True)
    assert page.status_code == 404
    assert "找不到该内容" in text and "task 99999" not in text and "not found" not in text
    assert "错误代码 404" in text
    english = client.get("/lang/en", follow_redirects=True) and client.get("/tasks/99999").get_data(as_text=True)
    assert "Not found" in english


def test_a_step_held_by_someone_else_is_read_only_and_a_refusal_keeps_the_typing(app, ctx):
    from engine.models import open_tasks_of_instance
    from tests.web.test_pages import Browser

    session, engine = ctx
    instance = engine.start(session, "complaint", INTAKE, actor=user_by_name(session, "agent1"), now=T0)
    session.commit()
    (task,) = open_tasks_of_instance(session, instance.id)
    assert task.assignee_id == user_by_name(session, "agent1").id
    agent2 = Browser(app, "agent2")
    page = agent2.get(f"/tasks/{task.id}").get_data(as_text=True)
    assert "处理中，您可以查看，但不能提交" in page and f'action="/tasks/{task.id}/complete"' not in page
    # Submitted anyway (from a stale page): refused in words, no English, no error page.
    answer = agent2.post(f"/tasks/{task.id}/complete", {"resolution": "answer_now", "first_reply": "乙的答复"})
    assert answer.status_code == 409
    assert "该环节由他人处理中，您只能查看。" in answer.get_data(as_text=True)

    # The holder submits while the case is suspended: refused, and the typing is still in the form.
    engine.suspend(session, instance.id, "等待客户补充材料", actor=user_by_name(session, "leader1"), now=T0)
    session.commit()
    agent1 = Browser(app, "agent1")
    answer = agent1.post(f"/tasks/{task.id}/complete", {"resolution": "answer_now", "first_reply": "甲的答复"})
    text = answer.get_data(as_text=True)
    assert answer.status_code == 409
    assert "工单已挂起，请先恢复。" in text and "甲的答复" in text
