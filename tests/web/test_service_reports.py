"""Statistics of business acceptance and of callbacks / return visits (issue 14): the facts the
listener writes as real cases move (billing's interim database, the loopback AMI peer), the API's
figures by kind and day, CSV, the page and the drill-down to the cases."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from engine.clock import LOCAL_TZ
from engine.people import user_by_name
from tests.conftest import T0
from tests.web.test_business_acceptance import ARREARS, BLACKLISTED, VIP, WRONG, Desk, _simulate
from tests.web.test_dunning import dun  # noqa: F401  (the dunning round's fixture)
from tests.web.test_outbound_callback import PHONE, SOON, _dial, _start, _task
from tests.web.test_reports import _sign_in

ZERO_ACCEPTANCE = dict.fromkeys(("received", "closed", "identified", "identification_failed", "refused_arrears",
                                 "refused_blacklist", "done", "rejected"), 0)


def _today() -> str:
    return datetime.now(UTC).astimezone(LOCAL_TZ).date().isoformat()


@pytest.fixture
def desk(app, client, token, billing):
    return Desk(app, client, token, billing)


@pytest.fixture
def cb(pbx_app, ctx):
    return ctx


@pytest.fixture
def acceptance(desk, billing):
    """Five acceptance cases today: done, rejected, refused for arrears, blacklisted, wrong passwords."""
    desk.identify(VIP)
    desk.take({"request_type": "feature_on", "feature": "intl_roaming"})
    done = desk.instance_id
    desk.identify(VIP)
    desk.take({"request_type": "feature_off", "feature": "three_way_calling"})  # billing refuses: not on
    now = datetime.now(UTC)
    desk.run_jobs(now)
    _simulate(billing, now)
    desk.run_jobs(now + timedelta(seconds=20))
    for phone in (ARREARS, BLACKLISTED):
        desk.identify(phone)
        desk.complete("refused", {"outcome": "informed"})
    desk.start(VIP)
    for _ in range(3):
        desk.complete("verify", {"service_password": WRONG})
    desk.complete("review_failure", {"review_result": "suspicious", "review_note": "声音不符"}, user="leader1")
    return done


def _get(client, token, path: str, user: str = "manager1", **headers):
    return client.get(f"/api/v1/reports/{path}", headers={**token(user), **headers})


def test_acceptance_by_request_type_and_day(acceptance, client, token):
    today = _today()
    body = _get(client, token, f"acceptance?from={today}&to={today}&by=kind").get_json()
    assert body["items"] == [
        {**ZERO_ACCEPTANCE, "key": None, "label": "未受理业务（核验失败或不予受理）", "received": 3, "closed": 3,
         "identified": 2, "identification_failed": 1, "refused_arrears": 1, "refused_blacklist": 1},
        {**ZERO_ACCEPTANCE, "key": "feature_off", "label": "关闭功能", "received": 1, "identified": 1,
         "rejected": 1},
        {**ZERO_ACCEPTANCE, "key": "feature_on", "label": "开通功能", "received": 1, "closed": 1, "identified": 1,
         "done": 1},
    ]
    assert body["totals"] == {**ZERO_ACCEPTANCE, "received": 5, "closed": 4, "identified": 4,
                              "identification_failed": 1, "refused_arrears": 1, "refused_blacklist": 1, "done": 1,
                              "rejected": 1}
    by_day = _get(client, token, f"acceptance?from={today}&to={today}&by=day").get_json()["items"]
    assert [(i["key"], i["received"]) for i in by_day] == [(today, 5)]
    assert _get(client, token, "acceptance?from=2020-01-01&to=2020-01-31&by=kind").get_json()["items"] == []


def test_acceptance_csv_page_and_drill_down(acceptance, client, token):
    today = _today()
    response = _get(client, token, f"acceptance?from={today}&to={today}&by=kind&format=csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    lines = list(csv.reader(io.StringIO(response.data.decode("utf-8")[1:])))
    assert lines[0][:4] == ["编码", "业务类型", "受理量", "已结束"] and lines[0][-1] == "计费系统拒绝"
    assert lines[-1] == ["", "合计", "5", "4", "4", "1", "1", "1", "1", "1"]

    _sign_in(client, "manager1")
    page = client.get(f"/reports/acceptance?from={today}&to={today}&by=kind")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "业务受理统计" in html and "开通功能" in html and 'id="report-data"' in html
    assert "20.0%" in html  # done 1 of 5
    listing = client.get(f"/cases?process=business_acceptance&report=acceptance&measure=done&by=kind"
                         f"&key=feature_on&from={today}&to={today}").get_data(as_text=True)
    assert listing.count('href="/cases/') == 1 and f'href="/cases/{acceptance}"' in listing
    refused = client.get(f"/cases?process=business_acceptance&report=acceptance&measure=refused_arrears"
                         f"&from={today}&to={today}").get_data(as_text=True)
    assert refused.count('href="/cases/') == 1
    assert client.get(f"/cases?report=acceptance&measure=nope&from={today}&to={today}").status_code == 422
    assert client.get("/reports/acceptance?from=2026-11-30&to=2026-11-01").status_code == 422


def test_callbacks_reached_unreached_and_attempts(cb, ami_peer, client, token):
    session, engine = cb
    ami_peer.script_originate(PHONE, "busy", "answer")
    reached = _start(session, engine)
    _dial(session, engine, reached)
    later = T0 + timedelta(minutes=10) + SOON
    from processes.tick import tick

    tick(session, engine, later)
    _dial(session, engine, reached, now=later)
    engine.complete_task(session, _task(session, reached, "record_result").id,
                         {"call_result": "resolved", "result_note": "已解答"},
                         actor=user_by_name(session, "agent1"), now=later + timedelta(minutes=3))
    session.commit()

    other = "13900000002"
    ami_peer.script_originate(other, "noanswer", "noanswer", "noanswer")
    unreached = _start(session, engine, phone=other, kind="return_visit")
    now = T0
    for _ in range(3):
        _dial(session, engine, unreached, now=now)
        now += timedelta(minutes=10) + SOON
        tick(session, engine, now)

    body = _get(client, token, "callbacks?from=2026-11-23&to=2026-11-23&by=kind").get_json()
    figures = {i["key"]: {k: v for k, v in i.items() if v and k not in ("key", "label")} for i in body["items"]}
    assert figures == {
        "ivr_callback": {"received": 1, "closed": 1, "reached": 1, "resolved": 1, "attempts": 2},
        "return_visit": {"received": 1, "closed": 1, "unreached": 1, "attempts": 3},
    }
    assert [i["label"] for i in body["items"]] == ["遇忙回叫", "客户回访"]
    _sign_in(client, "manager1")
    html = client.get("/reports/callbacks?from=2026-11-23&to=2026-11-23").get_data(as_text=True)
    assert "回叫与回访统计" in html and "50.0%" in html  # reached 1 of 2


@pytest.mark.parametrize("query, fields", [
    ("acceptance?to=2026-11-30&by=kind", {"from"}),
    ("acceptance?from=2026-11-01&to=2026-11-30&by=category", {"by"}),
    ("callbacks?from=2026-11-30&to=2026-11-01&by=day", {"to"}),
    ("callbacks?from=2026-11-01&to=2026-11-30&by=day&format=pdf", {"format"}),
])
def test_bad_requests_and_who_may_read(client, token, query, fields):
    response = _get(client, token, query)
    assert response.status_code == 422 and set(response.get_json()["fields"]) == fields
    assert _get(client, token, "callbacks?from=2026-11-01&to=2026-11-30&by=day", user="agent1").status_code == 403


def test_dunning_by_billing_month(dun, client, token):  # noqa: F811  (the imported fixture)
    """A round of three subscribers: all reminded by the IVR, one pays, two are called again and
    suspended one way a month after the due date."""
    from tests.web.test_dunning import MONTH, ONE_MONTH, OPEN_AT, _pay, _tick

    session, engine, service, subs = dun
    service.open_round(session, engine, MONTH, OPEN_AT)
    _tick(session, engine, service, OPEN_AT + SOON)
    _tick(session, engine, service, OPEN_AT + SOON)  # the calls' results reach the cases
    _pay(service.gateway, subs[1][0], 4000, OPEN_AT + timedelta(hours=2))
    _tick(session, engine, service, OPEN_AT + timedelta(hours=3))
    for at in (OPEN_AT + timedelta(days=7, minutes=5),) * 2 + (ONE_MONTH + SOON,) * 2:
        _tick(session, engine, service, at)

    body = _get(client, token, "dunning?from=2026-12-07&to=2026-12-07&by=kind").get_json()
    (month,) = body["items"]
    assert {k: v for k, v in month.items() if v} == {
        "key": "2026-11", "label": "2026-11", "received": 3, "closed": 1, "reminded": 3, "recalled": 2, "paid": 1,
        "paid_after_reminder": 1, "suspended": 2, "attempts": 5}
    _sign_in(client, "manager1")
    html = client.get("/reports/dunning?from=2026-12-07&to=2026-12-07").get_data(as_text=True)
    assert "欠费催缴统计" in html and "33.3%" in html  # paid 1 of 3
    listing = client.get("/cases?process=dunning&report=dunning&measure=suspended&by=kind&key=2026-11"
                         "&from=2026-12-07&to=2026-12-07").get_data(as_text=True)
    assert listing.count('href="/cases/') == 2
