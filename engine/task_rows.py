"""The inbox rows of a step: open ``human_tasks`` rows mirror the workflow's READY user tasks.

A step opens a row for each new READY user task (its group from the lane or a data variable, its
assignee by the rework and case-owner rules, whether the customer is a VIP) and cancels the rows
whose task is gone. Listeners (SLA clocks, assignment rules) hear of every row opened and closed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from . import appends, definitions
from .listeners import StepListener
from .models import CANCELLED, DONE, OPEN, HumanTask, ProcessInstance, append_event, open_tasks_of_instance
from .people import Group, GroupIndex, User, members_among
from .task_tree import was_pruned

ASSIGN_PROPERTY = "kefu.assign"  # "leader": the task goes to the leader of its group
VIP_LEVELS = ("level", "customer_level")  # data variables naming the customer's level


def vip_of(data: Mapping[str, Any]) -> bool:
    """A VIP customer's case: ``vip`` true, or ``level`` / ``customer_level`` ``vip`` (as the
    customer lookup in billing names it). The inbox lists its steps first."""
    return data.get("vip") is True or any(str(data.get(k) or "").lower() == "vip" for k in VIP_LEVELS)


def close_task(session: Session, task: HumanTask, *, by: int, now: datetime) -> None:
    """Mark an open row completed by ``by``. The object shows it at once; the ``UPDATE`` is written
    with the step's batched rows (engine/appends.py: on PostgreSQL within the step's one statement)
    rather than by the ORM's flush."""
    for key, value in (("assignee_id", by), ("status", DONE), ("completed_at", now), ("completed_by", by)):
        set_committed_value(task, key, value)
    appends.batch(session, ("kefu.task_closes", by, now), lambda: _Closes(by, now)).ids.append(task.id)


class _Closes:
    """The rows a step completes (one actor, one instant): one ``UPDATE``."""

    def __init__(self, by: int, now: datetime) -> None:
        self.by, self.now, self.ids = by, now, list[int]()

    def statements(self) -> list[appends.Statement]:
        return [(_CLOSE, {"close_ids": self.ids, "close_by": self.by, "close_at": self.now}, None)]


_TASKS = cast(Table, HumanTask.__table__)
_CLOSE = (update(_TASKS).where(_TASKS.c.id.in_(bindparam("close_ids", expanding=True)))
          .values(assignee_id=bindparam("close_by"), status=DONE, completed_at=bindparam("close_at"),
                  completed_by=bindparam("close_by")))


class TaskRows:
    """Keeps an instance's open inbox rows in step with its workflow."""

    def __init__(self, listeners: Sequence[StepListener], groups: GroupIndex) -> None:
        self.listeners, self.groups = listeners, groups

    def sync(self, session: Session, instance: ProcessInstance, workflow: BpmnWorkflow, now: datetime, *,
             actor: User | None, open_rows: list[HumanTask] | None) -> None:
        """Open and cancel rows (``open_rows``: the rows open before this step when the caller
        knows them, else they are read)."""
        ready = {str(t.id): t for t in workflow.get_tasks(state=TaskState.READY, manual=True)}
        existing = open_rows if open_rows is not None else open_tasks_of_instance(session, instance.id)
        known = set()
        for row in existing:
            known.add(row.task_guid)
            if row.status != OPEN:  # closed earlier in this step (not flushed yet)
                continue
            if row.task_guid not in ready:
                row.status, row.completed_at = CANCELLED, now
                for listener in self.listeners:
                    listener.task_closed(session, instance, row, now)
        for guid, spiff_task in ready.items():
            if guid not in known:
                row = self._open(session, instance, workflow, guid, spiff_task, now, actor)
                append_event(session, "task_opened", at=now, instance_id=instance.id, task=row,
                             message=row.title,
                             data={"group_id": row.group_id, "assignee_id": row.assignee_id})

    def task_group(self, session: Session, lane: str | None, props: dict[str, str],
                   data: dict[str, Any]) -> int | None:
        """The group of a task: named by its data variable (``kefu.group_var``), else its lane."""
        var = props.get(definitions.GROUP_VAR_PROPERTY)
        if var and data.get(var):
            group_id = self.groups.find(session, str(data[var]))
            if group_id is not None:
                return group_id
        return self.groups.find(session, lane)

    def _open(self, session: Session, instance: ProcessInstance, workflow: BpmnWorkflow,
              guid: str, spiff_task: Any, now: datetime, actor: User | None) -> HumanTask:
        spec = spiff_task.task_spec
        props = definitions.properties_of(spec)
        group_id = self.task_group(session, spec.lane, props, spiff_task.data)
        row = HumanTask(instance=instance, task_guid=guid, name=spec.bpmn_id,
                        title=(spec.bpmn_name or spec.bpmn_id)[:200],
                        form_name=props.get(definitions.FORM_PROPERTY),
                        group_id=group_id, status=OPEN, created_at=now, vip=vip_of(spiff_task.data))
        if props.get(ASSIGN_PROPERTY) == "leader" and group_id is not None:
            group = session.get(Group, group_id)
            row.assignee_id = group.leader_id if group is not None else None
        else:
            row.assignee_id = _natural_assignee(session, instance, workflow, row, actor)
        session.add(row)
        for listener in self.listeners:
            listener.task_opened(session, instance, row, props, spiff_task.data, now)
        return row


def _natural_assignee(session: Session, instance: ProcessInstance, workflow: BpmnWorkflow,
                      row: HumanTask, actor: User | None) -> int | None:
    """Rework goes back to whoever did this step before; otherwise the agent who took the case
    keeps it, or the acting user, when the step is in their own group."""
    if row.group_id is None:
        return None
    candidates: list[int] = []
    # A rework pass (the step ran before: in the tree, or possibly in history pruned from it, see
    # engine/task_tree.py): it goes back to whoever did it, as the inbox rows remember.
    if workflow.get_tasks(spec_name=row.name, state=TaskState.COMPLETED) or was_pruned(workflow):
        previous = session.scalars(_PREVIOUS_DOER, {"instance_id": instance.id, "name": row.name}).first()
        if previous is not None:
            candidates.append(previous)
    if instance.started_by is not None:
        candidates.append(instance.started_by)
    if actor is not None:
        candidates.append(actor.id)
    # The acting user's groups are loaded with them: ask the database only about the others, and
    # only when one of them comes before the actor in the order of preference.
    members: set[int] | None = None
    for candidate in candidates:
        if actor is not None and candidate == actor.id:
            if actor.active and row.group_id in actor.group_ids:
                return candidate
            continue
        if members is None:
            others = [c for c in candidates if actor is None or c != actor.id]
            members = members_among(session, row.group_id, others)
        if candidate in members:
            return candidate
    return None


_PREVIOUS_DOER = (select(HumanTask.completed_by)
                  .where(HumanTask.instance_id == bindparam("instance_id"),
                         HumanTask.name == bindparam("name"), HumanTask.status == DONE)
                  .order_by(HumanTask.id.desc()).limit(1))
