"""Issue 14's report and urging gaps: the complaint's city from billing and city transfers,
reports in the page's language, XLSX for every report, monthly grouping, alert rule scopes
chosen from a list, and the SLA escalation column's name."""

from __future__ import annotations

from datetime import timedelta

from tests.conftest import T0
from tests.web.test_reports import Loop, _facts, _open, _user, loops, month  # noqa: F401  (fixtures)
from tests.web.test_service_reports import acceptance, desk  # noqa: F401  (fixtures)


# -- 1. the city: billing's home city at intake, the city centre's after a transfer -----------
def test_the_city_is_billings_home_city_and_follows_a_city_transfer(billing, ctx, client, token):
    from connectors.billing.demo_data import VIP_NUMBER
    from processes.city_transfer import transfer_to_city

    session, engine = ctx
    home = billing.home_city(VIP_NUMBER)
    assert home and billing.home_city("19900000000") is None
    known = Loop(session, engine, customer_phone=VIP_NUMBER)
    unknown = Loop(session, engine, customer_phone="19900000000")
    assert (_city_soon(session, known.id), _facts(session, unknown.id).city) == (home, None)
    transfer_to_city(session, _open(session, known.id, "triage").id, "hz_city", "需要上门测试",
                     actor=_user(session, "agent1"), now=T0 + timedelta(minutes=5))
    session.commit()
    assert _facts(session, known.id).city == "杭州"
    body = client.get("/api/v1/reports/complaints?from=2026-11-01&to=2026-11-30&by=city",
                      headers=token("manager1")).get_json()
    assert {(i["key"], i["label"], i["received"]) for i in body["items"]} == {(None, "地市未知", 1), ("杭州", "杭州", 1)}



def _city_soon(session, instance_id: int, seconds: float = 5.0) -> str | None:
    """The case's city once billing's answer is in (intake does not wait for it)."""
    import time

    deadline = time.monotonic() + seconds
    while (city := _facts(session, instance_id).city) is None and time.monotonic() < deadline:
        session.rollback()  # end the read (on SQLite it holds the lock the late write waits for)
        time.sleep(0.05)
    return city


def test_intake_does_not_wait_for_a_slow_billing_and_the_city_follows(billing, app, ctx):
    """Billing answers after the intake step committed: the step did not wait, the city is written
    on its own when the answer comes."""
    import time

    from connectors.billing.demo_data import VIP_NUMBER
    from processes.complaint_facts import ComplaintFactsListener

    session, engine = ctx
    (listener,) = [x for x in engine.listeners if isinstance(x, ComplaintFactsListener)]
    fast, answered = listener.home_city, []

    def slow(phone: str) -> str | None:
        time.sleep(1.0)
        answered.append(phone)
        return fast(phone)

    listener.home_city = slow
    try:
        started = time.monotonic()
        loop = Loop(session, engine, customer_phone=VIP_NUMBER)
        assert time.monotonic() - started < 0.9 and not answered  # the step did not wait for billing
        assert _facts(session, loop.id).city is None
        assert _city_soon(session, loop.id) == billing.home_city(VIP_NUMBER)
    finally:
        listener.home_city = fast


def test_kefu_backfill_cities_fills_older_complaints(billing, app, ctx):
    from connectors.billing.demo_data import VIP_NUMBER
    from processes.city_transfer import transfer_to_city

    session, engine = ctx
    older = [Loop(session, engine, customer_phone=VIP_NUMBER) for _ in range(2)]
    transfer_to_city(session, _open(session, older[1].id, "triage").id, "hz_city", "需要上门测试",
                     actor=_user(session, "agent1"), now=T0 + timedelta(minutes=5))
    from sqlalchemy import update

    from processes.complaint_facts import ComplaintFact

    session.execute(update(ComplaintFact).values(city=None))  # as recorded before the city was kept
    session.commit()
    result = app.test_cli_runner().invoke(args=["kefu", "backfill-cities"])
    assert result.exit_code == 0, result.output
    assert "2 from billing's home city, 1 from city transfers" in result.output
    assert [_facts(session, loop.id).city for loop in older] == [billing.home_city(VIP_NUMBER), "杭州"]
    again = app.test_cli_runner().invoke(args=["kefu", "backfill-cities"])
    assert "0 from billing's home city, 0 from city transfers" in again.output

