"""REST API: holiday calendars and calling hours (administrators) — ``GET /api/v1/calendars``,
``PUT /api/v1/calendars/<year>``, ``PUT /api/v1/calling-hours/<kind>``; versioned and audited by
slas/calendar_store.py, as on the admin page (web/admin_calendars.py)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from flask import Blueprint, current_app, g, jsonify

from engine.clock import utcnow
from slas import calendar_store as store

from ..admin_calendars import HOURS_CONFIG, problem_text
from ..errors import error_response
from ..extensions import db
from .admin import admin_required
from .openapi import BOOLEAN, INTEGER, STRING, documented, nullable, obj
from .shapes import json_body

DAY = obj({"date": {"type": "string", "format": "date"}, "name": STRING})
DAYS = {"type": "array", "items": DAY}
YEAR = obj({"year": INTEGER, "source": STRING, "holidays": DAYS, "workdays": DAYS, "stored": BOOLEAN,
            "changed_by": nullable(STRING), "changed_at": nullable(STRING)})
HOURS = obj({"hours": STRING, "stored": BOOLEAN})
WARNING = obj({"year": INTEGER, "when": {"type": "string", "enum": ["current", "next"]}})
KIND = {"type": "string", "enum": list(store.HOURS_KINDS)}


def register(bp: Blueprint) -> None:
    bp.get("/calendars")(list_calendars)
    bp.put("/calendars/<int:year>")(save_calendar)
    bp.put("/calling-hours/<kind>")(save_hours)


def _days(days: Mapping[date, str]) -> list[dict[str, str]]:
    return [{"date": d.isoformat(), "name": n} for d, n in sorted(days.items())]


def _year(year: int) -> dict[str, Any] | None:
    calendar = store.year_calendar(year)
    if calendar is None:
        return None
    latest = store.history(db.session, store.HOLIDAYS, year, limit=1)
    return {"year": year, "source": calendar.source, "holidays": _days(calendar.holidays),
            "workdays": _days(calendar.workdays), "stored": year in store.in_force().stored_years,
            "changed_by": latest[0].created_by if latest else None,
            "changed_at": latest[0].created_at.isoformat() if latest else None}


def _hours(kind: str) -> dict[str, Any]:
    stored = store.current_hours(kind)
    setting, default = HOURS_CONFIG[kind]
    return {"hours": stored or str(current_app.config.get(setting) or default), "stored": bool(stored)}


@documented("Holiday calendars by year, the calling and dunning hours in force, missing-year warnings",
            response=obj({"years": {"type": "array", "items": YEAR},
                          "hours": obj({k: HOURS for k in store.HOURS_KINDS}),
                          "warnings": {"type": "array", "items": WARNING}}))
@admin_required
def list_calendars():
    state = store.sync(db.session, force=True)
    years = [item for item in (_year(y) for y in state.years) if item is not None]
    return jsonify({"years": years, "hours": {k: _hours(k) for k in store.HOURS_KINDS},
                    "warnings": [{"year": w.year, "when": w.when} for w in store.calendar_warnings(utcnow())]})


def _lines(value: Any) -> str | None:
    """A list of ``{date, name}`` as the form's lines (None: not such a list)."""
    if not isinstance(value, list) or not all(isinstance(i, dict) for i in value):
        return None
    return "\n".join(f"{i.get('date')} {i.get('name')}" for i in value)


@documented("Save a year's holidays and adjusted working days (调休) as a new version",
            request=obj({"source": STRING, "holidays": DAYS, "workdays": DAYS}, ["source", "holidays"]),
            response=YEAR)
@admin_required
def save_calendar(year: int):
    body = json_body()
    holidays, workdays = _lines(body.get("holidays")), _lines(body.get("workdays", []))
    if holidays is None or workdays is None:
        return error_response(422, "validation_failed", "holidays and workdays are lists of {date, name}",
                              fields={k: "a list of {date, name}" for k, v in
                                      (("holidays", holidays), ("workdays", workdays)) if v is None})
    try:
        calendar = store.check_year(year, body.get("source"), holidays, workdays)
    except store.CalendarInvalid as exc:
        fields: dict[str, str] = {}
        for problem in exc.problems:
            fields.setdefault(problem.field, problem_text(problem))
        return error_response(422, "validation_failed", "the calendar has invalid fields", fields=fields)
    store.save_year(db.session, calendar, actor=g.api_user.username, now=utcnow())
    db.session.commit()
    store.load(db.session)
    return jsonify(_year(year))


@documented("Set the calling (calling_hours) or dunning (dunning_hours) hours, e.g. 08:00-21:00",
            request=obj({"hours": STRING}), response=HOURS)
@admin_required
def save_hours(kind: str):
    if kind not in store.HOURS_KINDS:
        return error_response(404, "not_found", f"no hours called '{kind}'")
    try:
        store.save_hours(db.session, kind, json_body().get("hours"), actor=g.api_user.username, now=utcnow())
    except store.CalendarInvalid as exc:
        db.session.rollback()
        return error_response(422, "validation_failed", "the hours are invalid",
                              fields={kind: problem_text(exc.problems[0])})
    db.session.commit()
    store.load(db.session)
    return jsonify(_hours(kind))
