"""The administration audit log page (``/admin/audit``): who changed which user, group, role,
permission, calendar or alert rule, and when — paged, filtered by who, what and dates, each event
as a sentence (web/case_text.py ``event_sentence``). Registered on the people pages' blueprint."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from flask import Blueprint, render_template, request
from flask_babel import gettext as _
from sqlalchemy import func, select

from engine.models import AuditEvent
from slas.business_calendar import LOCAL_TZ

from .access import permission_required
from .admin_event_text import ADMIN_KINDS
from .case_text import event_sentence
from .extensions import db
from .request_limits import db_int

PAGE_SIZE = 50


def register(bp: Blueprint) -> None:
    bp.add_url_rule("/admin/audit", view_func=audit, methods=["GET"])


@permission_required("administer")
def audit():
    args = request.args
    errors: dict[str, str] = {}
    query = select(AuditEvent).where(AuditEvent.instance_id.is_(None), AuditEvent.kind.in_(list(ADMIN_KINDS)))
    who = args.get("who", "").strip()
    if who:
        query = query.where(AuditEvent.actor == who)
    kind = args.get("kind", "")
    if kind in ADMIN_KINDS:
        query = query.where(AuditEvent.kind == kind)
    for field in ("since", "until"):
        text = args.get(field, "").strip()
        if not text:
            continue
        try:
            day = date.fromisoformat(text)
            start = datetime.combine(day + timedelta(days=1 if field == "until" else 0), time(), LOCAL_TZ)
        except (ValueError, OverflowError):  # not a date, or the last day of year 9999
            errors[field] = _("A date such as 2026-12-01.")
            continue
        query = query.where(AuditEvent.at >= start if field == "since" else AuditEvent.at < start)
    page = max(1, args.get("page", 1, type=db_int))
    total = db.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    events = list(db.session.scalars(query.order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
                                      .offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE)))
    actors = sorted(a for a in db.session.scalars(select(AuditEvent.actor).distinct().where(
        AuditEvent.instance_id.is_(None), AuditEvent.kind.in_(list(ADMIN_KINDS)))) if a)
    rows = [(e, event_sentence(e)) for e in events]
    pages = max(1, -(-total // PAGE_SIZE))
    return render_template("admin_audit.html", rows=rows, args=args, kinds=ADMIN_KINDS, actors=actors,
                           errors=errors, page=page, pages=pages, total=total,
                           local=lambda at: at.astimezone(LOCAL_TZ).strftime("%Y-%m-%d %H:%M")), \
        422 if errors else 200
