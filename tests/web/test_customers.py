"""Customer 360 (客户资料查询): the API contract, masking, the audit line of every lookup, the
pages in Chinese, the billing database down, and the demo billing simulator in the tick."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from connectors.billing.demo_data import ARREARS_NUMBER, BLACKLISTED_NUMBER, VIP_NUMBER
from connectors.billing.gateway import BillingGateway
from connectors.billing.schema import customers, service_orders, subscriptions
from tests.conftest import INTAKE, T0

UNKNOWN = "13899990000"  # the reserved block: never in demo data


def _login(client, username: str) -> None:
    response = client.post("/login", data={"username": username, "password": "kefu-demo"})
    assert response.status_code == 302


def _lookups(app) -> list:
    from engine.models import AuditEvent
    from web.extensions import db

    with app.app_context():
        return list(db.session.scalars(select(AuditEvent).where(AuditEvent.kind == "customer_lookup")
                                       .order_by(AuditEvent.id)))


def _secrets(billing, phone: str) -> tuple[str, str]:
    """The customer's full ID number and the service password hash (must never leave Kefu)."""
    with billing.connect() as conn:
        row = conn.execute(select(customers.c.id_number, subscriptions.c.service_password_hash)
                           .join(subscriptions, subscriptions.c.customer_id == customers.c.id)
                           .where(subscriptions.c.phone == phone)).one()
    return row.id_number, row.service_password_hash


def test_api_vip_customer_masked_with_cases(app, client, token, billing):
    from web.extensions import db

    with app.app_context():  # a complaint of this number in Kefu
        from engine.people import user_by_name

        app.extensions["kefu_engine"].start(db.session, "complaint", {**INTAKE, "customer_phone": VIP_NUMBER,
                                                                      "contact_phone": VIP_NUMBER},
                                            actor=user_by_name(db.session, "agent1"), now=T0)
        db.session.commit()
    response = client.get(f"/api/v1/customers/{VIP_NUMBER}?reason=complaint", headers=token("agent1"))
    assert response.status_code == 200
    body = response.get_json()
    assert body["customer"]["level"] == "vip" and body["customer"]["level_label"] == "VIP客户"
    assert body["account"]["arrears_fen"] == 0 and body["blacklist"] is None
    assert 1 <= len(body["bills"]) <= 3 and all("items" in b for b in body["bills"])
    assert "call_details" not in body
    assert [c["process_key"] for c in body["cases"]] == ["complaint"]
    assert set(body["cases"][0]) >= {"id", "reference", "process_key", "status", "created_at"}
    id_number, password_hash = _secrets(billing, VIP_NUMBER)
    text = response.get_data(as_text=True)
    assert id_number not in text and password_hash not in text and "scrypt$" not in text
    assert body["customer"]["id_number_masked"].startswith(id_number[:4])
    assert "*" in body["customer"]["id_number_masked"]
    events = _lookups(app)
    assert len(events) == 1
    event = events[0]
    assert event.actor == "agent1" and event.instance_id is None
    assert event.data["phone_masked"] == "138****0001" and event.data["reason"] == "complaint"
    assert event.data["outcome"] == "found" and VIP_NUMBER not in event.message
    assert id_number not in str(event.data) + event.message


def test_api_arrears_blacklist_and_call_details(client, token, billing):
    arrears = client.get(f"/api/v1/customers/{ARREARS_NUMBER}", headers=token("leader1")).get_json()
    assert arrears["account"]["arrears_fen"] > 0
    listed = client.get(f"/api/v1/customers/{BLACKLISTED_NUMBER}", headers=token("manager1")).get_json()
    assert listed["blacklist"]["reason_label"] == "恶意欠费"
    body = client.get(f"/api/v1/customers/{VIP_NUMBER}?month=2026-11&limit=5",
                      headers=token("bill1")).get_json()
    details = body["call_details"]
    assert details["month"] == "2026-11" and 0 < len(details["items"]) <= 5
    assert all(item["started_at"] >= "2026-10-31T16:00" for item in details["items"])  # Beijing month


