"""Business calendars: how SLA time is counted between two instants.

Two calendars exist, chosen per SLA policy by name (``kefu.sla.calendar`` in a BPMN diagram):

* ``24x7`` (:class:`AroundTheClock`): plain wall-clock time.
* ``workdays`` (:class:`WorkingDays`): only time inside working days counts. A working day is a
  whole local calendar day (00:00-24:00, Asia/Shanghai) that is an adjusted working day (调休上班)
  of the holiday file of its year, or else is not a statutory holiday of that file and falls on
  Monday-Friday. Holiday data ships as one JSON file per year, ``calendars/cn-<year>.json``; a year
  without a file falls back to the Monday-Friday rule and is logged once as a warning.

Every public function takes timezone-aware datetimes (naive ones raise ``ValueError``) and returns
aware datetimes in UTC. Internally instants are whole microseconds since the Unix epoch (the
resolution of ``datetime``), so that ``add`` and ``between`` are exact inverses of each other.

This module is pure domain code: it must not import Flask or any web code.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable
from zoneinfo import ZoneInfo

__all__ = [
    "CALENDARS_DIR",
    "LOCAL_TZ",
    "AroundTheClock",
    "Calendar",
    "CalendarFileError",
    "WorkingDays",
    "YearCalendar",
    "install_working_days",
    "load_calendar",
    "load_year_file",
]

logger = logging.getLogger("kefu.slas.calendar")

#: The business's local time zone: working days are local calendar days.
LOCAL_TZ = ZoneInfo("Asia/Shanghai")

#: Where the shipped holiday files live (``cn-<year>.json``).
CALENDARS_DIR = Path(__file__).parent / "calendars"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
_US_PER_SECOND = 1_000_000
_FILE_NAME = re.compile(r"cn-(\d{4})\.json", re.ASCII)
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


@runtime_checkable
class Calendar(Protocol):
    """A way of counting SLA time."""

    name: str

    def add(self, start: datetime, seconds: float) -> datetime:
        """The earliest instant when ``seconds`` of counted time have elapsed after ``start``."""
        ...

    def between(self, start: datetime, end: datetime) -> float:
        """Counted seconds in ``[start, end)``; 0 if ``end <= start``."""
        ...


# --- instants and durations as integer microseconds ---------------------------------------------


def _require_aware(value: datetime, what: str) -> None:
    if not isinstance(value, datetime):
        raise TypeError(f"{what} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware datetime, got {value.isoformat()}")


def _to_us(moment: datetime) -> int:
    """Microseconds since the epoch (aware subtraction goes through UTC)."""
    return (moment - _EPOCH) // _ONE_US


def _from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _duration_us(seconds: float) -> int:
    """``seconds`` rounded to whole microseconds, exactly as ``timedelta`` rounds it."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
        raise TypeError(f"seconds must be a number, got {type(seconds).__name__}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"seconds must be a finite number >= 0, got {seconds!r}")
    try:
        return timedelta(seconds=seconds) // _ONE_US
    except OverflowError as exc:
        raise ValueError(f"seconds out of range: {seconds!r}") from exc


def _to_seconds(us: int) -> float:
    return us / _US_PER_SECOND


# --- 24x7 ---------------------------------------------------------------------------------------


class AroundTheClock:
    """Wall-clock time: every second counts."""

    name: str = "24x7"

    def add(self, start: datetime, seconds: float) -> datetime:
        """``start`` plus ``seconds``, in UTC."""
        _require_aware(start, "start")
        return _from_us(_to_us(start) + _duration_us(seconds))

    def between(self, start: datetime, end: datetime) -> float:
        """Seconds from ``start`` to ``end``; 0 if ``end <= start``."""
        _require_aware(start, "start")
        _require_aware(end, "end")
        return _to_seconds(max(0, _to_us(end) - _to_us(start)))

    def __repr__(self) -> str:
        return "AroundTheClock()"


# --- holiday files ------------------------------------------------------------------------------


class CalendarFileError(ValueError):
    """A holiday file that cannot be used; the message names the file and the problem."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


@dataclass(frozen=True)
class YearCalendar:
    """The State Council's holiday schedule for one year, as read from ``cn-<year>.json``."""

    year: int
    source: str
    #: statutory days off, including weekend days inside a holiday block
    holidays: Mapping[date, str]
    #: adjusted working weekend days (调休上班)
    workdays: Mapping[date, str]


def _parse_entries(path: Path, year: int, key: str, raw: Any) -> dict[date, str]:
    if not isinstance(raw, list):
        raise CalendarFileError(path, f"'{key}' must be a list of {{'date', 'name'}} objects")
    entries: dict[date, str] = {}
    for index, item in enumerate(raw):
        where = f"{key}[{index}]"
        if not isinstance(item, dict):
            raise CalendarFileError(path, f"{where}: must be an object with 'date' and 'name'")
        text, name = item.get("date"), item.get("name")
        if not isinstance(text, str) or not _ISO_DATE.fullmatch(text):
            raise CalendarFileError(path, f"{where}: bad date {text!r}, expected YYYY-MM-DD")
        try:
            day = date.fromisoformat(text)
        except ValueError:
            problem = f"{where}: bad date {text!r}, no such calendar day"
            raise CalendarFileError(path, problem) from None
        if day.year != year:
            problem = f"{where}: date {text} is outside the file's year {year}"
            raise CalendarFileError(path, problem)
        if not isinstance(name, str) or not name.strip():
            raise CalendarFileError(path, f"{where}: 'name' must be a non-empty string")
        if day in entries:
            raise CalendarFileError(path, f"{where}: date {text} is listed twice in '{key}'")
        entries[day] = name
    return entries


def load_year_file(path: Path) -> YearCalendar:
    """Read and validate one ``cn-<year>.json`` file.

    Raises :class:`CalendarFileError` (a ``ValueError``) naming the file and the problem.
    """
    path = Path(path)
    match = _FILE_NAME.fullmatch(path.name)
    if match is None:
        problem = "holiday files must be named cn-<year>.json, e.g. cn-2026.json"
        raise CalendarFileError(path, problem)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise CalendarFileError(path, f"not UTF-8 text: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise CalendarFileError(path, f"not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise CalendarFileError(path, "the top level must be a JSON object")
    missing = [key for key in ("year", "source", "holidays", "workdays") if key not in data]
    if missing:
        raise CalendarFileError(path, f"missing key(s): {', '.join(missing)}")
    year = data["year"]
    if isinstance(year, bool) or not isinstance(year, int):
        raise CalendarFileError(path, f"'year' must be an integer, got {year!r}")
    if year != int(match.group(1)):
        problem = f"'year' is {year} but the file name says {match.group(1)}"
        raise CalendarFileError(path, problem)
    source = data["source"]
    if not isinstance(source, str) or not source.strip():
        raise CalendarFileError(path, "'source' must be a non-empty string (the notice's title)")
    holidays = _parse_entries(path, year, "holidays", data["holidays"])
    workdays = _parse_entries(path, year, "workdays", data["workdays"])
    both = sorted(set(holidays) & set(workdays))
    if both:
        listed = ", ".join(day.isoformat() for day in both)
        raise CalendarFileError(path, f"date(s) in both 'holidays' and 'workdays': {listed}")
    for day in sorted(workdays):
        if day.weekday() < 5:
            raise CalendarFileError(
                path,
                f"workday {day.isoformat()} is a {day.strftime('%A')}; adjusted working days "
                "(调休上班) are Saturdays or Sundays",
            )
    return YearCalendar(
        year=year,
        source=source,
        holidays=MappingProxyType(holidays),
        workdays=MappingProxyType(workdays),
    )


# --- working days -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _YearTable:
    """One local year, precomputed: day ``i`` runs from ``bounds[i]`` to ``bounds[i + 1]``."""

    bounds: list[int]  # UTC microseconds of each local midnight, Jan 1 .. Jan 1 of next year
    working: list[bool]


def _local_midnight_us(day: date) -> int:
    return _to_us(datetime.combine(day, time(), tzinfo=LOCAL_TZ))


class WorkingDays:
    """Counts time only during working days of the Chinese holiday calendar.

    ``add`` and ``between`` step through whole days, O(days spanned), over per-year tables of
    local-midnight instants that are built once per year and cached.
    """

    name: str = "workdays"

    def __init__(self, calendars: Iterable[YearCalendar] = (), *, origin: str = "") -> None:
        self._calendars: dict[int, YearCalendar] = {}
        for calendar in calendars:
            if calendar.year in self._calendars:
                raise ValueError(f"two holiday calendars for the year {calendar.year}")
            self._calendars[calendar.year] = calendar
        self._origin = origin
        self._tables: dict[int, _YearTable] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_directory(cls, directory: Path) -> WorkingDays:
        """Load every ``cn-*.json`` file of ``directory``; a bad file raises ``ValueError``."""
        directory = Path(directory)
        if not directory.is_dir():
            raise ValueError(f"holiday calendar directory not found: {directory}")
        files = sorted(directory.glob("cn-*.json"))
        return cls((load_year_file(path) for path in files), origin=str(directory))

    def years(self) -> list[int]:
        """The years that have a holiday file, ascending."""
        return sorted(self._calendars)

    def calendar_for(self, year: int) -> YearCalendar | None:
        """The loaded holiday schedule of ``year``, or None if it has no file."""
        return self._calendars.get(year)

    def is_working_day(self, day: date) -> bool:
        """Whether the local calendar day ``day`` counts."""
        return self._table(day.year).working[day.timetuple().tm_yday - 1]

    def add(self, start: datetime, seconds: float) -> datetime:
        """The earliest instant, in UTC, at which ``seconds`` of working time follow ``start``.

        A deadline that uses up a working day exactly ends at that day's local 24:00, not at the
        start of the next working day. ``seconds == 0`` returns ``start`` itself.
        """
        _require_aware(start, "start")
        remaining = _duration_us(seconds)
        cursor = _to_us(start)
        if remaining == 0:
            return _from_us(cursor)
        year, index = self._locate(start)
        table = self._table(year)
        while True:
            if index == len(table.working):
                year, index = year + 1, 0
                table = self._table(year)
            day_end = table.bounds[index + 1]
            if table.working[index]:
                available = day_end - cursor
                if remaining <= available:
                    return _from_us(cursor + remaining)
                remaining -= available
            cursor = day_end
            index += 1

    def between(self, start: datetime, end: datetime) -> float:
        """Working seconds in ``[start, end)``; 0 if ``end <= start``."""
        _require_aware(start, "start")
        _require_aware(end, "end")
        cursor, stop = _to_us(start), _to_us(end)
        if stop <= cursor:
            return 0.0
        total = 0
        year, index = self._locate(start)
        table = self._table(year)
        while True:
            if index == len(table.working):
                year, index = year + 1, 0
                table = self._table(year)
            day_end = table.bounds[index + 1]
            if day_end >= stop:
                if table.working[index]:
                    total += stop - cursor
                return _to_seconds(total)
            if table.working[index]:
                total += day_end - cursor
            cursor = day_end
            index += 1

    def __repr__(self) -> str:
        return f"WorkingDays(years={self.years()}, origin={self._origin!r})"

    # -- internals --

    @staticmethod
    def _locate(moment: datetime) -> tuple[int, int]:
        """The local year of ``moment`` and the index of its day in that year."""
        local = moment.astimezone(LOCAL_TZ)
        return local.year, local.timetuple().tm_yday - 1

    def _table(self, year: int) -> _YearTable:
        table = self._tables.get(year)
        if table is None:
            with self._lock:
                table = self._tables.get(year)
                if table is None:
                    table = self._build_table(year)
                    self._tables[year] = table
        return table

    def _build_table(self, year: int) -> _YearTable:
        calendar = self._calendars.get(year)
        if calendar is None:
            logger.warning(
                "no holiday calendar for %d (expected cn-%d.json in %s); counting Monday-Friday "
                "as working days",
                year,
                year,
                self._origin or "the calendar directory",
            )
        first = date(year, 1, 1)
        days = (date(year + 1, 1, 1) - first).days
        bounds: list[int] = []
        working: list[bool] = []
        for offset in range(days + 1):
            day = first + timedelta(days=offset)
            bounds.append(_local_midnight_us(day))
            if offset < days:
                working.append(_classify(calendar, day))
        return _YearTable(bounds=bounds, working=working)


def _classify(calendar: YearCalendar | None, day: date) -> bool:
    if calendar is not None:
        if day in calendar.workdays:
            return True
        if day in calendar.holidays:
            return False
    return day.weekday() < 5


# --- lookup by name -----------------------------------------------------------------------------

_AROUND_THE_CLOCK = AroundTheClock()
_working_days_cache: dict[Path, WorkingDays] = {}
_cache_lock = threading.Lock()
_installed: WorkingDays | None = None


def install_working_days(calendar: WorkingDays | None) -> None:
    """Use ``calendar`` as the default working-days calendar (the administrators' versions, see
    ``slas.calendar_store``); None goes back to the shipped files."""
    global _installed
    _installed = calendar


def load_calendar(name: str, directory: Path | None = None) -> Calendar:
    """The calendar called ``name`` (``"24x7"`` or ``"workdays"``).

    The working-days calendar is loaded from ``directory`` (default: the shipped
    ``slas/calendars``, or the calendar installed by :func:`install_working_days`) once and cached
    per directory; a malformed year file raises
    ``ValueError`` here. An unknown name raises ``ValueError``.
    """
    if name == AroundTheClock.name:
        return _AROUND_THE_CLOCK
    if name == WorkingDays.name:
        installed = _installed
        if directory is None and installed is not None:
            return installed
        key = Path(directory if directory is not None else CALENDARS_DIR).resolve()
        with _cache_lock:
            calendar = _working_days_cache.get(key)
            if calendar is None:
                calendar = WorkingDays.from_directory(key)
                _working_days_cache[key] = calendar
        return calendar
    known = ", ".join(repr(n) for n in (AroundTheClock.name, WorkingDays.name))
    raise ValueError(f"unknown SLA calendar {name!r}; expected one of {known}")