# -- 3, 5, 7. the language, the month, the SLA alerts' column --------------------------------
def _complaints(client, token, query: str, user: str = "manager1"):
    return _fresh(client).get(f"/api/v1/reports/complaints?{query}", headers=token(user))


def _fresh(client):
    """The client, with the locale chosen anew: the ``ctx`` fixture's app context, which every
    request shares, would otherwise keep the first request's language (flask-babel caches it there)."""
    from flask_babel import refresh

    refresh()
    return client


def test_the_complaint_report_follows_the_language_in_the_api_csv_and_xlsx(month, client, token):  # noqa: F811  (the imported fixtures)
    period = "from=2026-11-01&to=2026-11-30"
    chinese = _complaints(client, token, f"{period}&by=category").get_json()
    english = _complaints(client, token, f"{period}&by=category&lang=en").get_json()
    assert [i["label"] for i in chinese["items"]] == ["资费", "网络/障碍申告"]
    assert [i["label"] for i in english["items"]] == ["Tariffs and charges", "Network / fault report"]
    assert english["totals"] == chinese["totals"]  # only the words change
    departments = {i["key"]: i["label"] for i in _complaints(client, token, f"{period}&by=department&lang=en")
                   .get_json()["items"]}
    assert departments[None] == "Not dispatched (answered at once or awaiting dispatch)"
    assert "网络部" not in departments.values() and "计费部" not in departments.values()
    csv_en = _complaints(client, token, f"{period}&by=city&format=csv&lang=en").data.decode("utf-8")
    head, first = csv_en.lstrip("\ufeff").splitlines()[:2]
    assert head.startswith("Code,City (prefecture),Received (count),Cases closed")
    assert "Overdue alerts raised" in head and "City unknown" in first and "合计" not in csv_en
    csv_zh = _complaints(client, token, f"{period}&by=city&format=csv").data.decode("utf-8")
    assert csv_zh.lstrip("\ufeff").startswith("编码,地市,受理量,办结量") and "超时告警次数" in csv_zh
    client.post("/login", data={"username": "manager1", "password": "kefu-demo"})
    page = _fresh(client).get(f"/reports/complaints?{period}&by=channel&lang=en").get_data(as_text=True)
    assert "Intake channel" in page and "First reply in time rate" in page and "Phone" in page
    assert "受理渠道" not in page and "首次答复及时率" not in page and "电话" not in page
    sheet = _sheet(_fresh(client).get(f"/reports/complaints.xlsx?{period}&by=channel&lang=en").data)
    assert sheet[0][0] == "Complaint statistics by Intake channel" and sheet[1][:3] == ("Code", "Intake channel",
                                                                                        "Received (count)")


def _sheet(content: bytes) -> list[tuple]:
    import io

    from openpyxl import load_workbook

    return list(load_workbook(io.BytesIO(content)).active.iter_rows(values_only=True))


def test_the_complaint_report_by_month_with_its_drill_down(month, loops, client, token):  # noqa: F811  (the imported fixtures)
    loops(category="network", channel="phone", at=T0 + timedelta(days=10))  # 3 December
    body = _complaints(client, token, "from=2026-11-01&to=2026-12-31&by=month").get_json()
    assert [(i["key"], i["label"], i["received"], i["closed"]) for i in body["items"]] == [
        ("2026-11", "2026-11", 4, 2), ("2026-12", "2026-12", 1, 0)]
    assert body["totals"]["received"] == 5
    # The month is clipped to the period: December's first two days only count nothing.
    assert _complaints(client, token, "from=2026-11-24&to=2026-12-02&by=month").get_json()["items"] == [
        {**body["items"][0], "received": 2, "closed": 0, "first_reply_in_time": 0, "handled_in_time": 0,
         "replied": 0, "overdue": 1, "satisfied": 0}]
    client.post("/login", data={"username": "manager1", "password": "kefu-demo"})
    page = _fresh(client).get("/reports/complaints?from=2026-11-01&to=2026-12-31&by=month").get_data(as_text=True)
    assert "<option value=\"month\" selected>月份</option>" in page
    listing = client.get("/cases?process=complaint&measure=received&by=month&key=2026-12"
                         "&from=2026-11-01&to=2026-12-31").get_data(as_text=True)
    assert listing.count('href="/cases/') == 1
    bad = _complaints(client, token, "from=2026-11-01&to=2026-12-31&by=week")
    assert bad.status_code == 422 and "month" in bad.get_json()["fields"]["by"]


