"""The roaming complaint transfer statistics (漫游投诉转递统计): ``GET /api/v1/reports/roaming`` by
partner / direction / day, CSV and XLSX with Chinese headers, the page with its chart, and every
figure down to its cases — over transfers made through the real exchange (signed dispatches and
receipts on one deployment, a national escalation)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from engine.clock import LOCAL_TZ
from tests.web.test_roaming import INTAKE, SECRET, _dispatch, _make_app, _partners_file, _signed, _token


@pytest.fixture
def yn(tmp_path, monkeypatch):
    """One deployment (YN) with a partner province (GD, not running) and the national centre."""
    monkeypatch.setenv("KEFU_DATA_DIR", str(tmp_path / "data"))
    partners = _partners_file(tmp_path / "partners.json", [
        {"code": "GD", "name": "广东联通", "url": "http://127.0.0.1:9", "secret": SECRET, "prefixes": ["1300020"]},
        {"code": "QG", "name": "全国客服中心", "url": "http://127.0.0.1:9", "secret": "nc-secret", "national": True}])
    app = _make_app(tmp_path / "yn", "YN", partners)
    yield app
    from web.extensions import db

    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def _receipt(serial: str, replied_at: datetime) -> dict[str, str]:
    return {"company_code": "GD", "dispatch_company_code": "YN", "dispatch_serial_no": serial,
            "responder_name": "坐席 李明", "responder_phone": "13000200999", "result": "已为客户处理",
            "replied_at": replied_at.isoformat()}


def _exchange(client) -> dict[str, int]:
    """Three dispatches sent to GD (answered in time, answered late, one failing), one received
    from GD, one complaint escalated to the national centre. Returns the cases by name."""
    agent = _token(client)
    cases = {}
    for name in ("in_time", "late", "failing"):
        started = client.post("/api/v1/processes/roaming_transfer/instances", json={"data": INTAKE}, headers=agent)
        assert started.status_code == 201, started.get_json()
        cases[name] = started.get_json()["id"]
    references = {name: client.get(f"/api/v1/instances/{cases[name]}", headers=agent).get_json()["reference"]
                  for name in cases}
    now = datetime.now(UTC)
    assert _signed(client, "/api/v1/roaming/receipts", _receipt(references["in_time"], now)).status_code == 200
    late = _receipt(references["late"], now + timedelta(days=4))  # after the 3-day final-reply deadline
    assert _signed(client, "/api/v1/roaming/receipts", late).status_code == 200
    assert _signed(client, "/api/v1/roaming/dispatches", _dispatch("GD20261206000001")).status_code == 200
    complaint = client.post("/api/v1/processes/complaint/instances",
                            json={"data": {**INTAKE, "customer_phone": "13800000009"}}, headers=agent).get_json()
    cases["escalated"] = complaint["id"]
    escalated = client.post(f"/api/v1/instances/{complaint['id']}/national-escalation",
                            json={"reason": "涉及多省"}, headers=_token(client, "manager1"))
    assert escalated.status_code in (200, 201), escalated.get_json()
    return cases


def _fail_dispatch(app, instance_id: int) -> None:
    """The dispatch's job failed for good (the partner refused it): the tick marks the transfer so."""
    from processes.roaming import FAILED, RoamingTransfer
    from web.extensions import db

    with app.app_context():
        row = db.session.scalar(select(RoamingTransfer).where(RoamingTransfer.instance_id == instance_id))
        row.status = FAILED
        db.session.commit()


def _today() -> str:
    return datetime.now(UTC).astimezone(LOCAL_TZ).date().isoformat()


