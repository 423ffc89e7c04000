"""Transfer to a city's remote seat (转接到地市远程坐席): a complaint that needs local service
(a site visit, a business hall, a local line) has its open step moved to a city-level group
(地市中心, ``groups.level == "city"``), whose remote-seat agents take it in their group inbox.

The step keeps its place in the diagram; only who works it changes: the task's group, nobody
holding it, its SLA clock's group (escalations go to the city's leader), and a line on the case's
history with the reason, and the complaint statistics count the case under that city. The caller
commits.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from engine import access
from engine.errors import Conflict, Forbidden, NotFound, ValidationFailed
from engine.models import OPEN, HumanTask, record_event
from engine.people import Group, User
from slas.models import PAUSED, RUNNING, SlaClock

from . import complaint_facts

REASON_MAX = 500


def city_groups(session: Session) -> list[Group]:
    """The city centres' groups a step can be transferred to, by city then name."""
    return list(session.scalars(select(Group).where(Group.level == "city").order_by(Group.city, Group.name)))


def may_transfer(session: Session, user: User, task: HumanTask) -> bool:
    """Who may send a step to a city: whoever holds it, a member of its group while nobody holds
    it, its group's leader, and leaders and managers of the case (``manage_cases``)."""
    if task.status != OPEN:
        return False
    if task.assignee_id == user.id or access.leads(session, user, task):
        return True
    if task.assignee_id is None and task.group_id is not None and access.in_group(user, task.group_id):
        return True
    return access.allowed(user, "manage_cases") and access.may_view_instance(session, user, task.instance)


def transfer_to_city(session: Session, task_id: int, group_code: str, reason: str, *, actor: User,
                     now: datetime) -> HumanTask:
    """Move the open step ``task_id`` to the city group ``group_code`` with ``reason``."""
    task = session.get(HumanTask, task_id)
    if task is None or not access.may_see_task(session, actor, task):
        raise NotFound(f"task {task_id} not found")
    if task.status != OPEN:
        raise Conflict("this step is already done")
    if not may_transfer(session, actor, task):
        raise Forbidden("only whoever holds the step, its group or a leader may transfer it")
    target = session.scalar(select(Group).where(Group.code == (group_code or "").strip()))
    if target is None or target.level != "city":
        raise ValidationFailed("choose a city centre's group", {"group": "not_city_group"})
    text = (reason or "").strip()
    if not text:
        raise ValidationFailed("a reason is required", {"reason": "required"})
    if len(text) > REASON_MAX:
        raise ValidationFailed(f"the reason has at most {REASON_MAX} characters", {"reason": "too_long"})
    if task.group_id == target.id:
        raise Conflict("the step is already with this city's remote seats")
    source = session.get(Group, task.group_id) if task.group_id else None
    task.group_id, task.assignee_id = target.id, None
    session.execute(update(SlaClock).where(SlaClock.task_id == task.id, SlaClock.state.in_((RUNNING, PAUSED)))
                    .values(group_id=target.id).execution_options(synchronize_session=False))
    record_event(session, "transferred_to_city", at=now, instance_id=task.instance_id, task=task,
                 actor=actor.username, message=f"{task.title} → {target.name}: {text}",
                 data={"from_group": source.code if source else None, "to_group": target.code,
                       "city": target.city, "reason": text})
    if target.city:
        complaint_facts.set_city(session, task.instance_id, target.city)  # the statistics' 地市: now the city's
    task.instance.updated_at = now
    return task
