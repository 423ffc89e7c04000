"""Which text a case's SMS event is about and to whom, for its sentence (web/case_text.py): the
template's title (投诉受理通知) or the text's opening words, and the recipient — the customer, or
a member of staff by role and name (a leader told of an alert is not "the customer's handset")."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import g
from flask_babel import gettext as _
from sqlalchemy import select

from engine.outbox import ConnectorJob
from engine.people import User
from processes.sms_templates import DEFAULTS, SmsTemplate

from .extensions import db
from .people_text import role_label

# The role a member of staff is named by, most specific first.
_ROLE_ORDER = ("manager", "leader", "handler", "analyst", "admin", "agent")
OPENING = 16  # characters of a text without a template that name it


@dataclass(frozen=True)
class SmsFacts:
    title: str  # the text's title, or its opening words; "" when unknown
    staff: str  # "班长 张敏" when the recipient is a member of staff, else ""


def sms_facts(event_data: dict[str, Any] | None) -> SmsFacts | None:
    """What the SMS job an event names was (None without a job); one query per job and request."""
    job_id = (event_data or {}).get("job_id")
    if not isinstance(job_id, int):
        return None
    cache: dict[int, SmsFacts | None] = g.setdefault("kefu_sms_facts", {})
    if job_id not in cache:
        job = db.session.get(ConnectorJob, job_id)
        cache[job_id] = _facts(job.params or {}) if job is not None and job.operation == "sms.send" else None
    return cache[job_id]


def _facts(params: dict[str, Any]) -> SmsFacts:
    code, text = params.get("template"), str(params.get("text") or "")
    if isinstance(code, str) and code:
        stored = db.session.get(SmsTemplate, code)
        title = stored.title if stored is not None else DEFAULTS.get(code, ("",))[0]
    else:
        title = text[:OPENING] + ("…" if len(text) > OPENING else "")
    staff = ""
    to = params.get("to")
    if isinstance(to, str) and to:
        user = db.session.scalars(select(User).where(User.phone == to).limit(1)).first()
        if user is not None:
            role = next((r for r in _ROLE_ORDER if r in user.role_set), "")
            label = role_label(role) if role else ""
            named = not label or user.display_name.startswith(label)  # demo names carry the role
            staff = user.display_name if named else f"{label} {user.display_name}"
    return SmsFacts(title, staff)


def recipient(facts: SmsFacts | None) -> str:
    """To whom, in words."""
    if facts is None:
        return ""
    return facts.staff or _("the customer")
