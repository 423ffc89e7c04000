"""Escalation alerts for managers and group leaders: a page that refreshes itself, from which they
act — urge the step, hand it to a member of its group, acknowledge the alert (slas/alerts.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from engine import people
from engine.access import allowed
from engine.clock import utcnow
from engine.errors import Conflict, KefuError
from engine.models import OPEN, HumanTask, ProcessInstance
from engine.people import Group, User
from processes import urging
from slas import alerts
from slas.models import Escalation, SlaClock, open_escalations_query

from .access import permission_required
from .errors import STATUS, page_message
from .extensions import db
from .request_limits import db_int

bp = Blueprint("escalations", __name__)
LIMIT = 500


@dataclass
class Alert:
    escalation: Escalation
    instance: ProcessInstance
    holder: str
    overdue_seconds: float
    task: HumanTask | None = None
    members: list[User] = field(default_factory=list)  # whom the step may be handed to
    notified: list[tuple[str, str]] = field(default_factory=list)  # (name, SMS job status)
    acknowledged_by: str = ""
    claimed: bool = False  # else ``holder`` names the step's group


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
    user_ids = {t.assignee_id for t in tasks.values() if t.assignee_id} | {
        r.acknowledged_by_id for r in rows if r.acknowledged_by_id}
    users = dict(db.session.execute(select(User.id, User.display_name).where(User.id.in_(user_ids))).all())
    groups = {g.id: g for g in db.session.scalars(select(Group))}
    told = alerts.notified(db.session, rows)
    found = []
    for row in rows:
        task = tasks.get(row.task_id) if row.task_id else None
        group = groups.get(row.group_id) if row.group_id else None
        claimed = task is not None and task.assignee_id is not None
        holder = users.get(task.assignee_id, "") if claimed else (group.name if group else "")
        members = (sorted((m for m in group.members if m.active), key=lambda m: m.username)
                   if group is not None and task is not None and task.status == OPEN else [])
        found.append(Alert(row, instances[row.instance_id], holder, (now - row.due_at).total_seconds(), task,
                           members, told.get(row.id, []), users.get(row.acknowledged_by_id or 0, ""), claimed))
    return found


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
    shown = visible_escalations(current_user, now)
    if request.args.get("show") == "unacknowledged":
        shown = [a for a in shown if a.escalation.acknowledged_at is None]
    return render_template(template, alerts=shown, warnings=warnings_for(current_user, now), now=now,
                           show=request.args.get("show", ""))


@bp.post("/escalations/<int:escalation_id>/<action>")
@permission_required("read_escalations")
def act(escalation_id: int, action: str):
    """Urge, reassign or acknowledge from the alerts page; a refusal comes back in words."""
    now = utcnow()
    try:
        if action == "acknowledge":
            alerts.acknowledge(db.session, escalation_id, current_user, now)
            done = _("Alert acknowledged.")
        elif action == "reassign":
            task = alerts.reassign(db.session, escalation_id,
                                   request.form.get("assignee_id", type=db_int) or 0, current_user, now)
            done = _("Step handed to %(name)s.", name=db.session.get(User, task.assignee_id).display_name)
        elif action == "urge":
            esc = alerts.get_for(db.session, escalation_id, current_user)
            if esc.task_id is None:
                raise Conflict("this alert concerns the whole case, not one step")
            gap = timedelta(minutes=int(current_app.config.get("KEFU_URGE_MINUTES") or 30))
            urging.urge(db.session, esc.task_id, current_user, request.form.get("note", "")[:500], now, gap)
            done = _("The step was urged; its holder has been told.")
        else:
            return redirect(url_for("escalations.page"))
        db.session.commit()
        flash(done, "success")
    except KefuError as exc:
        db.session.rollback()
        headline, reason = page_message(STATUS.get(type(exc), 400), exc.message)
        flash(reason or headline, "error")
    show = request.form.get("show")  # echoed into the Location header: only what the page knows
    return redirect(url_for("escalations.page", show=show if show == "unacknowledged" else None))
