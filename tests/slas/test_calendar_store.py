"""Calendars and hours edited by administrators (slas/calendar_store.py): validation, versions with
who and when, taking effect for new clocks, the Monday–Friday fallback and its warning."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select

from engine.models import AuditEvent
from processes.outbound_calls import AdjustableHours
from slas import calendar_store as cs
from slas.clocks import calendar_named

NOW = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)
HOLIDAYS_2027 = """# 国务院办公厅关于2027年部分节假日安排的通知（试）
2027-01-01..2027-01-03 元旦
2027-02-06..2027-02-12 春节
"""
WORKDAYS_2027 = "2027-02-13 春节调休\n2027-02-14 春节调休\n"


@pytest.fixture(autouse=True)
def _fresh_calendars():
    cs.reset()
    yield
    cs.reset()


def _problems(*args) -> set[tuple[str, str, int]]:
    with pytest.raises(cs.CalendarInvalid) as caught:
        cs.check_year(*args)
    return {(p.field, p.code, p.line) for p in caught.value.problems}


@pytest.mark.parametrize(("year", "source", "holidays", "workdays", "expected"), [
    (2027, "", "2027-01-01 元旦", "", {("source", "required", 0)}),
    (2027, "通知", "", "", {("holidays", "required", 0)}),
    (2027, "通知", "2027/01/01 元旦", "", {("holidays", "line_format", 1)}),
    (2027, "通知", "2027-01-01", "", {("holidays", "line_format", 1)}),
    (2027, "通知", "2027-02-30 春节", "", {("holidays", "no_such_day", 1)}),
    (2027, "通知", "\n2028-01-01 元旦", "", {("holidays", "other_year", 2)}),
    (2027, "通知", "2027-02-12..2027-02-06 春节", "", {("holidays", "bad_range", 1)}),
    (2027, "通知", "2027-01-01 元旦\n2027-01-01 元旦", "", {("holidays", "twice", 2)}),
    (2027, "通知", "2027-02-13 春节", "2027-02-13 春节调休", {("workdays", "in_both", 0)}),
    (2027, "通知", "2027-01-01 元旦", "2027-02-15 春节调休", {("workdays", "not_weekend", 0)}),
    (1999, "通知", "1999-01-01 元旦", "", {("year", "year_range", 0)}),
    ("20x7", "通知", "2027-01-01 元旦", "", {("year", "year_range", 0)}),
])
def test_a_bad_calendar_is_refused_with_every_problem_named(year, source, holidays, workdays, expected):
    assert _problems(year, source, holidays, workdays) == expected


def test_a_good_calendar_reads_ranges_and_comments():
    calendar = cs.check_year("2027", "国务院办公厅关于2027年部分节假日安排的通知", HOLIDAYS_2027, WORKDAYS_2027)
    assert calendar.year == 2027
    assert len(calendar.holidays) == 3 + 7 and calendar.holidays[date(2027, 2, 9)] == "春节"
    assert sorted(calendar.workdays) == [date(2027, 2, 13), date(2027, 2, 14)]
    assert cs.as_lines(calendar.holidays) == "2027-01-01..2027-01-03 元旦\n2027-02-06..2027-02-12 春节"


def test_a_saved_year_is_a_new_version_with_who_and_when_and_counts_for_new_clocks(store):
    session, _engine = store
    workdays = calendar_named("workdays")
    assert workdays.is_working_day(date(2027, 2, 8))  # no 2027 file: a Monday counts
    assert not workdays.is_working_day(date(2027, 2, 13))  # … and a Saturday does not
    first = cs.check_year(2027, "第一版", "2027-01-01 元旦", "")
    cs.save_year(session, first, actor="admin", now=NOW)
    second = cs.check_year(2027, "国务院办公厅关于2027年部分节假日安排的通知", HOLIDAYS_2027, WORKDAYS_2027)
    cs.save_year(session, second, actor="admin2", now=NOW)
    session.commit()
    state = cs.load(session)
    assert state.stored_years[2027].source.startswith("国务院")
    assert 2026 in state.years and 2027 in state.years
    now_in_force = calendar_named("workdays")
    assert not now_in_force.is_working_day(date(2027, 2, 8))   # 春节
    assert now_in_force.is_working_day(date(2027, 2, 13))      # 调休上班
    assert not now_in_force.is_working_day(date(2026, 10, 1))  # the shipped 2026 file stays
    # a clock started on 2027-02-05 (Friday, Beijing) for one working day ends after the holiday
    start = datetime(2027, 2, 5, 0, 0, tzinfo=UTC)  # 08:00 Beijing
    assert now_in_force.add(start, 86400) == datetime(2027, 2, 13, 0, 0, tzinfo=UTC)
    versions = cs.history(session, cs.HOLIDAYS, 2027)
    assert [(v.created_by, v.payload["source"]) for v in versions] == [
        ("admin2", "国务院办公厅关于2027年部分节假日安排的通知"), ("admin", "第一版")]
    events = session.scalars(select(AuditEvent).where(AuditEvent.kind == "calendar_saved")).all()
    assert [(e.actor, e.data["year"]) for e in events] == [("admin", 2027), ("admin2", 2027)]


def test_another_process_picks_up_a_change_when_it_syncs(store):
    session, _engine = store
    assert cs.sync(session, force=True).version == 0
    cs.save_year(session, cs.check_year(2028, "通知", "2028-01-03 元旦", ""), actor="admin", now=NOW)
    session.commit()
    assert cs.sync(session).stored_years == {}  # checked a moment ago: not yet
    state = cs.sync(session, force=True)
    assert 2028 in state.stored_years and not calendar_named("workdays").is_working_day(date(2028, 1, 3))


@pytest.mark.parametrize(("text", "expected"), [
    ("8:00-21:00", "08:00-21:00"), (" 09:30 - 20:00 ", "09:30-20:00"), ("00:00-24:00", "00:00-24:00"),
    ("21:00-08:00", "hours_order"), ("09:00-09:00", "hours_order"), ("25:00-26:00", "hours_time"),
    ("09:00-24:30", "hours_time"), ("nine to five", "hours_format"), ("", "hours_format"),
])
def test_hours_are_checked(text, expected):
    try:
        assert cs.check_hours(cs.CALLING_HOURS, text) == expected
    except cs.CalendarInvalid as exc:
        assert exc.problems[0].code == expected


def test_saved_hours_replace_the_configured_ones_for_the_calling_window(store):
    session, _engine = store
    calling = AdjustableHours.configured("08:00-21:00", cs.CALLING_HOURS)
    dunning = AdjustableHours.configured("09:00-20:00", cs.DUNNING_HOURS)
    evening = datetime(2026, 12, 6, 12, 30, tzinfo=UTC)  # 20:30 Beijing
    assert calling.window(evening)["open"] and not dunning.window(evening)["open"]
    cs.save_hours(session, cs.CALLING_HOURS, "09:00-20:00", actor="admin", now=NOW)
    cs.save_hours(session, cs.DUNNING_HOURS, "09:00-21:00", actor="admin", now=NOW)
    session.commit()
    cs.load(session)
    assert not calling.window(evening)["open"] and dunning.window(evening)["open"]
    assert calling.window(evening)["opens_at"] == "2026-12-07T09:00:00+08:00"
    with pytest.raises(cs.CalendarInvalid):
        cs.save_hours(session, cs.DUNNING_HOURS, "20:00-09:00", actor="admin", now=NOW)


@pytest.mark.parametrize(("now", "years", "expected"), [
    (datetime(2026, 9, 30, 15, 59, tzinfo=UTC), [2026], []),                  # 23:59 Beijing, Sept
    (datetime(2026, 9, 30, 16, 0, tzinfo=UTC), [2026], [(2027, "next")]),     # 1 October Beijing
    (datetime(2026, 12, 31, 12, 0, tzinfo=UTC), [2026, 2027], []),
    (datetime(2027, 3, 1, 0, 0, tzinfo=UTC), [2026], [(2027, "current")]),
    (datetime(2027, 11, 1, 0, 0, tzinfo=UTC), [2026], [(2027, "current"), (2028, "next")]),
])
def test_a_missing_year_is_flagged_from_october_of_the_year_before(now, years, expected):
    assert [(w.year, w.when) for w in cs.calendar_warnings(now, years)] == expected


def test_the_shipped_2026_file_is_the_default():
    assert cs.calendar_warnings(datetime(2026, 6, 1, tzinfo=UTC)) == []
    assert cs.year_calendar(2026).holidays[date(2026, 10, 1)] == "国庆节"
