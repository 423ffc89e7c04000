"""A case's SMS events say which text went to whom: a text to a member of staff (an urge, an
alert) is "delivered to 班长 张敏", not "delivered to the customer's handset"; a sent text names
its template's title; the customer 360 never shows a reason code it does not know."""

from __future__ import annotations

import re

from engine import outbox, peer_events
from engine.models import record_event
from engine.people import user_by_name
from tests.conftest import INTAKE, T0
from tests.web.test_pages import Browser


def test_sms_events_name_the_text_and_the_recipient(app, ctx):
    session, engine = ctx
    instance = engine.start(session, "complaint", INTAKE, actor=user_by_name(session, "agent1"), now=T0)
    session.commit()
    leader = user_by_name(session, "leader1")
    to_customer = outbox.enqueue(session, "sms.send", {"to": INTAKE["contact_phone"], "template": "complaint_accepted",
                                                       "context": {}}, key="t-customer", now=T0, instance_id=instance.id)
    to_leader = outbox.enqueue(session, "sms.send", {"to": leader.phone, "text": "工单即将超时，请尽快处理该投诉工单"},
                               key="t-leader", now=T0, instance_id=instance.id)
    session.flush()
    for job, ref in ((to_customer, "0000000101"), (to_leader, "0000000102")):
        record_event(session, "job_done", at=T0, instance_id=instance.id, message="sms.send", data={"job_id": job.id})
        peer_events.add_references(session, job, "smpp", [ref], "submitted", T0)
        peer_events.update_reference(session, "smpp", ref, "delivered", T0)
    session.commit()

    page = Browser(app, "agent1").get(f"/cases/{instance.id}").get_data(as_text=True)
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", re.sub(r"<script\b.*?</script>", " ", page, flags=re.DOTALL)))
    assert "发送短信“投诉受理通知”给客户：已完成" in text
    assert "发送短信“工单即将超时，请尽快处理该投诉工…”给班长 张敏：已完成" in text
    assert text.count("短信已送达客户手机") == 1  # the customer's text only
    assert "“工单即将超时，请尽快处理该投诉工…”，收件人：班长 张敏" in text


def test_the_360_page_asks_for_the_reason_instead_of_showing_an_unknown_code(app, billing):
    agent = Browser(app, "agent1")
    page = agent.get("/customers/13800000001?reason=consult").get_data(as_text=True)
    assert "consult" not in re.sub(r'value="[^"]*"|<[^>]+>', " ", page)
    assert 'name="reason"' in page  # the lookup form, asking why
    known = agent.get("/customers/13800000001?reason=enquiry").get_data(as_text=True)
    assert "电话咨询" in known or "咨询" in known
