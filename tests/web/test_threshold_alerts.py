"""Threshold alerts (issue 14): managers' rules on the complaint statistics, checked by the tick,
raised once per rule and period on the alert page and texted to the duty manager through the
real SMPP client and a loopback SMSC."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from tests.conftest import T0
from tests.web.test_reports import Loop, _sign_in


def _rule(session, **values):
    from engine.clock import utcnow
    from processes.threshold_alerts import save_rule

    defaults = {"name": "首答及时率", "metric": "first_reply_rate", "scope": "all", "comparison": "lt",
                "threshold": 95, "period": "day", "min_cases": 1}
    rule = save_rule(session, None, {**defaults, **values}, "manager1", utcnow())
    session.commit()
    return rule


def _alerts(session):
    from processes.threshold_alerts import ThresholdAlert

    session.expire_all()
    return [(a.rule_id, a.period_key, a.value, a.cases)
            for a in session.scalars(select(ThresholdAlert).order_by(ThresholdAlert.id))]


def _threshold_jobs(session) -> int:
    from engine.outbox import ConnectorJob

    return session.scalar(select(func.count(ConnectorJob.id)).where(ConnectorJob.key.like("threshold-%")))


# -- the check --------------------------------------------------------------------------------
def test_rates_count_decided_complaints_and_an_alert_is_raised_once_per_period(ctx):
    from processes.threshold_alerts import evaluate

    session, engine = ctx
    rule = _rule(session)  # first reply in time below 95 % today
    Loop(session, engine)  # received at T0, its 2 hours are not over: not decided yet
    assert evaluate(session, T0 + timedelta(hours=1)) == [] and _alerts(session) == []

    Loop(session, engine).dispatch(T0 + timedelta(hours=3))  # a first reply 3 hours late: 0 % of 1
    new = evaluate(session, T0 + timedelta(hours=3))
    session.commit()
    assert _alerts(session) == [(rule.id, "2026-11-23", 0.0, 1)]
    assert [a.texted for a in new] == [1]  # the managers with a mobile: manager1
    assert _threshold_jobs(session) == 1
    # Still breached later that day: no second alert, no second text.
    assert evaluate(session, T0 + timedelta(hours=8)) == []
    session.commit()
    assert len(_alerts(session)) == 1 and _threshold_jobs(session) == 1
    # The next Beijing day is a new period: a late first reply raises it again.
    next_day = T0 + timedelta(days=1)
    Loop(session, engine, at=next_day).dispatch(next_day + timedelta(hours=4))
    evaluate(session, next_day + timedelta(hours=4))
    session.commit()
    assert [a[1] for a in _alerts(session)] == ["2026-11-23", "2026-11-24"]
    assert _threshold_jobs(session) == 2


def test_count_rules_by_department_and_month_and_the_minimum_of_cases(ctx):
    from processes.threshold_alerts import evaluate

    session, engine = ctx
    network = _rule(session, name="网络部超时", metric="overdue", scope="department", scope_value="network",
                    comparison="ge", threshold=1, period="month", notify_user_id="")
    rate = _rule(session, name="首答率（至少3件）", min_cases=3)
    for _ in range(2):  # two complaints answered late, below the rate rule's 3 cases
        Loop(session, engine).dispatch(T0 + timedelta(hours=3), "billing")
    assert evaluate(session, T0 + timedelta(hours=3)) == []
    late = Loop(session, engine).dispatch(T0 + timedelta(hours=1), "network")  # in time: 1 of 3
    assert [(a.rule_id, a.period_key, a.value) for a in evaluate(session, T0 + timedelta(hours=3))] == [
        (rate.id, "2026-11-23", 33.3)]
    late.complete("handle", "net1", {"handling_result": "已处理", "cause": "network_fault", "refund_due": False},
                  T0 + timedelta(days=2))  # the department's 24 hours passed: overdue
    raised = evaluate(session, T0 + timedelta(days=2))  # the 25th: the day rule counts nothing today
    session.commit()
    assert [(a.rule_id, a.period_key, a.value) for a in raised] == [(network.id, "2026-11", 1.0)]
    # Later in November the month rule stays quiet; a disabled rule is not checked.
    rate.active = False
    session.commit()
    assert evaluate(session, T0 + timedelta(days=5)) == []
    # December is a new month: its own complaints count, and the rule may alert again.
    december = T0 + timedelta(days=8)
    assert evaluate(session, december) == []
    Loop(session, engine, at=december).dispatch(december, "network").complete(
        "handle", "net1", {"handling_result": "已处理", "cause": "network_fault", "refund_due": False},
        december + timedelta(days=2))
    assert [a.period_key for a in evaluate(session, december + timedelta(days=2))] == ["2026-12"]


def test_rules_are_checked_and_refused_with_reasons(ctx):
    from engine.errors import ValidationFailed

    session, _engine = ctx
    with pytest.raises(ValidationFailed) as bad:
        _rule(session, name="", metric="speed", scope="department", threshold="很多", comparison="<")
    assert set(bad.value.fields) == {"name", "metric", "scope_value", "threshold", "comparison"}
    with pytest.raises(ValidationFailed) as rate:
        _rule(session, threshold=120)
    assert set(rate.value.fields) == {"threshold"}
    from engine.people import user_by_name

    with pytest.raises(ValidationFailed) as duty:  # the duty manager must have a mobile number
        _rule(session, notify_user_id=user_by_name(session, "admin").id)
    assert set(duty.value.fields) == {"notify_user_id"}


# -- through the tick, to the SMSC ------------------------------------------------------------
@pytest.mark.slow
def test_the_tick_texts_the_duty_manager_once(app, ctx, smsc):
    from engine.people import user_by_name
    from processes.tick import tick
    from web.connectors_setup import start_links, use_smsc

    use_smsc(app, smsc.url)
    start_links(app)
    try:
        session, engine = ctx
        duty = user_by_name(session, "netlead1")  # a named duty manager (any active user with a mobile)
        _rule(session, notify_user_id=duty.id)
        Loop(session, engine).dispatch(T0 + timedelta(hours=3))
        first = tick(session, engine, T0 + timedelta(hours=3))
        assert first.alerts == 1 and "1 threshold alert(s) raised" in first.lines()[0]
        texts = smsc.wait_for(lambda p: [m for m in p.messages() if "指标告警" in m["text"]] or None)
        assert [m["destination"] for m in texts] == [duty.phone]
        assert "首答及时率" in texts[0]["text"] and "0.0%" in texts[0]["text"]
        assert tick(session, engine, T0 + timedelta(hours=3, minutes=1)).alerts == 0
        session.rollback()
        assert len([m for m in smsc.messages() if "指标告警" in m["text"]]) == 1
    finally:
        app.extensions["kefu_connectors"].close()


# -- the pages --------------------------------------------------------------------------------
def test_managers_add_change_and_disable_rules_and_see_the_alerts(ctx, client):
    from processes.threshold_alerts import AlertRule, evaluate

    session, engine = ctx
    _sign_in(client, "manager1")
    assert client.get("/reports/alert-rules/new").status_code == 200
    bad = client.post("/reports/alert-rules/new", data={"name": "x", "metric": "overdue", "scope": "department",
                                                        "comparison": "gt", "threshold": "abc", "period": "day"})
    html = bad.get_data(as_text=True)
    assert bad.status_code == 422 and "请填写部门或类别编码" in html and "请填写" in html
    saved = client.post("/reports/alert-rules/new", data={
        "name": "今日首答", "metric": "first_reply_rate", "scope": "all", "comparison": "lt", "threshold": "95",
        "period": "day", "min_cases": "1", "notify_user_id": "", "active": "1"})
    assert saved.status_code in (302, 303)
    rule = session.scalars(select(AlertRule)).one()
    listing = client.get("/reports/alert-rules").get_data(as_text=True)
    assert "今日首答" in listing and "当日 全部投诉 首次答复及时率 低于 95.0%" in listing

    Loop(session, engine).dispatch(T0 + timedelta(hours=3))
    evaluate(session, T0 + timedelta(hours=3))
    session.commit()
    page = client.get("/escalations").get_data(as_text=True)
    assert 'id="threshold-alerts"' in page and "今日首答" in page and "0.0%" in page
    assert "from=2026-11-23" in page  # the period links to its report

    client.post(f"/reports/alert-rules/{rule.id}", data={
        "name": "今日首答", "metric": "first_reply_rate", "scope": "all", "comparison": "lt", "threshold": "90",
        "period": "day", "min_cases": "1"})  # no "active": disabled
    session.expire_all()
    assert (rule.active, rule.threshold) == (False, 90.0)
    assert client.get("/reports/alert-rules/999").status_code == 404

    client.post("/logout")
    _sign_in(client, "leader1")  # leaders see escalations, not the statistics' alerts
    assert 'id="threshold-alerts"' not in client.get("/escalations").get_data(as_text=True)
    assert client.get("/reports/alert-rules").status_code == 403


# -- the API ----------------------------------------------------------------------------------
def test_api_rules_and_alerts(ctx, client, token):
    from processes.threshold_alerts import evaluate

    session, engine = ctx
    url = "/api/v1/reports/alert-rules"
    created = client.post(url, headers=token("manager1"), json={
        "name": "本月不满意", "metric": "unsatisfied", "comparison": "gt", "threshold": 0, "period": "month"})
    assert created.status_code == 201, created.get_json()
    rule = created.get_json()
    assert (rule["scope"], rule["active"], rule["description"]) == ("all", True, "当月 全部投诉 不满意工单数 高于 0")
    bad = client.post(url, headers=token("manager1"), json={"name": "x", "metric": "first_reply_rate",
                                                            "comparison": "lt", "threshold": 150, "period": "year"})
    assert bad.status_code == 422 and set(bad.get_json()["fields"]) == {"threshold", "period"}
    assert client.get(url, headers=token("agent1")).status_code == 403
    assert client.get("/api/v1/reports/alerts", headers=token("leader1")).status_code == 403
    assert client.patch(f"{url}/9999", headers=token("manager1"), json={}).status_code == 404

    Loop(session, engine).dispatch(T0 + timedelta(hours=1)).handle_to_reply(T0 + timedelta(hours=5)).reply(
        T0 + timedelta(hours=6), "unsatisfied")
    evaluate(session, T0 + timedelta(hours=6))
    session.commit()
    alerts = client.get("/api/v1/reports/alerts", headers=token("manager1")).get_json()["items"]
    assert [(a["rule"], a["period"], a["value"], a["cases"]) for a in alerts] == [("本月不满意", "2026-11", 1.0, 1)]
    assert client.get("/api/v1/reports/alerts?limit=0", headers=token("manager1")).status_code == 422

    changed = client.patch(f"{url}/{rule['id']}", headers=token("manager1"), json={"active": False})
    assert changed.status_code == 200 and changed.get_json()["active"] is False
    assert changed.get_json()["threshold"] == 0  # the other fields kept
    assert [r["active"] for r in client.get(url, headers=token("manager1")).get_json()["items"]] == [False]


def test_the_rules_page_speaks_english_when_chosen(ctx, client):
    session, _engine = ctx
    _rule(session, name="Net overdue", metric="overdue", scope="department", scope_value="network",
          comparison="gt", threshold=3, period="month")
    _sign_in(client, "manager1")
    client.get("/lang/en")
    listing = client.get("/reports/alert-rules").get_data(as_text=True)
    assert "This month, Responsible department “" in listing and "Number of overdue cases is above 3" in listing
    form = client.get("/reports/alert-rules/new").get_data(as_text=True)
    assert "First-reply-in-time rate" in form and "首次答复及时率" not in form and "当月" not in form
