"""What supervisors do from the alerts page: acknowledge an escalation (seen, on it), hand its step
to a member of the step's group, and read who was told (the SMS the scanner queued for it)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine import access, people
from engine.errors import Conflict, Forbidden, NotFound, ValidationFailed
from engine.models import OPEN, HumanTask, record_event
from engine.outbox import ConnectorJob
from engine.people import User

from .models import Escalation


def may_act(session: Session, user: User, esc: Escalation) -> bool:
    """Managers act on every escalation, leaders on those of the groups they lead."""
    if access.allowed(user, "read_every_escalation"):
        return True
    return esc.group_id is not None and esc.group_id in people.led_group_ids(session, user.id)


def get_for(session: Session, escalation_id: int, user: User) -> Escalation:
    esc = session.get(Escalation, escalation_id)
    if esc is None or not may_act(session, user, esc):
        raise NotFound(f"escalation {escalation_id} not found")
    return esc


def acknowledge(session: Session, escalation_id: int, actor: User, now: datetime) -> Escalation:
    """Record that ``actor`` saw the alert; the first acknowledgement stands."""
    esc = get_for(session, escalation_id, actor)
    if esc.cleared_at is not None:
        raise Conflict("this alert is already cleared")
    if esc.acknowledged_at is None:
        esc.acknowledged_at, esc.acknowledged_by_id = now, actor.id
        record_event(session, "escalation_acknowledged", at=now, instance_id=esc.instance_id,
                     task_id=esc.task_id, actor=actor.username, message=esc.title,
                     data={"level": esc.level})
    return esc


def reassign(session: Session, escalation_id: int, assignee_id: int, actor: User, now: datetime) -> HumanTask:
    """Hand the escalated step to a member of its group (a supervisor who may act on the alert)."""
    esc = get_for(session, escalation_id, actor)
    task = session.get(HumanTask, esc.task_id) if esc.task_id else None
    if task is None:
        raise Conflict("this alert concerns the whole case, not one step")
    if task.status != OPEN:
        raise Conflict("this task is already done")
    assignee = session.get(User, assignee_id)
    if assignee is None or not assignee.active or (task.group_id is not None
                                                   and not access.in_group(assignee, task.group_id)):
        raise ValidationFailed("the assignee is not in the task's group", {"assignee": "not a member of the group"})
    if not (access.leads(session, actor, task) or access.allowed(actor, "read_every_escalation")):
        raise Forbidden("only the group leader may reassign this task")
    task.assignee_id = assignee.id
    record_event(session, "task_assigned", at=now, instance_id=task.instance_id, task_id=task.id,
                 actor=actor.username, message=f"{task.title} → {assignee.display_name}")
    return task


def notified(session: Session, escalations: list[Escalation]) -> dict[int, list[tuple[str, str]]]:
    """Per escalation, ``(name, SMS job status)`` of each supervisor texted. The texts' keys are
    ``esc-<escalation>-<user>`` (slas/notifications.py) and the people they can name are known (the
    leader the alert names, else the managers), so the jobs are read by their unique key."""
    if not escalations:
        return {}
    managers = [u.id for u in session.scalars(select(User).where(User.active.is_(True))) if u.has_role("manager")]
    keys = [f"esc-{e.id}-{uid}" for e in escalations
            for uid in ([e.target_user_id] if e.target_user_id is not None else managers)]
    jobs: list[tuple[str, str]] = []
    for chunk in range(0, len(keys), 500):
        jobs += [(k, s) for k, s in session.execute(select(ConnectorJob.key, ConnectorJob.status)
                                                    .where(ConnectorJob.key.in_(keys[chunk:chunk + 500])))]
    user_ids = {int(key.rsplit("-", 1)[1]) for key, _status in jobs}
    names = dict(session.execute(select(User.id, User.display_name).where(User.id.in_(user_ids))).all())
    told: dict[int, list[tuple[str, str]]] = {}
    for key, status in sorted(jobs):
        _prefix, esc_id, user_id = key.split("-")
        told.setdefault(int(esc_id), []).append((names.get(int(user_id), ""), status))
    return told