@pytest.mark.parametrize(("path", "user", "status", "code"), [
    (f"/api/v1/customers/{UNKNOWN}", "agent1", 404, "not_found"),
    ("/api/v1/customers/12ab", "agent1", 400, "bad_request"),
    (f"/api/v1/customers/{VIP_NUMBER}?month=2026-13", "agent1", 400, "bad_request"),
    (f"/api/v1/customers/{VIP_NUMBER}", "analyst1", 403, "forbidden"),
    (f"/api/v1/customers/{VIP_NUMBER}", None, 401, "unauthorized"),
])
def test_api_errors(app, client, token, billing, path, user, status, code):
    response = client.get(path, headers=token(user) if user else {})
    assert response.status_code == status
    assert response.get_json()["error"] == code
    # Only a well-formed lookup by an entitled user is a lookup (the unknown number is recorded).
    assert [e.data["outcome"] for e in _lookups(app)] == (["not_found"] if status == 404 else [])


def test_api_reason_defaults_to_api(app, client, token, billing):
    client.get(f"/api/v1/customers/{VIP_NUMBER}?call=7", headers=token("agent2"))
    event = _lookups(app)[0]
    assert (event.actor, event.data["reason"], event.data["call"], event.data["channel"]) == \
        ("agent2", "api", 7, "api")


def test_page_in_chinese_with_actions(app, client, billing):
    _login(client, "agent1")
    response = client.get(f"/customers/{VIP_NUMBER}?reason=enquiry&month=2026-11")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    for text in ("王建国", "VIP客户", "余额", "欠费", "近三个月账单", "通话详单", "缴费记录", "来电咨询",
                 "新建投诉", "业务受理", "月租费"):
        assert text in html, text
    assert "/cases/new/complaint?customer_phone=13800000001" in html
    assert "/cases/new/business_acceptance?customer_phone=13800000001" in html
    id_number, password_hash = _secrets(billing, VIP_NUMBER)
    assert id_number not in html and password_hash not in html
    rows = re.findall(r"<tr><td>(\d{4}-\d\d)-\d\d \d\d:\d\d</td><td>(主叫|被叫|发短信|收短信|上网)", html)
    assert rows and {month for month, _kind in rows} == {"2026-11"}  # November in Beijing time
    assert _lookups(app)[0].data["reason"] == "enquiry"


def test_page_screen_pop_reason_and_call_links(app, client, billing):
    _login(client, "agent1")
    html = client.get(f"/customers/{ARREARS_NUMBER}?call=42").get_data(as_text=True)
    assert "来电弹屏" in html and "欠费" in html
    assert "customer_phone=13800000002&amp;call=42" in html
    event = _lookups(app)[0]
    assert event.data["reason"] == "inbound_call" and event.data["call"] == 42


def test_page_call_details_paging(app, client, billing, monkeypatch):
    import web.customers

    monkeypatch.setattr(web.customers, "CALLS_PER_PAGE", 3)
    _login(client, "agent1")
    html = client.get(f"/customers/{VIP_NUMBER}?reason=enquiry&month=2026-11").get_data(as_text=True)
    first = _call_rows(html)
    assert len(first) == 3 and "page=2" in html and "page=0" not in html
    second = client.get(f"/customers/{VIP_NUMBER}?reason=enquiry&month=2026-11&page=2").get_data(as_text=True)
    assert len(_call_rows(second)) == 3 and "page=1" in second and "page=3" in second
    assert first[-1] <= _call_rows(second)[0]  # oldest first, pages continue


def _call_rows(html: str) -> list[str]:
    table = html.split('class="list compact call-details"', 1)[1].split("</table>", 1)[0]
    return re.findall(r"<tr><td>(\d{4}-\d\d-\d\d \d\d:\d\d)</td>", table)


