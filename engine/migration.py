"""Moving a running case to a newer version of its definition, and what a case's diagram shows.

A case may move when every step it waits on (open user tasks, timers, service calls in progress)
exists in the target version and everything it already passed can still be resolved there;
otherwise the move is refused with the reason. The preview performs the very same migration
(``SpiffWorkflow.bpmn.util.diff``) on a copy loaded from the stored state, so what it promises is
what the move does. The move itself is written like any engine step: the state UPDATE under the
optimistic lock, the open inbox rows brought in step, an audit event — in the caller's transaction.

Open steps keep their SLA clocks (a changed time limit applies the next time a step opens) and
waiting timers keep their due times. Imports engine modules only.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn.util.diff import SpecDiff, diff_workflow, migrate_workflow
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import select

from . import definitions
from .clock import frozen_at
from .errors import Conflict, NotFound
from .models import RUNNING, ProcessDefinition, ProcessInstance, open_tasks_of_instance, record_event
from .people import User
from .serialization import SERIALIZER, dump_state, load_state

WAITING_STATES = TaskState.READY | TaskState.WAITING | TaskState.STARTED
# Spec attributes whose change an analyst cares about, in the words the preview uses.
_FIELD_NAMES = {"bpmn_name": "name", "lane": "lane", "outputs": "outgoing flows",
                "inputs": "incoming flows", "typename": "type", "extensions": "properties"}


@dataclass
class ElementChange:
    element_id: str
    name: str
    change: str                       # added | removed | changed
    fields: list[str] = field(default_factory=list)


@dataclass
class MigrationPlan:
    """What moving a case to ``to_version`` changes, or why it cannot move (``code``, ``reason``)."""

    instance_id: int
    from_version: int
    to_version: int | None
    lock_version: int
    allowed: bool = False
    code: str | None = None           # not_running | up_to_date | missing_waiting | missing_passed | broken
    reason: str | None = None
    elements: list[str] = field(default_factory=list)   # the element ids the reason names
    waiting: list[dict[str, str]] = field(default_factory=list)
    changes: list[ElementChange] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def preview(engine: Any, session: Any, instance: ProcessInstance,
            target: ProcessDefinition | None = None) -> MigrationPlan:
    """The plan for moving ``instance`` to ``target`` (default: its process's latest version)."""
    return _prepare(engine, session, instance, target)[0]


def migrate(engine: Any, session: Any, instance_id: int, *, actor: User | None, now: datetime,
            version: int | None = None, lock_version: int | None = None) -> MigrationPlan:
    """Move a running case to ``version`` (default: latest) as one step; the caller commits.

    ``lock_version`` (from the preview) makes the move refuse if the case changed since.
    Raises NotFound (no such case or version) or Conflict (refused, with the plan's reason).
    """
    instance = session.get(ProcessInstance, instance_id)
    if instance is None:
        raise NotFound(f"case {instance_id} not found")
    if lock_version is not None and lock_version != instance.lock_version:
        raise Conflict("the case changed since the preview; preview again")
    target = None
    if version is not None:
        target = session.scalars(select(ProcessDefinition).where(
            ProcessDefinition.key == instance.process_key, ProcessDefinition.version == version)).first()
        if target is None:
            raise NotFound(f"{instance.process_key} has no version {version}")
    plan, workflow, target = _prepare(engine, session, instance, target, now)
    if not plan.allowed or workflow is None or target is None:
        raise Conflict(plan.reason or "this case cannot move to that version")
    engine.workflows.take(instance.id, instance.lock_version)  # the cached copy is the old version's
    instance.definition = target
    _refresh_open_rows(engine, session, instance, workflow)
    record_event(session, "migrated", at=now, instance_id=instance.id, actor=actor.username if actor else None,
                 message=f"v{plan.from_version} → v{plan.to_version}",
                 data={"from": plan.from_version, "to": plan.to_version})
    engine._advance(session, instance, workflow, now, actor=actor)  # state, inbox, timers; version check
    return plan


def _prepare(engine: Any, session: Any, instance: ProcessInstance, target: ProcessDefinition | None,
             now: datetime | None = None) -> tuple[MigrationPlan, BpmnWorkflow | None, ProcessDefinition | None]:
    current = instance.definition
    if target is None:
        target = definitions.latest_version(session, instance.process_key)
    plan = MigrationPlan(instance.id, current.version, target.version if target else None,
                         instance.lock_version)
    if instance.status != RUNNING:
        return _refuse(plan, "not_running", f"only a running case can move (this one is {instance.status})"), None, None
    if target is None or target.version <= current.version:
        return _refuse(plan, "up_to_date", "the case already runs on this or a newer version"), None, None
    old_spec, old_subs, _ = engine.specs.get(session, current.id)
    new_spec, new_subs, _ = engine.specs.get(session, target.id)
    workflow = load_state(instance.state, old_spec, old_subs)
    workflow.script_engine = engine.script_engine
    plan.changes = spec_changes(old_spec, new_spec)
    waiting = [t for t in workflow.get_tasks(state=WAITING_STATES) if _bpmn_id(t)]
    plan.waiting = [{"element_id": _bpmn_id(t), "name": t.task_spec.bpmn_name or _bpmn_id(t)} for t in waiting]
    top, sub_diffs = diff_workflow(SERIALIZER.registry, workflow, new_spec, new_subs)
    gone = set(top.removed) | {t for d in sub_diffs.values() if d is not None for t in d.removed}
    missing = sorted({_bpmn_id(t) for t in waiting if t in gone})
    if missing or any(d is None for d in sub_diffs.values()):
        return _refuse(plan, "missing_waiting", "the case waits on steps that version "
                       f"{target.version} does not have: {', '.join(missing) or 'a subprocess'}",
                       missing), None, None
    passed = sorted({_bpmn_id(t) for t in gone if t.has_state(TaskState.COMPLETED) and _bpmn_id(t)})
    if passed:
        return _refuse(plan, "missing_passed", "the case already passed elements that version "
                       f"{target.version} does not have: {', '.join(passed)}", passed), None, None
    try:
        with frozen_at(now) if now else nullcontext():
            _move(workflow, top, sub_diffs, new_spec, new_subs)
        load_state(dump_state(workflow), new_spec, new_subs)  # the stored state must load on the new spec
    except Exception as exc:  # noqa: BLE001 - any failure here means: do not move
        return _refuse(plan, "broken", f"the case's state does not fit version {target.version}: {exc}"), None, None
    plan.allowed = True
    return plan, workflow, target


def _move(workflow: BpmnWorkflow, top: Any, sub_diffs: dict, new_spec: Any, new_subs: dict) -> None:
    """Spiff's migration, keeping the due times of waiting timers (a reset would restart them)."""
    timers = {t.id: t.internal_data.get("event_value") for t in workflow.get_tasks(state=TaskState.WAITING)}
    migrate_workflow(top, workflow, new_spec)
    for sp_id, diff in sub_diffs.items():
        sub = workflow.subprocesses[sp_id]
        migrate_workflow(diff, sub, new_subs[sub.spec.name])
    workflow.subprocess_specs = new_subs
    for task_id, value in timers.items():
        task = workflow.get_task_from_id(task_id)
        if value is not None and task is not None and task.has_state(TaskState.WAITING):
            task.internal_data["event_value"] = value


def _refresh_open_rows(engine: Any, session: Any, instance: ProcessInstance, workflow: BpmnWorkflow) -> None:
    """Open inbox rows take the new version's title, form and group of their step."""
    for row in open_tasks_of_instance(session, instance.id):
        task = workflow.get_task_from_id(UUID(row.task_guid))
        if task is None:
            continue  # the engine step below closes it
        spec = task.task_spec
        props = definitions.properties_of(spec)
        row.title = (spec.bpmn_name or spec.bpmn_id)[:200]
        row.form_name = props.get(definitions.FORM_PROPERTY)
        row.group_id = engine.task_rows.task_group(session, spec.lane, props, task.data)


def spec_changes(old_spec: Any, new_spec: Any) -> list[ElementChange]:
    """Elements added, removed or changed between two versions of a process (diagram ids only)."""
    diff = SpecDiff(SERIALIZER.registry, old_spec, new_spec)
    changes = [ElementChange(s.bpmn_id, s.bpmn_name or s.bpmn_id, "added")
               for s in diff.added if getattr(s, "bpmn_id", None)]
    changes += [ElementChange(s.bpmn_id, s.bpmn_name or s.bpmn_id, "removed")
                for s in diff.removed if getattr(s, "bpmn_id", None)]
    for old, attributes in diff.changed.items():
        if not getattr(old, "bpmn_id", None):
            continue
        new = diff.alignment[old]
        fields = [_FIELD_NAMES.get(a, a) for a in attributes if a != "extensions"]
        if "extensions" in attributes:
            before, after = definitions.properties_of(old), definitions.properties_of(new)
            fields += [f"{k}: {before.get(k, '—')} → {after.get(k, '—')}"
                       for k in sorted(set(before) | set(after)) if before.get(k) != after.get(k)]
            if before == after:
                fields.append("extensions")
        changes.append(ElementChange(old.bpmn_id, old.bpmn_name or old.bpmn_id, "changed", fields))
    return sorted(changes, key=lambda c: (c.change, c.element_id))


def diagram_states(engine: Any, session: Any, instance: ProcessInstance) -> dict[str, list]:
    """What the instance view highlights: completed and active element ids, and the flows taken
    (as ``[source, target]`` pairs of element ids)."""
    workflow = engine._peek_workflow(session, instance)
    completed: set[str] = set()
    active: set[str] = set()
    flows: set[tuple[str, str]] = set()
    for task in workflow.get_tasks():
        bpmn_id = _bpmn_id(task)
        if not bpmn_id:
            continue
        if task.has_state(TaskState.COMPLETED):
            completed.add(bpmn_id)
        elif task.has_state(WAITING_STATES | TaskState.ERROR):
            active.add(bpmn_id)
        else:
            continue
        parent = task.parent
        while parent is not None and not _bpmn_id(parent):
            parent = parent.parent
        if parent is not None:
            flows.add((_bpmn_id(parent), bpmn_id))
    return {"completed": sorted(completed - active), "active": sorted(active),
            "flows": sorted([list(f) for f in flows])}


def _bpmn_id(task: Any) -> str:
    """The diagram id of a task's element ("" for Spiff's own tasks, which have none)."""
    return getattr(task.task_spec, "bpmn_id", None) or ""


def _refuse(plan: MigrationPlan, code: str, reason: str, elements: list[str] | None = None) -> MigrationPlan:
    plan.allowed, plan.code, plan.reason, plan.elements = False, code, reason, elements or []
    return plan
