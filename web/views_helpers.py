"""Template filters and globals shared by every page (local time, SLA colours, durations)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask, current_app
from flask_babel import get_locale
from flask_babel import gettext as _

from engine.clock import utcnow
from engine.runtime import Engine
from slas.status import sla_state

LOCAL = ZoneInfo("Asia/Shanghai")


def engine() -> Engine:
    """The app's engine (one per process)."""
    return current_app.extensions["kefu_engine"]


def locale() -> str:
    return str(get_locale() or "zh_CN")


def localtime(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return value.astimezone(LOCAL).strftime(fmt) if value else ""


def duration(seconds: float | None) -> str:
    """A short human duration: 2天3小时 / 2d 3h."""
    if seconds is None:
        return ""
    seconds = int(abs(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = []
    if days:
        parts.append(_("%(n)sd", n=days))
    if hours:
        parts.append(_("%(n)sh", n=hours))
    if minutes and not days:
        parts.append(_("%(n)smin", n=minutes))
    return " ".join(parts) or _("%(n)smin", n=0)


def task_sla_state(task: Any, now: datetime | None = None) -> str:
    """The colour of a step in lists; a finished step has none."""
    if task.status != "open":
        return "none"
    return sla_state(task.due_at, task.warn_at, suspended=task.instance.status == "suspended",
                     now=now or utcnow())


def display_value(value: Any) -> Any:
    """Case data as people read it: ISO date-times become local times."""
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and "T" in value:
        try:
            return localtime(datetime.fromisoformat(value))
        except ValueError:
            return value
    return value


def register(app: Flask) -> None:
    app.jinja_env.filters["localtime"] = localtime
    app.jinja_env.filters["duration"] = duration
    app.jinja_env.filters["display"] = display_value
    from .access import can, may_hold_case
    from .case_text import event_sentence, visible_data

    app.jinja_env.globals.update(task_sla_state=task_sla_state, locale=locale, can=can, may_hold_case=may_hold_case,
                                 event_sentence=event_sentence, visible_data=visible_data,
                                 now=lambda: datetime.now(UTC))