def test_lookup_form_asks_for_reason(app, client, billing):
    _login(client, "agent1")
    assert "查询原因" in client.get("/customers").get_data(as_text=True)
    missing = client.get(f"/customers?phone={VIP_NUMBER}")
    assert missing.status_code == 400
    done = client.get("/customers?phone=138-0000-0001&reason=callback")
    assert done.status_code == 302 and done.headers["Location"].endswith(
        f"/customers/{VIP_NUMBER}?reason=callback")
    # Without a reason the customer page asks for one and shows nothing (no lookup happened).
    asked = client.get(f"/customers/{VIP_NUMBER}").get_data(as_text=True)
    assert "王建国" not in asked and _lookups(app) == []


def test_page_errors(app, client, billing):
    _login(client, "agent1")
    unknown = client.get(f"/customers/{UNKNOWN}?reason=enquiry")
    assert unknown.status_code == 404 and "查无此号码" in unknown.get_data(as_text=True)
    bad = client.get("/customers/12ab?reason=enquiry")
    assert bad.status_code == 400 and "号码格式不正确" in bad.get_data(as_text=True)
    _login(client, "analyst1")
    assert client.get(f"/customers/{VIP_NUMBER}?reason=enquiry").status_code == 403


@pytest.mark.parametrize("url", ["directory", "postgresql+psycopg://kefu@127.0.0.1:1/kefu"])
def test_billing_down_is_503_with_a_clear_message(app, client, token, tmp_path, url):
    if url == "directory":
        url = f"sqlite:///{tmp_path}"  # a directory: SQLite cannot open it
    app.extensions["kefu_billing"] = BillingGateway(url, timeout=2)
    api = client.get(f"/api/v1/customers/{VIP_NUMBER}", headers=token("agent1"))
    assert api.status_code == 503 and api.get_json()["error"] == "billing_unavailable"
    assert "Traceback" not in api.get_data(as_text=True)
    _login(client, "agent1")
    page = client.get(f"/customers/{VIP_NUMBER}?reason=enquiry")
    assert page.status_code == 503 and "计费系统暂时不可用" in page.get_data(as_text=True)
    assert [e.data["outcome"] for e in _lookups(app)] == ["billing_unavailable"] * 2


def test_lookup_audit_page_for_managers(app, client, token, billing):
    client.get(f"/api/v1/customers/{VIP_NUMBER}?reason=complaint", headers=token("agent1"))
    _login(client, "agent1")
    assert client.get("/customers/audit").status_code == 403
    _login(client, "manager1")
    html = client.get("/customers/audit").get_data(as_text=True)
    assert "138****0001" in html and "agent1" in html and "投诉处理" in html


def _order(billing) -> None:
    billing.submit_order("h1-test-1", VIP_NUMBER, "feature_on", {"feature": "call_waiting"}, requested_at=T0)


def _status(billing) -> str:
    with billing.connect() as conn:
        return conn.scalar(select(service_orders.c.status).where(service_orders.c.idempotency_key == "h1-test-1"))


def test_tick_runs_demo_billing_simulator_in_demo_mode(app, ctx, billing):
    from processes.tick import tick
    from web.demo_billing import billing_simulator

    session, engine = ctx
    _order(billing)
    simulator = billing_simulator(app)
    assert simulator is not None
    assert tick(session, engine, T0, billing_simulator=simulator).billing_moved == 1
    assert _status(billing).strip() == "PROCESSING"
    report = tick(session, engine, T0 + timedelta(seconds=11), billing_simulator=simulator)
    assert report.billing_moved == 1 and _status(billing).strip() in ("DONE", "REJECTED")


def test_no_simulator_nor_seeding_for_a_real_billing_database(app, ctx, billing):
    from processes.tick import tick
    from web.demo_billing import billing_simulator, seed_demo_billing

    session, engine = ctx
    app.config["KEFU_BILLING_DEMO"] = False  # KEFU_BILLING_URL configured
    _order(billing)
    assert billing_simulator(app) is None
    tick(session, engine, T0 + timedelta(minutes=5), billing_simulator=billing_simulator(app))
    assert _status(billing).strip() == "NEW"
    assert seed_demo_billing(app) == {}


def test_no_simulator_before_the_demo_database_is_seeded(app):
    from web.demo_billing import billing_simulator

    assert billing_simulator(app) is None  # demo mode, but no demo marker (no tables even)
