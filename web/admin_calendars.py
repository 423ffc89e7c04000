"""Administrators' pages for time: holiday calendars (节假日与调休) per year, calling and dunning
hours — validated, each change a new version with who and when (slas/calendar_store.py) — and the
recent failed sign-ins. Also the warning, on this page and the alerts page, that a year has no
calendar (clocks in it count Monday–Friday)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import sign_in
from engine.clock import utcnow
from engine.database import READ_ONLY
from slas import calendar_store as store

from .access import permission_required
from .extensions import db

bp = Blueprint("calendars", __name__)

PROBLEMS = {
    "required": _l("This field is required."),
    "year_range": _l("A year between %(low)s and %(high)s."),
    "line_format": _l("Write one day per line: 2027-01-01 元旦, or a range 2027-02-10..2027-02-16 春节 (got “%(text)s”)."),
    "no_such_day": _l("No such calendar day: “%(text)s”."),
    "other_year": _l("The day is not in %(year)s."),
    "bad_range": _l("The range “%(text)s” runs backwards or is longer than a month."),
    "twice": _l("%(day)s is listed twice."),
    "in_both": _l("%(day)s is both a day off and an adjusted working day."),
    "not_weekend": _l("%(day)s is a weekday; adjusted working days are Saturdays or Sundays."),
    "hours_format": _l("Write the hours as 08:00-21:00."),
    "hours_time": _l("These are not times of the day."),
    "hours_order": _l("The hours must open before they close."),
}
HOURS_LABELS = {store.CALLING_HOURS: _l("Calling hours (callbacks, return visits)"),
                store.DUNNING_HOURS: _l("Dunning hours (IVR dunning calls)")}
HOURS_CONFIG = {store.CALLING_HOURS: ("KEFU_CALLBACK_HOURS", "08:00-21:00"),
                store.DUNNING_HOURS: ("KEFU_DUNNING_HOURS", "09:00-20:00")}
FAILURE_DAYS = 7


def problem_text(problem: store.Problem) -> str:
    text = str(PROBLEMS.get(problem.code, problem.code)) % dict(problem.params)
    return _("Line %(n)s: %(text)s", n=problem.line, text=text) if problem.line else text


def warning_texts() -> list[str]:
    """The missing-calendar warnings as sentences (for this page and the alerts page)."""
    out = []
    for warning in store.calendar_warnings(utcnow()):
        if warning.when == "current":
            out.append(_("There is no holiday calendar for %(year)s: SLA clocks count Monday to Friday "
                         "as working days. Enter the year's holidays and adjusted working days.",
                         year=warning.year))
        else:
            out.append(_("There is no holiday calendar for %(year)s yet: enter it when the State Council "
                         "publishes the notice; until then clocks in %(year)s count Monday to Friday.",
                         year=warning.year))
    return out


@bp.before_app_request
def _sync_calendars() -> None:
    """Pick up calendars saved by another process (checks at most every 30 seconds)."""
    # On a connection of its own that only reads: in the request's session it would begin the
    # request's transaction before the view chose how (a read-only view would then take SQLite's
    # write lock, and SQLAlchemy warns that its execution options were ignored). Between checks no
    # connection is taken at all: checking one out (and pinging it) cost every request a round trip.
    if not store.due():
        return
    try:
        with db.engine.connect() as conn, Session(bind=conn.execution_options(**{READ_ONLY: True})) as session:
            store.sync(session)
    except Exception:  # a missing table (before migrations) must not stop pages
        current_app.logger.debug("calendar versions not readable yet", exc_info=True)


@bp.app_context_processor
def _globals() -> dict[str, Any]:
    return {"calendar_warnings": warning_texts, "calendar_fallback": calendar_fallback}


def calendar_fallback(clock: Any) -> bool:
    """Whether a working-days clock runs in a year without a holiday calendar (Monday–Friday)."""
    if clock.calendar != "workdays":
        return False
    known = set(store.in_force().years) or set(store.shipped_years())
    years = {clock.started_at.astimezone(store.LOCAL_TZ).year, clock.due_at.astimezone(store.LOCAL_TZ).year}
    return not years <= known


def _hours_in_force(kind: str) -> tuple[str, bool]:
    """(the hours, whether an administrator set them) — else the configured default."""
    stored = store.current_hours(kind)
    if stored:
        return stored, True
    setting, default = HOURS_CONFIG[kind]
    return str(current_app.config.get(setting) or default), False


@bp.get("/admin/calendars")
@permission_required("administer")
def index():
    wanted = request.args.get("year", "")
    if wanted.isdigit() and store.FIRST_YEAR <= int(wanted) <= store.LAST_YEAR:
        return redirect(url_for("calendars.year_form", year=int(wanted)))
    state = store.sync(db.session, force=True)
    now_year = utcnow().astimezone(store.LOCAL_TZ).year
    years = sorted(set(state.years) | {now_year, now_year + 1})
    rows = []
    for year in years:
        calendar = store.year_calendar(year)
        latest = store.history(db.session, store.HOLIDAYS, year, limit=1)
        rows.append({"year": year, "calendar": calendar, "stored": year in state.stored_years,
                     "latest": latest[0] if latest else None})
    hours = {kind: _hours_in_force(kind) for kind in store.HOURS_KINDS}
    versions = list(db.session.scalars(select(store.CalendarVersion)
                                       .order_by(store.CalendarVersion.id.desc()).limit(30)))
    return render_template("admin_calendars.html", rows=rows, hours=hours, labels=HOURS_LABELS,
                           versions=versions, warnings=warning_texts())


@bp.route("/admin/calendars/<int:year>", methods=["GET", "POST"])
@permission_required("administer")
def year_form(year: int):
    store.sync(db.session, force=True)
    if request.method == "POST":
        form = request.form
        values = {"source": form.get("source", ""), "holidays": form.get("holidays", ""),
                  "workdays": form.get("workdays", "")}
        try:
            calendar = store.check_year(year, values["source"], values["holidays"], values["workdays"])
        except store.CalendarInvalid as exc:
            errors: dict[str, list[str]] = {}
            for problem in exc.problems:
                errors.setdefault(problem.field, []).append(problem_text(problem))
            return render_template("admin_calendar_form.html", year=year, values=values, errors=errors), 400
        store.save_year(db.session, calendar, actor=current_user.username, now=utcnow())
        db.session.commit()
        store.load(db.session)
        flash(_("The holiday calendar of %(year)s is saved; new SLA clocks count with it.", year=year), "ok")
        return redirect(url_for("calendars.index"))
    calendar = store.year_calendar(year)
    values = {"source": calendar.source if calendar else "",
              "holidays": store.as_lines(calendar.holidays) if calendar else "",
              "workdays": store.as_lines(calendar.workdays) if calendar else ""}
    history = store.history(db.session, store.HOLIDAYS, year)
    return render_template("admin_calendar_form.html", year=year, values=values, errors={}, history=history)


@bp.post("/admin/calendars/hours/<kind>")
@permission_required("administer")
def save_hours(kind: str):
    if kind not in store.HOURS_KINDS:
        flash(_("Unknown kind of hours."), "error")
        return redirect(url_for("calendars.index"))
    try:
        hours = store.save_hours(db.session, kind, request.form.get("hours", ""),
                                 actor=current_user.username, now=utcnow())
    except store.CalendarInvalid as exc:
        db.session.rollback()
        flash(_("%(what)s were not saved: %(reason)s", what=HOURS_LABELS[kind],
                reason=problem_text(exc.problems[0])), "error")
        return redirect(url_for("calendars.index"))
    db.session.commit()
    store.load(db.session)
    flash(_("%(what)s are now %(hours)s.", what=HOURS_LABELS[kind], hours=hours.payload["hours"]), "ok")
    return redirect(url_for("calendars.index"))


@bp.get("/admin/sign-in-failures")
@permission_required("administer")
def sign_in_failures():
    """Failed sign-ins of the last days, newest first, and whether the account or address is
    locked out now (the same rule the sign-in applies)."""
    now = utcnow()
    rows = list(db.session.scalars(select(sign_in.LoginAttempt).where(
        sign_in.LoginAttempt.ok.is_(False), sign_in.LoginAttempt.at >= now - timedelta(days=FAILURE_DAYS))
        .order_by(sign_in.LoginAttempt.at.desc()).limit(300)))
    locked: dict[tuple[str, str], bool] = {}
    for row in rows:
        key = (row.username, row.address)
        if key not in locked:
            locked[key] = sign_in.wait_before_trying(db.session, row.username, row.address, now) is not None
    return render_template("admin_sign_in_failures.html", rows=rows, locked=locked, days=FAILURE_DAYS)
