"""Escalation alerts for managers and group leaders: a page that refreshes itself."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import Blueprint, render_template, request
from flask_login import current_user
from sqlalchemy import select

from engine import people
from engine.access import allowed
from engine.clock import utcnow
from engine.models import HumanTask, ProcessInstance
from engine.people import Group, User
from slas.models import Escalation, SlaClock, open_escalations_query

from .access import permission_required
from .extensions import db

bp = Blueprint("escalations", __name__)
LIMIT = 500


@dataclass
class Alert:
    escalation: Escalation
    instance: ProcessInstance
    holder: str
    overdue_seconds: float


def led_group_ids(user: User) -> set[int]:
    return people.led_group_ids(db.session, user.id)


def visible_escalations(user: User, now: datetime) -> list[Alert]:
    """Open escalations the user may see, with the case and who holds the step."""
    query = open_escalations_query(user.id, allowed(user, "read_every_escalation"), led_group_ids(user))
    rows = list(db.session.scalars(query.limit(LIMIT)))
    instances = {i.id: i for i in db.session.scalars(
        select(ProcessInstance).where(ProcessInstance.id.in_({r.instance_id for r in rows})))}
    tasks = {t.id: t for t in db.session.scalars(
        select(HumanTask).where(HumanTask.id.in_({r.task_id for r in rows if r.task_id})))}
    holder_ids = {t.assignee_id for t in tasks.values() if t.assignee_id}
    users = dict(db.session.execute(select(User.id, User.display_name).where(User.id.in_(holder_ids))).all())
    groups = dict(db.session.execute(select(Group.id, Group.name)).all())
    alerts = []
    for row in rows:
        task = tasks.get(row.task_id) if row.task_id else None
        if task is not None and task.assignee_id:
            holder = users.get(task.assignee_id, "")
        else:
            holder = groups.get(row.group_id, "") if row.group_id else ""
        alerts.append(Alert(row, instances[row.instance_id], holder,
                            (now - row.due_at).total_seconds()))
    return alerts


def warnings_for(user: User, now: datetime) -> list[SlaClock]:
    """Clocks past their warning threshold but not yet escalated (near their limit)."""
    query = select(SlaClock).where(SlaClock.state == "running", SlaClock.level == 0,
                                   SlaClock.warned_at.is_not(None))
    if not allowed(user, "read_every_escalation"):
        query = query.where(SlaClock.group_id.in_(led_group_ids(user) or {-1}))
    return list(db.session.scalars(query.order_by(SlaClock.due_at).limit(LIMIT)))


@bp.get("/escalations")
@permission_required("read_escalations")
def page():
    now = utcnow()
    template = "_escalations_table.html" if request.args.get("fragment") else "escalations.html"
    return render_template(template, alerts=visible_escalations(current_user, now),
                           warnings=warnings_for(current_user, now), now=now)
