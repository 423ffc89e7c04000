"""The daily and monthly complaint statistics files for the national centre (seed 000 §5.1), sent
through the FTP exchange (processes/file_exchange.py): every Beijing day the tick files the day
before (``TS_D_YYYYMMDD.csv``), and on the first day of a month the month before
(``TS_M_YYYYMM.csv``). The figures are the complaint report's (processes/complaint_facts.py), by
category, with a total row; the exchange makes each file exactly once (by name and content)."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import file_exchange
from .complaint_facts import MEASURES, Period, beijing_day, report

KIND = "statistics"
# The national centre's file keeps its columns: figures added to the report later stay out of it.
NATIONAL = tuple(m for m in MEASURES if m != "urges")
HEADER = ["category", *NATIONAL]


def file_due_statistics(session: Session, now: datetime) -> list[str]:
    """Queue the statistics files due by ``now`` that were not sent yet; returns their names.
    The caller commits."""
    today = beijing_day(now)
    yesterday = today - timedelta(days=1)
    due = [(f"TS_D_{yesterday:%Y%m%d}.csv", Period(yesterday, yesterday, "category"))]
    if today.day == 1:
        first = yesterday.replace(day=1)
        due.append((f"TS_M_{first:%Y%m}.csv", Period(first, yesterday, "category")))
    queued = []
    for name, period in due:
        if _sent(session, name):
            continue
        file_exchange.send_file(session, name, KIND, statistics_csv(session, period), now)
        queued.append(name)
    return queued


def statistics_csv(session: Session, period: Period) -> str:
    """The period's complaint figures by category as CSV (codes, not labels: a file for systems)."""
    items, totals = report(session, period)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["period", _period_text(period.start, period.end)])
    writer.writerow(HEADER)
    for item in items:
        writer.writerow([item["key"] or "", *(item[m] for m in NATIONAL)])
    writer.writerow(["total", *(totals[m] for m in NATIONAL)])
    return out.getvalue()


def _sent(session: Session, name: str) -> bool:
    return session.scalar(select(file_exchange.FileExchange.id).where(
        file_exchange.FileExchange.direction == file_exchange.UP,
        file_exchange.FileExchange.name == name).limit(1)) is not None


def _period_text(start: date, end: date) -> str:
    return start.isoformat() if start == end else f"{start.isoformat()}/{end.isoformat()}"
