"""Calendars and calling hours kept in the database: edited by administrators, versioned.

Every change is a new row of ``calendar_versions`` (who and when); the newest row of a kind (and,
for holidays, of a year) is the one in force. Nothing is ever updated or deleted, so the history
is the table itself. What is stored:

* ``holidays`` of a year: the State Council's notice (its title), statutory days off and adjusted
  working days (调休上班). A stored year replaces the shipped file of that year
  (``slas/calendars/cn-<year>.json`` stays the default);
* ``calling_hours`` (回叫/回访) and ``dunning_hours`` (催缴): ``HH:MM-HH:MM``, Beijing time.

Each process holds the versions in force in memory (:func:`sync` reloads them when a newer row
exists, at most every ``SYNC_SECONDS``); clocks started after that use the new calendar, running
clocks keep the deadlines they were given. A year with no calendar at all counts Monday–Friday
(see :mod:`slas.business_calendar`); :func:`calendar_warnings` says so to the administrators.

Validation returns problems as codes with parameters; the web layer words them.
"""

from __future__ import annotations

import re
import threading
import time as _time
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dc_field
from datetime import date, datetime, timedelta
from types import MappingProxyType
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from engine.db import Base
from engine.errors import ValidationFailed
from engine.models import record_event

from . import business_calendar, clocks
from .business_calendar import CALENDARS_DIR, LOCAL_TZ, WorkingDays, YearCalendar

HOLIDAYS, CALLING_HOURS, DUNNING_HOURS = "holidays", "calling_hours", "dunning_hours"
HOURS_KINDS = (CALLING_HOURS, DUNNING_HOURS)
KINDS = (HOLIDAYS, *HOURS_KINDS)
SYNC_SECONDS = 30.0
FIRST_YEAR, LAST_YEAR = 2000, 2100
WARN_FROM_MONTH = 10  # the next year's notice usually appears in November or December
_LINE = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:\s*(?:\.\.|~|～|至)\s*(\d{4}-\d{2}-\d{2}))?\s+(\S.*)$")
_HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$", re.ASCII)


