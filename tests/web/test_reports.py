"""Complaint statistics (issue 14, DESIGN.md "Reports"): the facts written as complaints move,
the API's figures by each grouping, CSV and XLSX, bad requests and who may read them."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import INTAKE, T0

DAY = "2026-11-23"  # T0 is Monday 09:00 in Beijing


def _user(session, name: str):
    from engine.people import user_by_name

    return user_by_name(session, name)


def _open(session, instance_id: int, name: str):
    from engine.models import HumanTask

    return session.scalars(select(HumanTask).where(HumanTask.instance_id == instance_id, HumanTask.name == name,
                                                   HumanTask.status == "open")).one()


def _facts(session, instance_id: int):
    from processes.complaint_facts import ComplaintFact

    session.expire_all()
    return session.get(ComplaintFact, instance_id)


class Loop:
    """One complaint driven through the engine at chosen instants."""

    def __init__(self, session, engine, at=T0, city: str | None = None, **intake: Any) -> None:
        self.session, self.engine = session, engine
        # The city is not asked at intake; a case knows it when the product sets it (server data).
        self.instance = engine.start(session, "complaint", {**INTAKE, **intake}, actor=_user(session, "agent1"),
                                     now=at, server_data={"city": city} if city else None)
        session.commit()
        self.id = self.instance.id

    def complete(self, step: str, user: str, data: dict, at) -> None:
        task = _open(self.session, self.id, step)
        self.engine.complete_task(self.session, task.id, data, actor=_user(self.session, user), now=at)
        self.session.commit()

    def answer_now(self, at, satisfaction: str = "basic") -> Loop:
        # The agent records the customer's verdict when answering at once (seed 003).
        self.complete("triage", "agent1", {"resolution": "answer_now", "first_reply": "已答复",
                                           "satisfaction": satisfaction}, at)
        return self

    def dispatch(self, at, department: str = "network") -> Loop:
        self.complete("triage", "agent1", {"resolution": "dispatch", "first_reply": "两日内答复",
                                           "department": department,
                                           "final_reply_due": (at + timedelta(days=2)).isoformat()}, at)
        return self

    def handle_to_reply(self, at, handler: str = "net1") -> Loop:
        self.complete("handle", handler, {"handling_result": "已处理", "cause": "network_fault",
                                          "refund_due": False}, at)
        self.complete("quality_check", "leader1", {"qc_result": "accept"}, at)
        return self

    def reply(self, at, satisfaction: str | None = None) -> Loop:
        data = {"final_reply": "已修复", "reply_method": "phone"}
        if satisfaction:
            data["satisfaction"] = satisfaction
        self.complete("reply", "agent1", data, at)
        return self


@pytest.fixture
def loops(ctx):
    session, engine = ctx
    return lambda **kw: Loop(session, engine, **kw)


# -- the facts --------------------------------------------------------------------------------
def test_facts_follow_a_dispatched_complaint(ctx, loops):
    from processes.complaint_facts import count_escalations
    from slas.scanner import scan

    session, _engine = ctx
    loop = loops(channel="email", category="billing")
    fact = _facts(session, loop.id)
    assert (fact.received_day.isoformat(), fact.category, fact.channel, fact.department) == (
        DAY, "billing", "email", None)
    assert (fact.first_reply_at, fact.replied, fact.closed_at, fact.escalations) == (None, False, None, 0)

    # The first reply 3 hours after intake: late (2 h); the scanner had escalated the step.
    scan(session, T0 + timedelta(hours=2, minutes=30), on_escalated=count_escalations)
    assert (_facts(session, loop.id).escalations, _facts(session, loop.id).overdue) == (1, True)
    loop.dispatch(T0 + timedelta(hours=3))
    fact = _facts(session, loop.id)
    assert (fact.first_reply_at, fact.first_reply_in_time, fact.department) == (
        T0 + timedelta(hours=3), False, "network")

    loop.handle_to_reply(T0 + timedelta(hours=10)).reply(T0 + timedelta(hours=11), "basic")
    fact = _facts(session, loop.id)
    assert (fact.replied, fact.handled_in_time, fact.satisfaction) == (True, True, "basic")
    assert fact.final_reply_at == T0 + timedelta(hours=11)
    assert fact.closed_at == T0 + timedelta(hours=11)  # the verdict was heard: closed at once
    assert fact.outcome == 2 | 4 | 8 | 16 | 32  # handled in time, replied, overdue, closed, satisfied


def test_facts_of_an_answer_at_once_and_of_an_sms_verdict(ctx, loops):
    session, engine = ctx
    quick = loops(city="昆明").answer_now(T0 + timedelta(minutes=30))
    fact = _facts(session, quick.id)
    assert (fact.first_reply_in_time, fact.replied, fact.handled_in_time, fact.overdue) == (True, True, True, False)
    assert (fact.closed_at, fact.city, fact.satisfaction) == (T0 + timedelta(minutes=30), "昆明", "basic")

    # Replied without a verdict: the customer answers the SMS survey with 3 (不满意): rework.
    slow = loops().dispatch(T0 + timedelta(hours=1)).handle_to_reply(T0 + timedelta(hours=30))
    slow.reply(T0 + timedelta(days=4))  # after the case's 3 working days
    fact = _facts(session, slow.id)
    assert (fact.replied, fact.handled_in_time, fact.overdue, fact.closed_at) == (True, False, True, None)
    engine.deliver_message(session, slow.id, "sms_reply", {"choice": "3", "text": "没解决"},
                           T0 + timedelta(days=4, hours=1))
    session.commit()
    assert _facts(session, slow.id).satisfaction == "unsatisfied"
    # Reworked and then satisfied: the first verdict stays (一次满意).
    slow.handle_to_reply(T0 + timedelta(days=5)).reply(T0 + timedelta(days=5), "satisfied")
    fact = _facts(session, slow.id)
    assert (fact.satisfaction, fact.closed_at) == ("unsatisfied", T0 + timedelta(days=5))


def test_other_processes_have_no_facts(ctx):
    from processes.complaint_facts import ComplaintFact

    session, _engine = ctx
    assert session.scalar(select(ComplaintFact.instance_id)) is None


# -- the API --------------------------------------------------------------------------------
@pytest.fixture
def month(ctx, loops):
    """Four complaints on 23 and 24 November: figures every test below reads."""
    session, _engine = ctx
    loops(category="network", channel="phone", city="昆明").answer_now(T0 + timedelta(minutes=20))
    (loops(category="billing", channel="email").dispatch(T0 + timedelta(hours=1), "billing")
     .handle_to_reply(T0 + timedelta(hours=5), "bill1").reply(T0 + timedelta(hours=6), "satisfied"))
    late = loops(category="billing", channel="phone", at=T0 + timedelta(days=1))
    late.dispatch(T0 + timedelta(days=1, hours=3))  # first reply late; still with the department
    loops(category="network", channel="www", at=T0 + timedelta(days=1))  # not answered yet
    return session


def _get(client, token, query: str, user: str = "manager1", **headers):
    return client.get(f"/api/v1/reports/complaints?{query}", headers={**token(user), **headers})


ZERO = dict.fromkeys(("received", "closed", "first_reply_in_time", "handled_in_time", "replied", "overdue",
                      "escalations", "satisfied", "unsatisfied", "urges"), 0)


def test_report_by_category_and_totals(month, client, token):
    body = _get(client, token, "from=2026-11-01&to=2026-11-30&by=category").get_json()
    assert body["items"] == [
        {**ZERO, "key": "billing", "label": "资费", "received": 2, "closed": 1, "first_reply_in_time": 1,
         "handled_in_time": 1, "replied": 1, "overdue": 1, "satisfied": 1},
        {**ZERO, "key": "network", "label": "网络/障碍申告", "received": 2, "closed": 1,
         "first_reply_in_time": 1, "handled_in_time": 1, "replied": 1, "satisfied": 1},
    ]
    assert body["totals"] == {**ZERO, "received": 4, "closed": 2, "first_reply_in_time": 2, "handled_in_time": 2,
                              "replied": 2, "overdue": 1, "satisfied": 2}
    assert all(isinstance(v, int) for item in body["items"] for k, v in item.items() if k not in ("key", "label"))


def test_report_by_channel_department_city_and_day(month, client, token):
    period = "from=2026-11-23&to=2026-11-24"
    by = {b: {i["key"]: (i["label"], i["received"]) for i in _get(client, token, f"{period}&by={b}").get_json()["items"]}
          for b in ("channel", "department", "city", "day")}
    assert by["channel"] == {"email": ("E-mail", 1), "phone": ("电话", 2), "www": ("WWW", 1)}
    assert by["department"] == {None: ("未派单（即时答复或待派单）", 2), "billing": ("计费部", 1), "network": ("网络部", 1)}
    assert by["city"] == {None: ("地市未知", 3), "昆明": ("昆明", 1)}
    assert by["day"] == {"2026-11-23": ("2026-11-23", 2), "2026-11-24": ("2026-11-24", 2)}
    one_day = _get(client, token, "from=2026-11-24&to=2026-11-24&by=day").get_json()
    assert one_day["totals"]["received"] == 2 and one_day["totals"]["first_reply_in_time"] == 0
    empty = _get(client, token, "from=2026-10-01&to=2026-10-31&by=category").get_json()
    assert empty == {"items": [], "totals": ZERO}


def test_escalations_reach_the_report(month, client, token):
    from processes.complaint_facts import count_escalations
    from slas.scanner import scan

    # The complaint of 24 November still waits for its first reply 2.5 hours later.
    scan(month, T0 + timedelta(days=1, hours=2, minutes=30), on_escalated=count_escalations)
    items = _get(client, token, "from=2026-11-24&to=2026-11-24&by=category").get_json()["items"]
    assert [(i["key"], i["escalations"], i["overdue"]) for i in items] == [("billing", 0, 1), ("network", 1, 1)]
    _sign_in(client, "manager1")
    listing = client.get("/cases?process=complaint&measure=escalations&by=day&key=2026-11-24"
                         "&from=2026-11-01&to=2026-11-30").get_data(as_text=True)
    assert listing.count('href="/cases/') == 1 and "超时告警次数" in listing


def test_report_as_csv(month, client, token):
    for response in (_get(client, token, "from=2026-11-01&to=2026-11-30&by=category&format=csv"),
                     _get(client, token, "from=2026-11-01&to=2026-11-30&by=category", Accept="text/csv")):
        assert response.status_code == 200 and response.mimetype == "text/csv"
        text = response.data.decode("utf-8")
        assert text.startswith("\ufeff")
        lines = list(csv.reader(io.StringIO(text[1:])))
        assert lines[0] == ["编码", "投诉类别", "受理量", "办结量", "首次答复及时", "处理及时", "已回复客户", "超时",
                            "超时告警次数", "满意", "不满意", "催办次数"]
        assert lines[1] == ["billing", "资费", "2", "1", "1", "1", "1", "1", "0", "1", "0", "0"]
        assert lines[-1] == ["", "合计", "4", "2", "2", "2", "2", "1", "0", "2", "0", "0"]


def test_report_as_xlsx(month, app, client):
    from openpyxl import load_workbook

    _sign_in(client, "manager1")
    response = client.get("/reports/complaints.xlsx?from=2026-11-01&to=2026-11-30&by=channel")
    assert response.status_code == 200
    sheet = load_workbook(io.BytesIO(response.data)).active
    rows = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert rows[1][:4] == ["编码", "受理渠道", "受理量", "办结量"] and rows[1][-1] == "满意率(%)"
    assert rows[2][:3] == ["email", "E-mail", 1]
    assert rows[-1][:3] == [None, "合计", 4] and rows[-1][12] == 50.0  # first reply in time 2/4


@pytest.mark.parametrize("query, fields", [
    ("to=2026-11-30&by=category", {"from"}),
    ("from=2026-13-01&to=2026-11-30&by=category", {"from"}),
    ("from=20261101&to=2026-11-30&by=category", {"from"}),
    ("from=2026-11-01&to=2026-11-30&by=agent", {"by"}),
    ("from=2026-11-30&to=2026-11-01&by=day", {"to"}),
    ("from=2024-01-01&to=2026-11-01&by=day", {"to"}),
    ("from=2026-11-01&to=2026-11-30&by=day&format=pdf", {"format"}),
])
def test_bad_requests(client, token, query, fields):
    response = _get(client, token, query)
    assert response.status_code == 422
    assert set(response.get_json()["fields"]) == fields


def test_only_managers_read_reports(client, token):
    query = "from=2026-11-01&to=2026-11-30&by=day"
    assert _get(client, token, query, user="agent1").status_code == 403
    assert _get(client, token, query, user="leader1").status_code == 403
    assert _get(client, token, query, user="admin").status_code == 200
    assert client.get(f"/api/v1/reports/complaints?{query}").status_code == 401


def test_a_city_leader_reads_the_citys_figures_only(month, client, token):
    """hzlead1 leads 杭州地市中心: the report counts the cases transferred to the city (issue 15)."""
    from engine.models import HumanTask, ProcessInstance
    from processes.city_transfer import transfer_to_city

    session = month
    newest = session.scalars(select(ProcessInstance.id).order_by(ProcessInstance.id.desc())).first()
    step = _open(session, newest, "triage")
    assert isinstance(step, HumanTask)
    transfer_to_city(session, step.id, "hz_city", "需要上门测试", actor=_user(session, "agent1"),
                     now=T0 + timedelta(days=1, hours=1))
    session.commit()
    query = "from=2026-11-01&to=2026-11-30&by=category"
    city = _get(client, token, query, user="hzlead1").get_json()
    assert city["items"] == [{**ZERO, "key": "network", "label": "网络/障碍申告", "received": 1}]
    assert city["totals"]["received"] == 1
    assert _get(client, token, query, user="manager1").get_json()["totals"]["received"] == 4
    assert _get(client, token, query, user="leader1").status_code == 403  # a provincial leader: no reports
    _sign_in(client, "hzlead1")
    assert 'href="/reports/complaints"' in client.get("/cases").get_data(as_text=True)
    page = client.get("/reports/complaints?" + query).get_data(as_text=True)
    assert "网络/障碍申告" in page and "资费" not in page and "/reports/acceptance" not in page
    assert client.get("/reports/complaints.xlsx?" + query).status_code == 200
    assert client.get("/reports/acceptance").status_code == 403  # the other services stay the managers'


# -- the page -------------------------------------------------------------------------------
def _sign_in(client, username: str) -> None:
    response = client.post("/login", data={"username": username, "password": "kefu-demo"})
    assert response.status_code in (302, 303), response.data[:300]


def test_page_table_chart_and_drill_down(month, client):
    _sign_in(client, "manager1")
    home = client.get("/cases").get_data(as_text=True)
    assert 'href="/reports/complaints"' in home
    page = client.get("/reports/complaints?from=2026-11-01&to=2026-11-30&by=category")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "资费" in html and "网络/障碍申告" in html and 'id="report-data"' in html
    assert "/reports/vendor/echarts.min.js" in html and "<script>" not in html
    assert "50.0%" in html  # first reply in time, 1 of 2 billing complaints
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert client.get("/reports/vendor/echarts.min.js").status_code == 200
    # The overdue billing complaint behind its figure.
    listing = client.get("/cases?process=complaint&measure=overdue&by=category&key=billing"
                         "&from=2026-11-01&to=2026-11-30").get_data(as_text=True)
    assert listing.count('href="/cases/') == 1 and "超时" in listing
    every = client.get("/cases?process=complaint&measure=received&by=department&key=_none"
                       "&from=2026-11-01&to=2026-11-30").get_data(as_text=True)
    assert every.count('href="/cases/') == 2
    assert client.get("/cases?measure=nope&from=2026-11-01&to=2026-11-30").status_code == 422


def test_page_bad_period_and_agents(client):
    _sign_in(client, "manager1")
    assert client.get("/reports/complaints?from=2026-11-30&to=2026-11-01").status_code == 422
    assert client.get("/reports/complaints").status_code == 200  # this month by default
    client.post("/logout")
    _sign_in(client, "agent1")
    assert client.get("/reports/complaints").status_code == 403
    assert 'href="/reports/complaints"' not in client.get("/").get_data(as_text=True)


def test_urges_are_counted_per_department(month, client, token):
    """Urges (催办) of a case's steps count under the case's department; the figure drills down."""
    from sqlalchemy import update

    from processes.complaint_facts import ComplaintFact
    from processes.urging import TaskUrge

    late = month.scalars(select(ComplaintFact).where(ComplaintFact.department == "network",
                                                     ComplaintFact.replied.is_(False))).one()
    handle = _open(month, late.instance_id, "handle")
    for _ in range(2):
        response = client.post(f"/api/v1/tasks/{handle.id}/urge", headers=token("manager1"), json={"note": "请尽快"})
        assert response.status_code == 201, response.get_json()
        month.execute(update(TaskUrge).values(at=T0 - timedelta(days=1)))  # the next urge is not too soon
        month.commit()
    body = _get(client, token, "from=2026-11-01&to=2026-11-30&by=department").get_json()
    assert {i["key"]: i["urges"] for i in body["items"]} == {None: 0, "billing": 0, "network": 2}
    assert body["totals"]["urges"] == 2
    _sign_in(client, "manager1")
    page = client.get("/reports/complaints?from=2026-11-01&to=2026-11-30&by=department").get_data(as_text=True)
    assert "催办次数" in page and "measure=urges" in page
    listing = client.get("/cases?process=complaint&measure=urges&by=department&key=network"
                         "&from=2026-11-01&to=2026-11-30").get_data(as_text=True)
    assert listing.count('href="/cases/') == 1