def test_the_figures_by_partner_direction_and_day(yn):
    client = yn.test_client()
    cases = _exchange(client)
    _fail_dispatch(yn, cases["failing"])
    manager, day = _token(client, "manager1"), _today()

    by_partner = client.get(f"/api/v1/reports/roaming?from={day}&to={day}&by=partner", headers=manager)
    assert by_partner.status_code == 200, by_partner.get_json()
    items = {item["key"]: item for item in by_partner.get_json()["items"]}
    assert set(items) == {"GD", "QG"}
    gd = items["GD"]
    assert gd["label"] == "广东联通"
    assert (gd["transferred"], gd["answered"], gd["answered_in_time"], gd["overdue"], gd["failed"], gd["national"]) \
        == (4, 2, 1, 1, 1, 0)  # three sent + one received; the late receipt is the overdue one
    assert (items["QG"]["label"], items["QG"]["transferred"], items["QG"]["national"]) == ("全国客服中心", 1, 1)
    assert by_partner.get_json()["totals"]["transferred"] == 5

    by_direction = client.get(f"/api/v1/reports/roaming?from={day}&to={day}&by=direction", headers=manager).get_json()
    assert [(i["key"], i["transferred"], i["national"]) for i in by_direction["items"]] == [("out", 4, 1), ("in", 1, 0)]
    assert by_direction["items"][0]["label"].startswith("发出")
    by_day = client.get(f"/api/v1/reports/roaming?from={day}&to={day}&by=day", headers=manager).get_json()
    assert [(i["key"], i["transferred"]) for i in by_day["items"]] == [(day, 5)]
    yesterday = (datetime.fromisoformat(day) - timedelta(days=1)).date().isoformat()
    assert client.get(f"/api/v1/reports/roaming?from={yesterday}&to={yesterday}&by=day",
                      headers=manager).get_json()["items"] == []


def test_open_transfers_past_their_deadline_count_as_overdue(yn):
    from processes import transfer_report
    from web.extensions import db

    client = yn.test_client()
    _exchange(client)
    day = datetime.now(UTC).astimezone(LOCAL_TZ).date()
    period = transfer_report.Period(day, day, "direction")
    with yn.app_context():
        now = datetime.now(UTC)
        (out, in_), _totals = transfer_report.report(db.session, period, now, "QG")
        assert (out["overdue"], in_["overdue"]) == (1, 0)  # only the late receipt, yet
        (out, in_), _totals = transfer_report.report(db.session, period, now + timedelta(days=4), "QG")
        # four days on: the two unanswered dispatches (GD's open one, the national one) and the
        # received one we have not answered are past their final-reply deadline as well
        assert (out["overdue"], in_["overdue"]) == (3, 1)


def test_exports_the_page_and_the_drill_down(yn):
    from openpyxl import load_workbook

    client = yn.test_client()
    cases = _exchange(client)
    manager, day = _token(client, "manager1"), _today()
    csv_text = client.get(f"/api/v1/reports/roaming?from={day}&to={day}&by=partner&format=csv",
                          headers=manager).get_data(as_text=True)
    assert csv_text.startswith("\ufeff编码,对方省份,转递量,对方已确认,已答复,按时答复,逾期,转递失败（退回）,上报全国中心")
    assert "GD,广东联通,4," in csv_text and csv_text.rstrip().splitlines()[-1].startswith(",合计,5,")

    client.post("/login", data={"username": "manager1", "password": "kefu-demo"})
    page = client.get(f"/reports/roaming?from={day}&to={day}&by=partner")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "漫游投诉转递统计" in text and "广东联通" in text
    assert 'id="report-data"' in text and "按时答复率" in text
    workbook = client.get(f"/reports/roaming.xlsx?from={day}&to={day}&by=partner")
    sheet = load_workbook(io.BytesIO(workbook.data)).active
    assert sheet["C2"].value == "转递量" and sheet["B3"].value == "广东联通" and sheet["C3"].value == 4
    assert client.get(f"/reports/roaming?from={day}&to=2000-01-01&by=partner").status_code == 422
    english = client.get(f"/reports/roaming?from={day}&to={day}&by=direction&lang=en").get_data(as_text=True)
    assert "Roaming complaint transfer statistics" in english and "Sent (to the home province" in english
    assert "漫游投诉转递统计" not in english and "发出" not in english

    drill = client.get(f"/cases?report=roaming&measure=national&by=partner&key=QG&from={day}&to={day}")
    listed = drill.get_data(as_text=True)
    assert drill.status_code == 200 and f"/cases/{cases['escalated']}" in listed
    assert f"/cases/{cases['in_time']}\"" not in listed
    answered = client.get(f"/cases?report=roaming&measure=answered_in_time&from={day}&to={day}&by=day")
    assert f"/cases/{cases['in_time']}\"" in answered.get_data(as_text=True)
    assert f"/cases/{cases['late']}\"" not in answered.get_data(as_text=True)
    assert client.get("/roaming").get_data(as_text=True).count("/reports/roaming") == 1  # linked, not duplicated


