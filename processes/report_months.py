"""Monthly grouping of the statistics (按月): a report ``by=month`` is the report by day added up
per calendar month, so every database groups the same way (no date functions in SQL) and the day
reports' indexes serve it; a year has at most 366 day rows to add up."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from engine.errors import ValidationFailed

MONTH = "month"


def fold(items: Sequence[dict[str, Any]], measures: Sequence[str]) -> list[dict[str, Any]]:
    """Day items (key ``YYYY-MM-DD``) added up into month items (key ``YYYY-MM``), in order."""
    months: dict[str, dict[str, Any]] = {}
    for item in items:
        key = str(item["key"])[:7]
        month = months.setdefault(key, {"key": key, **{m: 0 for m in measures}})
        for m in measures:
            month[m] += int(item[m])
    return [months[key] for key in sorted(months)]


def days_of(key: str, start: date, end: date) -> tuple[date, date]:
    """The days of month ``key`` (``YYYY-MM``) within the period ``start``–``end``."""
    try:
        if len(key) != 7:
            raise ValueError
        first = date.fromisoformat(f"{key}-01")
    except ValueError as exc:
        raise ValidationFailed("unknown month", {"key": "YYYY-MM"}) from exc
    last = (first.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
    return max(first, start), min(last, end)