class CalendarVersion(Base):
    """One saved version of a year's holidays or of a set of hours."""

    __tablename__ = "calendar_versions"
    __table_args__ = (Index("ix_calendar_versions_kind", "kind", "year", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    year: Mapped[int | None] = mapped_column(Integer)
    payload: Mapped[dict] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime]


@dataclass(frozen=True)
class Problem:
    """One problem with the input: where (a field), which line (1-based, 0: the field), a code."""

    field: str
    code: str
    line: int = 0
    params: Mapping[str, Any] = dc_field(default_factory=dict)


class CalendarInvalid(ValidationFailed):
    """The calendar or hours were not saved; ``problems`` says why."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("the calendar has invalid fields", {p.field: p.code for p in problems})
        self.problems = problems


# -- validation ---------------------------------------------------------------------------------
def parse_days(text: str, year: int, fld: str, problems: list[Problem]) -> dict[date, str]:
    """Lines ``YYYY-MM-DD 名称`` or ``YYYY-MM-DD..YYYY-MM-DD 名称`` (a range) → {day: name}."""
    days: dict[date, str] = {}
    for number, raw in enumerate((text or "").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            problems.append(Problem(fld, "line_format", number, {"text": line[:40]}))
            continue
        try:
            first = date.fromisoformat(match.group(1))
            last = date.fromisoformat(match.group(2)) if match.group(2) else first
        except ValueError:
            problems.append(Problem(fld, "no_such_day", number, {"text": line[:40]}))
            continue
        if first.year != year or last.year != year:
            problems.append(Problem(fld, "other_year", number, {"year": year}))
            continue
        if last < first or (last - first).days > 31:
            problems.append(Problem(fld, "bad_range", number, {"text": line[:40]}))
            continue
        name = match.group(3).strip()[:40]
        for offset in range((last - first).days + 1):
            day = first + timedelta(days=offset)
            if day in days:
                problems.append(Problem(fld, "twice", number, {"day": day.isoformat()}))
                break
            days[day] = name
    return days


def check_year(year: Any, source: Any, holidays: str, workdays: str) -> YearCalendar:
    """A year's calendar from what an administrator typed; CalendarInvalid listing every problem."""
    problems: list[Problem] = []
    if isinstance(year, str) and year.strip().isdigit():
        year = int(year.strip())
    if isinstance(year, bool) or not isinstance(year, int) or not FIRST_YEAR <= year <= LAST_YEAR:
        raise CalendarInvalid([Problem("year", "year_range", 0, {"low": FIRST_YEAR, "high": LAST_YEAR})])
    source = (source or "").strip() if isinstance(source, str) else ""
    if not source:
        problems.append(Problem("source", "required"))
    off = parse_days(holidays, year, "holidays", problems)
    on = parse_days(workdays, year, "workdays", problems)
    if not off and not any(p.field == "holidays" for p in problems):
        problems.append(Problem("holidays", "required"))
    for day in sorted(set(off) & set(on)):
        problems.append(Problem("workdays", "in_both", 0, {"day": day.isoformat()}))
    for day in sorted(on):
        if day.weekday() < 5:
            problems.append(Problem("workdays", "not_weekend", 0, {"day": day.isoformat()}))
    if problems:
        raise CalendarInvalid(problems)
    return YearCalendar(year=year, source=source[:200], holidays=MappingProxyType(off),
                        workdays=MappingProxyType(on))


def check_hours(kind: str, text: Any) -> str:
    """``HH:MM-HH:MM`` normalised (``08:00-21:00``); CalendarInvalid otherwise."""
    if kind not in HOURS_KINDS:
        raise ValueError(f"unknown kind of hours {kind!r}")
    match = _HOURS.match(text if isinstance(text, str) else "")
    if match is None:
        raise CalendarInvalid([Problem(kind, "hours_format")])
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
        raise CalendarInvalid([Problem(kind, "hours_time")])
    if (h1, m1) >= (h2, m2):
        raise CalendarInvalid([Problem(kind, "hours_order")])
    return f"{h1:02d}:{m1:02d}-{h2:02d}:{m2:02d}"


# -- saving -------------------------------------------------------------------------------------
def _payload(calendar: YearCalendar) -> dict[str, Any]:
    def entries(days: Mapping[date, str]) -> list[dict[str, str]]:
        return [{"date": d.isoformat(), "name": n} for d, n in sorted(days.items())]

    return {"source": calendar.source, "holidays": entries(calendar.holidays),
            "workdays": entries(calendar.workdays)}


def _from_payload(year: int, payload: Mapping[str, Any]) -> YearCalendar:
    def days(key: str) -> dict[date, str]:
        return {date.fromisoformat(e["date"]): e["name"] for e in payload.get(key) or []}

    return YearCalendar(year=year, source=str(payload.get("source") or ""),
                        holidays=MappingProxyType(days("holidays")), workdays=MappingProxyType(days("workdays")))


def save_year(session: Session, calendar: YearCalendar, *, actor: str, now: datetime) -> CalendarVersion:
    """A new version of ``calendar.year``'s holidays (audited; the caller commits)."""
    row = CalendarVersion(kind=HOLIDAYS, year=calendar.year, payload=_payload(calendar),
                          created_by=actor[:40], created_at=now)
    session.add(row)
    record_event(session, "calendar_saved", at=now, actor=actor,
                 message=f"holidays {calendar.year}: {len(calendar.holidays)} day(s) off, "
                         f"{len(calendar.workdays)} adjusted working day(s)",
                 data={"kind": HOLIDAYS, "year": calendar.year, "source": calendar.source})
    return row


def save_hours(session: Session, kind: str, text: Any, *, actor: str, now: datetime) -> CalendarVersion:
    """A new version of the calling or dunning hours (validated, audited; the caller commits)."""
    hours = check_hours(kind, text)
    row = CalendarVersion(kind=kind, year=None, payload={"hours": hours}, created_by=actor[:40], created_at=now)
    session.add(row)
    record_event(session, "calendar_saved", at=now, actor=actor, message=f"{kind}: {hours}",
                 data={"kind": kind, "hours": hours})
    return row


def history(session: Session, kind: str, year: int | None = None, limit: int = 50) -> list[CalendarVersion]:
    """The versions of a kind (and year), newest first."""
    query = select(CalendarVersion).where(CalendarVersion.kind == kind)
    if year is not None:
        query = query.where(CalendarVersion.year == year)
    return list(session.scalars(query.order_by(CalendarVersion.id.desc()).limit(limit)))


# -- what is in force, per process --------------------------------------------------------------
@dataclass(frozen=True)
class InForce:
    """The versions this process uses: ``version`` is the newest row id seen (0: none)."""

    version: int = 0
    stored_years: Mapping[int, YearCalendar] = dc_field(default_factory=dict)
    hours: Mapping[str, str] = dc_field(default_factory=dict)
    shipped_years: tuple[int, ...] = ()

    @property
    def years(self) -> list[int]:
        """Every year with a holiday calendar (shipped or stored)."""
        return sorted(set(self.shipped_years) | set(self.stored_years))


_state = InForce()
_checked_at = float("-inf")
_lock = threading.Lock()


def in_force() -> InForce:
    return _state


def current_hours(kind: str) -> str | None:
    """The stored hours of ``kind`` in force in this process (None: the configured default)."""
    return _state.hours.get(kind)


def load(session: Session) -> InForce:
    """Read the newest version of everything and put it in force in this process."""
    global _state, _checked_at
    rows = list(session.scalars(select(CalendarVersion).order_by(CalendarVersion.id)))
    years: dict[int, YearCalendar] = {}
    hours: dict[str, str] = {}
    for row in rows:  # later rows replace earlier ones
        if row.kind == HOLIDAYS and row.year is not None:
            years[row.year] = _from_payload(row.year, row.payload)
        elif row.kind in HOURS_KINDS:
            hours[row.kind] = str(row.payload.get("hours"))
    shipped = _shipped()
    merged = {y: shipped.calendar_for(y) for y in shipped.years()}
    merged.update(years)
    with _lock:
        business_calendar.install_working_days(
            WorkingDays([c for c in merged.values() if c is not None], origin="calendar_versions"))
        clocks.calendar_named.cache_clear()
        _state = InForce(rows[-1].id if rows else 0, MappingProxyType(years), MappingProxyType(hours),
                         tuple(shipped.years()))
        _checked_at = _time.monotonic()
    return _state


def sync(session: Session, *, force: bool = False) -> InForce:
    """Reload when a newer version exists; checks the database at most every SYNC_SECONDS."""
    global _checked_at
    if not force and not due():
        return _state
    _checked_at = _time.monotonic()
    newest = session.scalar(select(func.max(CalendarVersion.id))) or 0
    return load(session) if force or newest != _state.version else _state


def due() -> bool:
    """Whether :func:`sync` would look at the database now (callers skip opening a connection)."""
    return _time.monotonic() - _checked_at >= SYNC_SECONDS


def reset() -> None:
    """Back to the shipped files and configured hours (tests)."""
    global _state, _checked_at
    with _lock:
        business_calendar.install_working_days(None)
        clocks.calendar_named.cache_clear()
        _state, _checked_at = InForce(), float("-inf")


@dataclass(frozen=True)
class CalendarWarning:
    """A year without a holiday calendar: ``current`` (clocks count Monday–Friday now) or ``next``."""

    year: int
    when: str


def calendar_warnings(now: datetime, years: list[int] | None = None) -> list[CalendarWarning]:
    """Missing calendars: this year's at once, next year's from October of this year."""
    known = set(_state.years if years is None else years)
    if years is None and not _state.version and not known:
        known = set(_shipped().years())
    local = now.astimezone(LOCAL_TZ)
    out = []
    if local.year not in known:
        out.append(CalendarWarning(local.year, "current"))
    if local.month >= WARN_FROM_MONTH and local.year + 1 not in known:
        out.append(CalendarWarning(local.year + 1, "next"))
    return out


def year_calendar(year: int) -> YearCalendar | None:
    """The calendar in force for ``year`` (stored, else shipped), None when there is none."""
    stored = _state.stored_years.get(year)
    if stored is not None:
        return stored
    return _shipped().calendar_for(year)


def shipped_years() -> list[int]:
    """The years of the shipped holiday files."""
    return _shipped().years()


def _shipped() -> WorkingDays:
    calendar = business_calendar.load_calendar(WorkingDays.name, CALENDARS_DIR)
    assert isinstance(calendar, WorkingDays)
    return calendar


def as_lines(days: Mapping[date, str]) -> str:
    """Days as the form shows them, consecutive days of one name as a range."""
    lines: list[str] = []
    run: list[date] = []
    ordered = sorted(days.items())
    for index, (day, name) in enumerate(ordered):
        run.append(day)
        following = ordered[index + 1] if index + 1 < len(ordered) else None
        if following is None or following[1] != name or (following[0] - day).days != 1:
            lines.append(f"{run[0].isoformat()}" + (f"..{run[-1].isoformat()}" if len(run) > 1 else "")
                         + f" {name}")
            run = []
    return "\n".join(lines)

