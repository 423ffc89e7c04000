"""The SLA state of a step as its users see it: on time, near its limit, overdue or paused."""

from __future__ import annotations

from datetime import datetime

NONE, OK, WARNING, OVERDUE, PAUSED = "none", "ok", "warning", "overdue", "paused"


def sla_state(due_at: datetime | None, warn_at: datetime | None, *, suspended: bool,
              now: datetime) -> str:
    """``none`` (no limit), ``paused`` (case waits on the customer), ``overdue``, ``warning``, ``ok``."""
    if due_at is None:
        return NONE
    if suspended:
        return PAUSED
    if now >= due_at:
        return OVERDUE
    if warn_at is not None and now >= warn_at:
        return WARNING
    return OK
