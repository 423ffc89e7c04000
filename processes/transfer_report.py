"""The roaming complaint transfer statistics (漫游投诉转递统计): one indexed GROUP BY over
``roaming_transfers`` — each row is already the denormalised fact of one electronic dispatch,
written in the steps that move it (processes/roaming.py, processes/national.py), with the Beijing
day it was recorded (``created_day``). No workflow is read.

Every figure counts the transfers *recorded* in the period (a cohort, Beijing days), by partner
province (the other side, the national centre included), direction (``out`` sent to the home
province or escalated to the national centre, ``in`` received from a visited province or
dispatched by the national centre), day or month (the days added up, processes/report_months.py):

* **transferred** 转递量 — dispatches sent or received;
* **acknowledged** 已确认 — the receiving side confirmed the dispatch (its success mark);
* **answered** 已答复 — the receipt (电子回单) came back (``out``) or our case ended and its
  receipt went out (``in``);
* **answered_in_time** 按时答复 — answered by the final-reply deadline;
* **overdue** 逾期 — answered late, or still unanswered past the final-reply deadline (as of the
  moment the report is read);
* **failed** 转递失败（退回） — the dispatch or the receipt was refused or never confirmed after
  every retry (an incident is open);
* **national** 上报全国中心 — escalations to the national centre (``out`` to the partner marked
  national).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, false, func, or_, select, true
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from engine.database import READ_ONLY
from engine.errors import ValidationFailed

from . import complaint_facts, report_months
from .roaming import FAILED, IN, OUT, RoamingTransfer

MEASURES = ("transferred", "acknowledged", "answered", "answered_in_time", "overdue", "failed", "national")
DIMENSIONS = ("partner", "direction", "day", report_months.MONTH)
DIRECTIONS = (OUT, IN)


Period = complaint_facts.Period  # by: partner | direction | day | month


def check_period(start: str | None, end: str | None, by: str | None) -> Period:
    """``from``/``to`` (YYYY-MM-DD, inclusive, at most MAX_DAYS days) and ``by``;
    ValidationFailed naming the fields otherwise."""
    return complaint_facts.check_period(start, end, by, DIMENSIONS)


_t = RoamingTransfer.__table__.c


def conditions(now: datetime, national: str | None) -> dict[str, ColumnElement[bool]]:
    """Each figure's condition on one transfer row (``national``: the centre's partner code)."""
    answered = _t.answered_at.is_not(None)
    return {
        "transferred": true(),
        "acknowledged": _t.acknowledged_at.is_not(None),
        "answered": answered,
        "answered_in_time": and_(answered, _t.late.is_(False)),
        "overdue": or_(and_(answered, _t.late.is_(True)),
                       and_(~answered, _t.status != FAILED, _t.final_reply_due < now)),
        "failed": _t.status == FAILED,
        "national": and_(_t.direction == OUT, _t.partner == national) if national else false(),
    }


def report_query(period: Period, now: datetime, national: str | None) -> Select[Any]:
    """``(key, *MEASURES)`` rows ordered by key, read from the ``created_day`` index range."""
    key = {"partner": _t.partner, "direction": _t.direction, "day": _t.created_day}[period.by]
    figures = conditions(now, national)
    return (select(key.label("key"), *(func.sum(case((figures[m], 1), else_=0)).label(m) for m in MEASURES))
            .where(_t.created_day.between(period.start, period.end))
            .group_by(key).order_by(key))


def report(session: Session, period: Period, now: datetime,
           national: str | None) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """``(items, totals)`` of integer counts (key: the partner's code, ``out``/``in``, the day
    as YYYY-MM-DD or the month as YYYY-MM), read on a connection of its own that takes no write lock."""
    monthly = period.by == report_months.MONTH
    bind = session.get_bind()
    db = bind.engine if isinstance(bind, Connection) else bind
    with db.connect() as connection:
        rows = connection.execution_options(**{READ_ONLY: True}).execute(
            report_query(replace(period, by="day") if monthly else period, now, national)).all()
    items = [{"key": row.key.isoformat() if isinstance(row.key, date) else row.key,
              **{m: int(getattr(row, m) or 0) for m in MEASURES}} for row in rows]
    if monthly:  # by day, then added up per month
        items = report_months.fold(items, MEASURES)
    if period.by == "direction":  # sent before received, whatever the codes' alphabet says
        items.sort(key=lambda item: DIRECTIONS.index(item["key"]) if item["key"] in DIRECTIONS else 2)
    return items, {m: sum(int(item[m]) for item in items) for m in MEASURES}


def drill_down(period: Period, key: str | None, measure: str, now: datetime, national: str | None) -> Select[Any]:
    """The ids of the cases behind one figure (``key`` None: every key)."""
    if measure not in MEASURES:
        raise ValidationFailed("unknown figure", {"measure": f"one of {', '.join(MEASURES)}"})
    if key is not None and period.by == report_months.MONTH:  # the month's days within the period
        first, last = report_months.days_of(key, period.start, period.end)
        period, key = replace(period, start=first, end=last), None
    query = select(_t.instance_id).where(_t.created_day.between(period.start, period.end),
                                         _t.instance_id.is_not(None), conditions(now, national)[measure])
    if key is None:
        return query
    if period.by == "day":
        try:
            return query.where(_t.created_day == date.fromisoformat(key))
        except ValueError as exc:
            raise ValidationFailed("unknown day", {"key": "YYYY-MM-DD"}) from exc
    return query.where((_t.partner if period.by == "partner" else _t.direction) == key)
