"""The administrators' calendar and hours pages, the missing-calendar warning on the alerts page,
and the failed sign-ins page (issue 15): Chinese by default, English available, admins only."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

import web.admin_calendars
from slas import calendar_store as cs

OCTOBER = datetime(2026, 10, 8, 2, 0, tzinfo=UTC)
JUNE = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fresh_calendars():
    cs.reset()
    yield
    cs.reset()


def _sign_in(app, username: str, lang: str = "zh_CN"):
    browser = app.test_client()
    response = browser.post("/login", data={"username": username, "password": "kefu-demo"})
    assert response.status_code == 302, response.get_data(as_text=True)
    browser.get(f"/lang/{lang}") if lang != "zh_CN" else None
    return browser


@pytest.fixture
def today(monkeypatch):
    now = {"at": JUNE}
    monkeypatch.setattr(web.admin_calendars, "utcnow", lambda: now["at"])
    return now


@pytest.mark.parametrize("username", ["agent1", "leader1", "manager1", "analyst1"])
def test_only_admins_reach_the_calendar_and_sign_in_pages(app, username):
    browser = _sign_in(app, username)
    for url in ("/admin/calendars", "/admin/calendars/2027", "/admin/sign-in-failures"):
        assert browser.get(url).status_code == 403, url
    assert browser.post("/admin/calendars/hours/calling_hours", data={"hours": "09:00-20:00"}).status_code == 403
    assert browser.post("/admin/calendars/2027", data={"source": "x", "holidays": "2027-01-01 元旦"}).status_code == 403


def test_entering_next_years_calendar_clears_the_october_warning(app, today):
    today["at"] = OCTOBER
    admin = _sign_in(app, "admin")
    manager = _sign_in(app, "manager1")
    page = admin.get("/admin/calendars").get_data(as_text=True)
    assert "节假日" in page and "没有 2027 年的节假日安排" in page
    assert "没有 2027 年的节假日安排" in manager.get("/escalations").get_data(as_text=True)
    assert "没有 2027 年的节假日安排" in admin.get("/admin/users").get_data(as_text=True)
    refused = admin.post("/admin/calendars/2027", data={
        "source": "国务院办公厅关于2027年部分节假日安排的通知", "holidays": "2027-01-01 元旦\n2027-02-30 春节",
        "workdays": "2027-02-15 春节调休"})
    text = refused.get_data(as_text=True)
    assert refused.status_code == 400
    assert "第 2 行" in text and "没有这一天" in text and "调休上班只能是周六或周日" in text
    saved = admin.post("/admin/calendars/2027", data={
        "source": "国务院办公厅关于2027年部分节假日安排的通知",
        "holidays": "2027-01-01..2027-01-03 元旦\n2027-02-06..2027-02-12 春节", "workdays": "2027-02-13 春节调休"})
    assert saved.status_code == 302
    page = admin.get("/admin/calendars").get_data(as_text=True)
    assert "没有 2027 年的节假日安排" not in page and "国务院办公厅关于2027年部分节假日安排的通知" in page
    assert "admin" in page and "10 天休假" in page
    assert "没有 2027 年的节假日安排" not in manager.get("/escalations").get_data(as_text=True)
    form = admin.get("/admin/calendars/2027").get_data(as_text=True)
    assert "2027-02-06..2027-02-12 春节" in form


def test_no_warning_before_october(app, today):
    assert "节假日安排" not in _sign_in(app, "manager1").get("/escalations").get_data(as_text=True)


def test_hours_are_saved_as_versions_and_bad_ones_refused_with_the_reason(app, today):
    admin = _sign_in(app, "admin")
    bad = admin.post("/admin/calendars/hours/dunning_hours", data={"hours": "20:00-09:00"}, follow_redirects=True)
    assert "开始时间须早于结束时间" in bad.get_data(as_text=True)
    good = admin.post("/admin/calendars/hours/dunning_hours", data={"hours": "9:00-20:30"}, follow_redirects=True)
    assert "09:00-20:30" in good.get_data(as_text=True)
    assert cs.current_hours(cs.DUNNING_HOURS) == "09:00-20:30"
    # the dunning rounds' calling window follows at once (20:15 Beijing: open now, not before)
    assert app.extensions["kefu_dunning"].settings.hours.window(datetime(2026, 6, 1, 12, 15, tzinfo=UTC))["open"]
    with app.app_context():
        from web.extensions import db

        rows = db.session.scalars(select(cs.CalendarVersion)).all()
    assert [(r.kind, r.payload, r.created_by) for r in rows] == [("dunning_hours", {"hours": "09:00-20:30"}, "admin")]


def test_english_is_available(app, today):
    admin = _sign_in(app, "admin", lang="en")
    page = admin.get("/admin/calendars").get_data(as_text=True)
    assert "Calendars and hours" in page and "Dunning hours" in page


def test_failed_sign_ins_are_listed_with_the_lock(app):
    client = app.test_client()
    for _ in range(5):
        client.post("/login", data={"username": "agent2", "password": "wrong"}, environ_base={"REMOTE_ADDR": "10.9.8.7"})
    client.post("/login", data={"username": "nobody", "password": "x"}, environ_base={"REMOTE_ADDR": "10.9.8.6"})
    page = _sign_in(app, "admin").get("/admin/sign-in-failures").get_data(as_text=True)
    assert page.count("10.9.8.7") == 5 and "nobody" in page
    assert page.count("已锁定") == 5 and "kefu-demo" not in page and "wrong" not in page


def test_a_case_clock_in_a_year_without_calendar_says_it_counts_monday_to_friday(app, ctx):
    from engine.people import user_by_name
    from tests.conftest import INTAKE

    session, engine = ctx
    agent = user_by_name(session, "agent1")
    in_2026 = engine.start(session, "complaint", INTAKE, actor=agent, now=datetime(2026, 11, 23, 1, 0, tzinfo=UTC))
    in_2027 = engine.start(session, "complaint", INTAKE, actor=agent, now=datetime(2027, 3, 1, 1, 0, tzinfo=UTC))
    session.commit()
    browser = _sign_in(app, "agent1")
    assert "仅按周一至周五" not in browser.get(f"/cases/{in_2026.id}").get_data(as_text=True)
    assert "仅按周一至周五" in browser.get(f"/cases/{in_2027.id}").get_data(as_text=True)
    admin = _sign_in(app, "admin")
    assert admin.post("/admin/calendars/2027", data={"source": "国务院办公厅关于2027年部分节假日安排的通知",
                                                     "holidays": "2027-01-01 元旦"}).status_code == 302
    assert "仅按周一至周五" not in browser.get(f"/cases/{in_2027.id}").get_data(as_text=True)


def test_the_api_reads_and_saves_calendars_and_hours(client, token):
    assert client.get("/api/v1/calendars", headers=token("manager1")).status_code == 403
    body = client.get("/api/v1/calendars", headers=token("admin")).get_json()
    (shipped,) = body["years"]
    assert (shipped["year"], shipped["stored"], shipped["changed_by"]) == (2026, False, None)
    assert {"date": "2026-10-01", "name": "国庆节"} in shipped["holidays"]
    assert body["hours"]["calling_hours"] == {"hours": "08:00-21:00", "stored": False}
    bad = client.put("/api/v1/calendars/2027", headers=token("admin"), json={
        "source": "通知", "holidays": [{"date": "2027-01-01", "name": "元旦"}, {"date": "2027-13-01", "name": "x"}]})
    assert bad.status_code == 422 and set(bad.get_json()["fields"]) == {"holidays"}
    assert client.put("/api/v1/calendars/2027", headers=token("admin"),
                      json={"source": "通知", "holidays": "2027-01-01 元旦"}).status_code == 422
    saved = client.put("/api/v1/calendars/2027", headers=token("admin"), json={
        "source": "国务院办公厅关于2027年部分节假日安排的通知", "holidays": [{"date": "2027-01-01", "name": "元旦"}],
        "workdays": [{"date": "2027-01-02", "name": "元旦调休"}]})
    assert saved.status_code == 200, saved.get_json()
    assert (saved.get_json()["stored"], saved.get_json()["changed_by"]) == (True, "admin")
    hours = client.put("/api/v1/calling-hours/dunning_hours", headers=token("admin"), json={"hours": "9:00-20:00"})
    assert hours.get_json() == {"hours": "09:00-20:00", "stored": True}
    wrong = client.put("/api/v1/calling-hours/dunning_hours", headers=token("admin"), json={"hours": "20-9"})
    assert wrong.status_code == 422 and "dunning_hours" in wrong.get_json()["fields"]
    assert client.put("/api/v1/calling-hours/other", headers=token("admin"), json={"hours": "9:00-20:00"}).status_code == 404
    assert [y["year"] for y in client.get("/api/v1/calendars", headers=token("admin")).get_json()["years"]] == [2026, 2027]


def test_the_calendar_check_leaves_a_read_only_view_its_read_only_transaction(client, token):
    """The check before each request reads on its own connection: the inbox (a read-only view)
    must still begin its own transaction, without SQLAlchemy's "execution_options ignored"."""
    import warnings

    from sqlalchemy.exc import SAWarning

    headers = token("agent1")
    cs.reset()  # the next request checks the database again
    with warnings.catch_warnings():
        warnings.simplefilter("error", SAWarning)
        assert client.get("/api/v1/tasks", headers=headers).status_code == 200


def test_between_checks_a_request_takes_no_connection_for_the_calendar_or_the_matrix(app, client):
    """The checks before each request read the database at most every 30 seconds; between checks
    a request that needs no data (a static file) must not even check a connection out of the pool."""
    from sqlalchemy import event

    from engine import roles
    from web.extensions import db

    checkouts: list[int] = []
    with app.app_context():
        engine = db.engine

    def count(*_args) -> None:
        checkouts.append(1)

    event.listen(engine, "checkout", count)
    try:
        assert client.get("/static/kefu.css").status_code == 200  # checks both (due after reset)
        assert checkouts, "the first request should have read the calendars and the matrix"
        checkouts.clear()
        assert client.get("/static/kefu.css").status_code == 200
        assert checkouts == [], "a request between checks took a connection"
        for store in (cs, roles):  # either check falling due takes exactly its one connection
            store._checked_at = float("-inf")
            assert client.get("/static/kefu.css").status_code == 200
            assert len(checkouts) == 1, store.__name__
            checkouts.clear()
    finally:
        event.remove(engine, "checkout", count)