def test_only_managers_read_it_and_bad_input_is_named(yn):
    client = yn.test_client()
    day = _today()
    refused = client.get(f"/api/v1/reports/roaming?from={day}&to={day}&by=partner", headers=_token(client))
    assert refused.status_code == 403
    bad = client.get(f"/api/v1/reports/roaming?from={day}&to=x&by=province", headers=_token(client, "manager1"))
    assert bad.status_code == 422 and set(bad.get_json()["fields"]) == {"to", "by"}
    client.post("/login", data={"username": "agent1", "password": "kefu-demo"})
    assert client.get("/reports/roaming").status_code == 403


def test_by_month_adds_the_days_up_and_opens_a_month(yn):
    """``by=month``: the day report added up per calendar month (keys YYYY-MM), in the API, the
    page, CSV and XLSX, and a month's figure lists that month's cases only."""
    from openpyxl import load_workbook

    from processes.roaming import RoamingTransfer
    from web.extensions import db

    client = yn.test_client()
    cases = _exchange(client)
    today = datetime.now(UTC).astimezone(LOCAL_TZ).date()
    last_month_day = today.replace(day=1) - timedelta(days=1)
    with yn.app_context():  # the late dispatch was recorded last month
        row = db.session.scalar(select(RoamingTransfer).where(RoamingTransfer.instance_id == cases["late"]))
        row.created_day = last_month_day
        db.session.commit()
    this_month, last_month = f"{today:%Y-%m}", f"{last_month_day:%Y-%m}"
    manager, start, end = _token(client, "manager1"), last_month_day.replace(day=1).isoformat(), today.isoformat()

    body = client.get(f"/api/v1/reports/roaming?from={start}&to={end}&by=month", headers=manager)
    assert body.status_code == 200, body.get_json()
    items = body.get_json()["items"]
    assert [(i["key"], i["label"], i["transferred"], i["answered"], i["overdue"]) for i in items] \
        == [(last_month, last_month, 1, 1, 1), (this_month, this_month, 4, 1, 0)]
    assert body.get_json()["totals"]["transferred"] == 5
    csv_text = client.get(f"/api/v1/reports/roaming?from={start}&to={end}&by=month&format=csv",
                          headers=manager).get_data(as_text=True)
    assert csv_text.startswith("\ufeff编码,月份,") and f"{this_month},{this_month},4," in csv_text

    client.post("/login", data={"username": "manager1", "password": "kefu-demo"})
    page = client.get(f"/reports/roaming?from={start}&to={end}&by=month").get_data(as_text=True)
    assert '<option value="month" selected>月份</option>' in page and f"key={last_month}" in page
    sheet = load_workbook(io.BytesIO(client.get(f"/reports/roaming.xlsx?from={start}&to={end}&by=month").data)).active
    assert (sheet["B2"].value, sheet["A3"].value, sheet["C3"].value, sheet["C4"].value) == ("月份", last_month, 1, 4)

    drill = client.get(f"/cases?report=roaming&measure=transferred&by=month&key={last_month}&from={start}&to={end}")
    listed = drill.get_data(as_text=True)
    assert drill.status_code == 200 and f"/cases/{cases['late']}\"" in listed
    assert f"/cases/{cases['in_time']}\"" not in listed
    assert f"/cases/{cases['in_time']}\"" in client.get(
        f"/cases?report=roaming&measure=transferred&by=month&key={this_month}&from={start}&to={end}").get_data(as_text=True)
    assert client.get(f"/cases?report=roaming&measure=transferred&by=month&key=2026-13&from={start}&to={end}"
                      ).status_code == 422
    operation = client.get("/api/v1/openapi.json").get_json()["paths"]["/api/v1/reports/roaming"]["get"]
    (by,) = [p for p in operation["parameters"] if p["name"] == "by"]
    assert "month" in by["schema"]["enum"]
