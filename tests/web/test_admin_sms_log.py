"""The SMS log speaks to the administrator in words: a text's title, not its template code; a
failure's reason, not the connector's English message; what became of a customer's reply."""

from __future__ import annotations

from engine import outbox, peer_events
from engine.clock import utcnow


def _login(client, username: str) -> None:
    client.post("/logout")
    assert client.post("/login", data={"username": username, "password": "kefu-demo"}).status_code == 302


def test_the_sms_log_shows_words_not_codes(app, ctx, client):
    session, _engine = ctx
    now = utcnow()
    job = outbox.enqueue(session, "sms.send", {"to": "13800000001", "template": "complaint_accepted"},
                         key="log-1", now=now)
    session.flush()
    outbox.open_incident(session, job, outbox.REFUSED, "'139-0000-1234' is not a phone number", now)
    for n, outcome in enumerate(["delivered to case CP20261206000001", "no case waits for a reply from this number",
                                 "failed: case 7 is being changed"]):
        session.add(peer_events.InboundEvent(kind="sms_mo", ref=f"mo-{n}", payload={"from": "13800000002", "text": "1"},
                                             received_at=now, processed_at=now, outcome=outcome))
    session.commit()

    _login(client, "admin")
    page = client.get("/admin/sms", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert "投诉受理通知" in page and "complaint_accepted" not in page
    assert "号码不是有效的电话号码" in page
    assert "is not a phone number" not in page
    assert "已交给工单 CP20261206000001" in page
    assert "没有工单在等待该号码的回复" in page
    assert "delivered to case" not in page and "no case waits" not in page


def test_the_texts_page_names_values_without_engine_words(client):
    _login(client, "admin")
    page = client.get("/admin/sms/templates", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    assert "Jinja" not in page
    assert "双花括号" in page