# -- 4, 5, 3. the other services' reports: XLSX, by month, in English ------------------------
def test_acceptance_report_as_xlsx_by_month_and_in_english(acceptance, client, token):  # noqa: F811  (the imported fixtures)
    from tests.web.test_service_reports import _today

    today = _today()
    period = f"from={today[:8]}01&to={today}"
    by_month = _fresh(client).get(f"/api/v1/reports/acceptance?{period}&by=month", headers=token("manager1"))
    assert [(i["key"], i["received"], i["done"]) for i in by_month.get_json()["items"]] == [(today[:7], 5, 1)]
    english = _fresh(client).get(f"/api/v1/reports/acceptance?{period}&by=kind&lang=en&format=csv",
                                 headers=token("manager1")).data.decode("utf-8")
    assert english.lstrip("\ufeff").startswith("Code,Request type,Received (count),Finished")
    assert "No request taken (identification failed or refused)" in english and "开通功能" not in english
    client.post("/login", data={"username": "manager1", "password": "kefu-demo"})
    page = _fresh(client).get(f"/reports/acceptance?{period}&by=kind").get_data(as_text=True)
    assert f'href="/reports/acceptance.xlsx?from={today[:8]}01&amp;to={today}&amp;by=kind"' in page
    response = _fresh(client).get(f"/reports/acceptance.xlsx?{period}&by=kind")
    assert response.status_code == 200 and response.mimetype.endswith("spreadsheetml.sheet")
    rows = _sheet(response.data)
    assert rows[0][0] == "业务受理统计（按业务类型）"
    assert rows[1][:4] == ("编码", "业务类型", "受理量", "已结束") and rows[1][-2:] == ("办理成功率(%)", "拒绝受理率(%)")
    assert rows[-1][:3] == (None, "合计", 5) and rows[-1][-2] == 20.0
    rows_en = _sheet(_fresh(client).get(f"/reports/acceptance.xlsx?{period}&by=month&lang=en").data)
    assert rows_en[0][0] == "Business acceptance statistics by Month" and rows_en[2][:3] == (today[:7], today[:7], 5)
    assert _fresh(client).get("/reports/dunning.xlsx?from=2026-11-01&to=2026-11-30&by=kind").status_code == 200
    assert _fresh(client).get("/reports/callbacks.xlsx?from=2026-11-30&to=2026-11-01&by=kind").status_code == 422


# -- 6. an alert rule's scope is a department or category from the list ----------------------
def test_alert_rule_scope_is_chosen_from_departments_and_categories(ctx, client, token):
    url = "/api/v1/reports/alert-rules"
    rule = {"name": "网络部超时", "metric": "overdue", "comparison": "gt", "threshold": 3, "period": "day",
            "scope": "department", "scope_value": "netwrk"}
    bad = client.post(url, headers=token("manager1"), json=rule)
    assert bad.status_code == 422
    assert "netwrk" in bad.get_json()["fields"]["scope_value"] and "网络部（network）" in bad.get_json()["fields"]["scope_value"]
    good = client.post(url, headers=token("manager1"), json={**rule, "scope_value": "network"})
    assert good.status_code == 201 and good.get_json()["description"] == "当日 责任部门“网络部” 超时工单数 高于 3"
    category = client.patch(f"{url}/{good.get_json()['id']}", headers=token("manager1"),
                            json={"scope": "category", "scope_value": "billing"})
    assert category.status_code == 200 and "投诉类别“资费”" in category.get_json()["description"]
    assert client.patch(f"{url}/{good.get_json()['id']}", headers=token("manager1"),
                        json={"scope_value": "network_dept"}).status_code == 422
    client.post("/login", data={"username": "manager1", "password": "kefu-demo"})
    form = client.get("/reports/alert-rules/new").get_data(as_text=True)
    assert '<select id="f-scope_value" name="scope_value"' in form
    assert '<optgroup label="责任部门">' in form and '<option value="network" >网络部</option>' in form
    refused = client.post("/reports/alert-rules/new", data={
        "name": "x", "metric": "overdue", "scope": "category", "scope_value": "nope", "comparison": "gt",
        "threshold": "1", "period": "day", "min_cases": "1", "active": "1"})
    assert refused.status_code == 422 and "“nope”不是已知的投诉类别" in refused.get_data(as_text=True)
