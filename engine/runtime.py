"""The engine's verbs: start, complete, claim, suspend/resume, fire due timers.

Each verb takes a session and the clock's ``now``, advances the Spiff workflow until it waits,
and writes in the caller's transaction: the state (optimistic lock on ``lock_version``), the inbox
rows, the next timer time, audit events, and whatever the listeners add. The caller commits.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from SpiffWorkflow.bpmn.util import BpmnEvent
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.exceptions import TaskNotFoundException, WorkflowException
from SpiffWorkflow.spiff.specs.event_definitions import MessageEventDefinition
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from . import definitions, outbox
from .clock import LOCAL_TZ, frozen_at
from .errors import Conflict, Forbidden, InstanceFailed, NotFound, PeerUnavailable, ValidationFailed
from .forms import validate_form, write_only_fields
from .listeners import StepListener
from .models import (
    CANCELLED,
    COMPLETED,
    DONE,
    ERROR,
    OPEN,
    RUNNING,
    SUSPENDED,
    HumanTask,
    ProcessDefinition,
    ProcessInstance,
    due_timer_instances,
    open_tasks_of_instance,
    record_event,
)
from .people import Group, GroupIndex, User, members_among
from .scripting import make_script_engine
from .serialization import dump_state, load_state
from .service_tasks import ConnectorCalls, InlineCallFailed, begin_step, end_step
from .timers import next_timer_time
from .tree_check import TreeTooDeep, check_tree
from .unit_of_work import after_commit
from .workflow_cache import WorkflowCache

log = logging.getLogger("kefu.engine")
START_FORM_REFERENCE_PREFIX = "kefu.reference_prefix"
ASSIGN_PROPERTY = "kefu.assign"  # "leader": the task goes to the leader of its group


class Engine:
    """SpiffWorkflow host. One per process; thread-safe (state lives in the database)."""

    def __init__(self, listeners: Iterable[StepListener] = (),
                 checks: Iterable[definitions.PropertyCheck] = (), cache_size: int = 1000,
                 operations: dict[str, Any] | None = None, job_threads: int = 16) -> None:
        self.listeners = list(listeners)
        # Connector operations by name (connectors.base.Operation), shared with the worker.
        self.operations: dict[str, Any] = operations if operations is not None else {}
        self.worker = outbox.Worker(self.operations, self._deliver_job, threads=job_threads)
        self.checks = list(checks)
        self.specs = definitions.SpecCache()
        self.workflows = WorkflowCache(cache_size)
        self.groups = GroupIndex()
        self.script_engine = make_script_engine()  # diagrams' scripts run sandboxed
        # Called after the commit of a step that queued connector jobs (the running product wakes
        # its job worker with it instead of waiting for the next tick); set by the composition root.
        self.on_jobs_queued: Callable[[], None] | None = None

    # -- definitions -----------------------------------------------------------------------
    def deploy(self, session: Session, xml: bytes, forms: dict[str, Any], *, now: datetime,
               deployed_by: str | None = None, summary: str = "") -> ProcessDefinition:
        definition = definitions.deploy(session, xml, forms, now=now, deployed_by=deployed_by,
                                        summary=summary, checks=self.checks, operations=self.operations)
        record_event(session, "deployed", at=now, actor=deployed_by,
                     message=f"{definition.key} v{definition.version}",
                     data={"key": definition.key, "version": definition.version})
        return definition

    def deploy_directory(self, session: Session, directory: Path, *, now: datetime,
                         deployed_by: str = "system") -> list[ProcessDefinition]:
        """Deploy every ``*.bpmn`` in ``directory`` (forms from ``forms/``) whose content changed
        since its latest version; unchanged diagrams are left alone."""
        forms = {p.name: json.loads(p.read_text("utf-8"))
                 for p in sorted((directory / "forms").glob("*.json"))}
        deployed = []
        for path in sorted(directory.glob("*.bpmn")):
            xml = path.read_bytes()
            parsed = definitions.parse_bpmn(xml)
            # Any version with the same content means the bundle was deployed before: an analyst's
            # later version must survive a restart, not be overwritten by the bundled file again.
            digest = definitions.content_hash(xml, forms, parsed)
            if session.scalar(select(ProcessDefinition.id).where(ProcessDefinition.key == parsed.key,
                                                                 ProcessDefinition.sha256 == digest).limit(1)):
                continue
            deployed.append(self.deploy(session, xml, forms, now=now, deployed_by=deployed_by,
                                        summary=f"bundled {path.name}"))
        return deployed

    # -- instances -------------------------------------------------------------------------
    def start(self, session: Session, key: str, data: dict[str, Any], *, actor: User | None,
              now: datetime) -> ProcessInstance:
        """Start the latest version of ``key`` with ``data`` (validated against the start form)."""
        definition = definitions.latest_version(session, key)
        if definition is None:
            raise NotFound(f"no process '{key}' is deployed")
        spec, subs, forms = self.specs.get(session, definition.id)
        start_spec = _start_event(spec)
        start_props = definitions.properties_of(start_spec)
        form_name = start_props.get(definitions.FORM_PROPERTY)
        secrets: frozenset[str] = frozenset()
        if form_name:
            data = validate_form(forms.get(form_name, {}), data)
            secrets = write_only_fields(forms.get(form_name))
        if actor is not None and start_spec.lane:
            group_id = self.groups.find(session, start_spec.lane)
            if group_id is not None and not _in_group(actor, group_id):
                raise Forbidden(f"only members of '{start_spec.lane}' may start '{key}'")
        workflow = BpmnWorkflow(spec, subs, script_engine=self.script_engine)
        for task in workflow.get_tasks(state=TaskState.READY):
            task.data.update(data)
        instance = ProcessInstance(
            definition_id=definition.id, process_key=key, title=_title(data, definition.name),
            customer_phone=_str_or_none(data.get("customer_phone")), status=RUNNING, state="{}",
            started_by=actor.id if actor else None, created_at=now, updated_at=now)
        session.add(instance)
        session.flush()
        prefix = start_props.get(START_FORM_REFERENCE_PREFIX, key[:2].upper())
        instance.reference = f"{prefix}{now.astimezone(LOCAL_TZ):%Y%m%d}{instance.id:06d}"
        for task in workflow.get_tasks(state=TaskState.READY):
            task.data["reference"] = instance.reference  # texts and letters quote the case number
        record_event(session, "started", at=now, instance_id=instance.id, actor=_name(actor),
                     message=definition.name, data=_audit_data(data, secrets))
        lane_group = self.groups.find(session, start_spec.lane)
        for listener in self.listeners:
            listener.instance_started(session, instance, start_props, lane_group, now)
        self._advance(session, instance, workflow, now, actor=actor, new=True, secrets=secrets)
        return instance

    def complete_task(self, session: Session, task_id: int, data: dict[str, Any], *,
                      actor: User, now: datetime) -> HumanTask:
        """Complete an open human task with form data (validated against its form)."""
        task = self.get_task(session, task_id, actor)
        if task.status != OPEN:
            raise Conflict("this task is already done")
        if task.assignee_id not in (None, actor.id):
            raise Conflict("this task is held by someone else")
        instance = task.instance
        if instance.status == SUSPENDED:
            raise Conflict("the case is suspended (挂起); resume it first")
        form = self.specs.get(session, instance.definition_id)[2].get(task.form_name or "", {})
        clean = validate_form(form, data)
        secrets = write_only_fields(form)
        workflow = self._take_workflow(session, instance)
        try:
            spiff_task = workflow.get_task_from_id(_uuid(task.task_guid))
        except TaskNotFoundException as exc:
            raise Conflict("the task no longer exists in the workflow") from exc
        if spiff_task.state != TaskState.READY:
            raise Conflict("the task is not ready")
        # Open rows always mirror the READY user tasks of the last step: when this task is the only
        # one, the step need not read the instance's open tasks back from the database.
        only_open = [task] if len(workflow.get_tasks(state=TaskState.READY, manual=True)) == 1 else None
        task.assignee_id = actor.id
        task.status = DONE
        task.completed_at = now
        task.completed_by = actor.id
        for listener in self.listeners:
            listener.task_closed(session, instance, task, now)
        # Audit rows are added last so that they reach the database in the step's final flush.
        record_event(session, "task_completed", at=now, instance_id=instance.id, task_id=task.id,
                     actor=actor.username, message=task.title, data=_audit_data(clean, secrets))
        spiff_task.data.update(clean)
        try:
            with frozen_at(now):
                spiff_task.run()
        except WorkflowException as exc:
            raise InstanceFailed(f"{task.title}: {exc}") from exc
        self._advance(session, instance, workflow, now, actor=actor, open_rows=only_open, secrets=secrets)
        return task

    def claim(self, session: Session, task_id: int, actor: User, now: datetime) -> HumanTask:
        task = self.get_task(session, task_id, actor)
        if task.status != OPEN:
            raise Conflict("this task is already done")
        if task.assignee_id == actor.id:
            return task
        if task.assignee_id is not None:
            raise Conflict("this task is held by someone else")
        task.assignee_id = actor.id
        record_event(session, "task_claimed", at=now, instance_id=task.instance_id, task_id=task.id,
                     actor=actor.username, message=task.title)
        return task

    def unclaim(self, session: Session, task_id: int, actor: User, now: datetime) -> HumanTask:
        task = self.get_task(session, task_id, actor)
        if task.status != OPEN:
            raise Conflict("this task is already done")
        if task.assignee_id not in (None, actor.id) and not self._leads(session, actor, task):
            raise Conflict("this task is held by someone else")
        task.assignee_id = None
        record_event(session, "task_unclaimed", at=now, instance_id=task.instance_id,
                     task_id=task.id, actor=actor.username, message=task.title)
        return task

    def assign(self, session: Session, task_id: int, assignee: User, actor: User,
               now: datetime) -> HumanTask:
        """A group leader (or admin) hands a task of the group to one of its members."""
        task = self.get_task(session, task_id, actor)
        if not self._leads(session, actor, task):
            raise Forbidden("only the group leader may reassign this task")
        if task.status != OPEN:
            raise Conflict("this task is already done")
        if task.group_id is not None and not _in_group(assignee, task.group_id):
            raise ValidationFailed("the assignee is not in the task's group",
                                   {"assignee": "not a member of the group"})
        task.assignee_id = assignee.id
        record_event(session, "task_assigned", at=now, instance_id=task.instance_id, task_id=task.id,
                     actor=actor.username, message=f"{task.title} → {assignee.display_name}")
        return task

    def suspend(self, session: Session, instance_id: int, reason: str, *, actor: User,
                now: datetime) -> ProcessInstance:
        """Pause a case that waits on the customer (挂起): its SLA clocks stop until resumed."""
        instance = self.get_instance(session, instance_id, actor)
        if instance.status != RUNNING:
            raise Conflict(f"only a running case can be suspended (it is {instance.status})")
        reason = (reason or "").strip()
        if not reason:
            raise ValidationFailed("a reason is required", {"reason": "required"})
        instance.status, instance.suspended_at, instance.suspend_reason = SUSPENDED, now, reason[:500]
        instance.updated_at = now
        record_event(session, "suspended", at=now, instance_id=instance.id, actor=actor.username,
                     message=reason[:500])
        for listener in self.listeners:
            listener.instance_suspended(session, instance, now)
        return instance

    def resume(self, session: Session, instance_id: int, *, actor: User, now: datetime) -> ProcessInstance:
        instance = self.get_instance(session, instance_id, actor)
        if instance.status != SUSPENDED:
            raise Conflict("the case is not suspended")
        paused = (now - instance.suspended_at).total_seconds() if instance.suspended_at else 0
        for listener in self.listeners:
            listener.instance_resumed(session, instance, now)
        instance.status, instance.suspended_at, instance.suspend_reason = RUNNING, None, None
        instance.updated_at = now
        record_event(session, "resumed", at=now, instance_id=instance.id, actor=actor.username,
                     message="", data={"paused_seconds": int(paused)})
        return instance

    def fire_due_timers(self, session: Session, now: datetime, limit: int = 100) -> int:
        """Fire BPMN timers due by ``now``; one committed unit of work per instance."""
        fired = 0
        for instance_id in due_timer_instances(session, now, limit):
            try:
                instance = session.get(ProcessInstance, instance_id)
                if instance is None or instance.status != RUNNING:
                    continue
                workflow = self._take_workflow(session, instance)
                with frozen_at(now):
                    workflow.refresh_timers()
                record_event(session, "timer_fired", at=now, instance_id=instance.id)
                self._advance(session, instance, workflow, now, actor=None)
                session.commit()
                fired += 1
            except Conflict:
                session.rollback()  # another worker advanced it: not an error
            except InstanceFailed as exc:
                session.rollback()
                self._mark_error(session, instance_id, str(exc), now)
        return fired

    # -- connector jobs ----------------------------------------------------------------------
    def run_jobs(self, session: Session, now: datetime, *, batch: int = 200,
                 max_batches: int | None = None) -> outbox.RunReport:
        """Run the connector jobs due by ``now`` and deliver their results (see engine.outbox)."""
        return self.worker.run_due(session, now, batch=batch, max_batches=max_batches)

    def _deliver_job(self, session: Session, job: outbox.ConnectorJob, now: datetime) -> None:
        """Resume the service task that waits for ``job`` with its result, as one step."""
        instance = session.get(ProcessInstance, job.instance_id)
        if instance is None or instance.status not in (RUNNING, SUSPENDED) or not job.task_guid:
            return  # the case ended or was cancelled meanwhile: nothing waits any more
        workflow = self._take_workflow(session, instance)
        try:
            spiff_task = workflow.get_task_from_id(_uuid(job.task_guid))
        except TaskNotFoundException:
            return
        if spiff_task.state != TaskState.STARTED:
            return  # e.g. a boundary timer cancelled the wait
        if job.result_var:
            spiff_task.data[job.result_var] = job.result or {}
        try:
            with frozen_at(now):
                spiff_task.complete()
        except WorkflowException as exc:
            raise InstanceFailed(f"{job.operation}: {exc}") from exc
        self._advance(session, instance, workflow, now, actor=None)

    # -- messages ----------------------------------------------------------------------------
    def waiting_for_message(self, session: Session, name: str, customer_phone: str) -> ProcessInstance | None:
        """The newest running case of ``customer_phone`` that waits for the BPMN message ``name``."""
        candidates = session.scalars(
            select(ProcessInstance).where(ProcessInstance.customer_phone == customer_phone,
                                          ProcessInstance.status == RUNNING)
            .order_by(ProcessInstance.id.desc()).limit(20))
        for instance in candidates:
            if waits_for_message(self._peek_workflow(session, instance), name):
                return instance
        return None

    def deliver_message(self, session: Session, instance_id: int, name: str, payload: dict[str, Any],
                        now: datetime) -> ProcessInstance:
        """Deliver the BPMN message ``name`` with ``payload`` into a waiting case, as one step."""
        instance = session.get(ProcessInstance, instance_id)
        if instance is None or instance.status != RUNNING:
            raise NotFound(f"case {instance_id} is not running")
        workflow = self._take_workflow(session, instance)
        try:
            with frozen_at(now):
                workflow.send_event(BpmnEvent(MessageEventDefinition(name), payload=payload))
        except WorkflowException as exc:
            raise Conflict(f"case {instance_id} does not wait for '{name}'") from exc
        record_event(session, "message_received", at=now, instance_id=instance.id, message=name,
                     data=_audit_data(payload))
        self._advance(session, instance, workflow, now, actor=None)
        return instance

    # -- reading ---------------------------------------------------------------------------
    def get_task(self, session: Session, task_id: int, actor: User) -> HumanTask:
        """A task the actor may see (their groups, assigned to them, or admin); else NotFound."""
        task = session.get(HumanTask, task_id)
        if task is None or not self.may_see(session, actor, task):
            raise NotFound(f"task {task_id} not found")
        return task

    def may_see(self, session: Session, actor: User, task: HumanTask) -> bool:
        if actor.has_role("admin", "manager") or task.assignee_id == actor.id:
            return True
        if task.group_id is not None and _in_group(actor, task.group_id):
            return True
        return self._leads(session, actor, task)

    def workflow_data(self, session: Session, instance: ProcessInstance) -> dict[str, Any]:
        """The case's current data (of its newest completed step)."""
        workflow = self._peek_workflow(session, instance)
        task = workflow.last_task
        data = dict(task.data) if task is not None else {}
        if workflow.is_completed():
            data.update(workflow.data)
        return data

    def form_of(self, session: Session, task: HumanTask) -> dict[str, Any]:
        return self.specs.get(session, task.instance.definition_id)[2].get(task.form_name or "", {})

    def task_data(self, session: Session, task: HumanTask) -> dict[str, Any]:
        workflow = self._peek_workflow(session, task.instance)
        try:
            return dict(workflow.get_task_from_id(_uuid(task.task_guid)).data)
        except TaskNotFoundException:
            return {}

    # -- internals -------------------------------------------------------------------------
    def _peek_workflow(self, session: Session, instance: ProcessInstance) -> BpmnWorkflow:
        workflow = self._take_workflow(session, instance)
        self.workflows.put(instance.id, instance.lock_version, workflow)
        return workflow

    def _take_workflow(self, session: Session, instance: ProcessInstance) -> BpmnWorkflow:
        workflow = self.workflows.take(instance.id, instance.lock_version)
        if workflow is None:
            spec, subs, _ = self.specs.get(session, instance.definition_id)
            workflow = load_state(instance.state, spec, subs)
            workflow.script_engine = self.script_engine
        return workflow

    def _advance(self, session: Session, instance: ProcessInstance, workflow: BpmnWorkflow,
                 now: datetime, *, actor: User | None, new: bool = False,
                 open_rows: list[HumanTask] | None = None, secrets: frozenset[str] = frozenset()) -> None:
        """Run the workflow until it waits and write the step. ``secrets``: write-only fields
        submitted with this step; its inline service tasks may read them, then they are forgotten
        (removed from every task's data) before anything is stored or cached."""
        calls = ConnectorCalls(self.operations, now, instance.id, session=session)
        token = begin_step(calls)
        try:
            with frozen_at(now):
                workflow.do_engine_steps()
        except InlineCallFailed as exc:
            raise PeerUnavailable(str(exc)) from exc
        except WorkflowException as exc:
            raise InstanceFailed(str(exc)) from exc
        finally:
            end_step(token)
        try:
            check_tree(workflow)  # never a false completion or a silent stall (engine/tree_check.py)
        except TreeTooDeep as exc:
            raise InstanceFailed(str(exc)) from exc
        if secrets:
            _forget(workflow, secrets)
        # The jobs the step asked for are written with it (the outbox): never without the step,
        # never twice for one task run (the key is unique).
        for request in calls.requests:
            outbox.enqueue(session, request.operation, request.params,
                           key=outbox.job_key(instance.id, request.task_guid), now=now,
                           instance_id=instance.id, task_guid=request.task_guid,
                           element_id=request.element_id, result_var=request.result_var, wait=request.wait,
                           priority=request.priority)
        if calls.requests and self.on_jobs_queued is not None:
            after_commit(session, self.on_jobs_queued, key="jobs_queued")
        try:
            # The inbox is brought in step before the state is written, all in one flush: the
            # UPDATE of the instance carries the version check, and if it fails the whole step
            # (state, tasks, clocks, events) is rolled back with it.
            with session.no_autoflush:
                self._sync_tasks(session, instance, workflow, now, actor=actor,
                                 open_rows=[] if new else open_rows)
            instance.state = dump_state(workflow)
            instance.updated_at = now
            instance.next_timer_at = next_timer_time(workflow)
            if workflow.is_completed():
                instance.status, instance.completed_at, instance.next_timer_at = COMPLETED, now, None
                record_event(session, "completed", at=now, instance_id=instance.id,
                             actor=_name(actor), message=_end_name(workflow))
                for listener in self.listeners:
                    listener.instance_finished(session, instance, now)
            session.flush()
        except StaleDataError as exc:
            raise Conflict("the case was changed by someone else; reload and try again") from exc
        self.workflows.put_after_commit(session, instance.id, instance.lock_version, workflow)

    def _sync_tasks(self, session: Session, instance: ProcessInstance, workflow: BpmnWorkflow,
                    now: datetime, *, actor: User | None, open_rows: list[HumanTask] | None) -> None:
        """Make the open human_task rows mirror the workflow's READY user tasks (``open_rows``:
        the rows open before this step when the caller knows them, else they are read)."""
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
                row = self._open_task(session, instance, workflow, guid, spiff_task, now, actor)
                record_event(session, "task_opened", at=now, instance_id=instance.id, task=row,
                             message=row.title,
                             data={"group_id": row.group_id, "assignee_id": row.assignee_id})

    def _open_task(self, session: Session, instance: ProcessInstance, workflow: BpmnWorkflow,
                   guid: str, spiff_task: Any, now: datetime, actor: User | None) -> HumanTask:
        spec = spiff_task.task_spec
        props = definitions.properties_of(spec)
        group_id = self._task_group(session, spec.lane, props, spiff_task.data)
        row = HumanTask(instance=instance, task_guid=guid, name=spec.bpmn_id,
                        title=(spec.bpmn_name or spec.bpmn_id)[:200],
                        form_name=props.get(definitions.FORM_PROPERTY),
                        group_id=group_id, status=OPEN, created_at=now)
        if props.get(ASSIGN_PROPERTY) == "leader" and group_id is not None:
            group = session.get(Group, group_id)
            row.assignee_id = group.leader_id if group is not None else None
        else:
            row.assignee_id = self._natural_assignee(session, instance, workflow, row, actor)
        session.add(row)
        for listener in self.listeners:
            listener.task_opened(session, instance, row, props, spiff_task.data, now)
        return row

    def _task_group(self, session: Session, lane: str | None, props: dict[str, str],
                    data: dict[str, Any]) -> int | None:
        var = props.get(definitions.GROUP_VAR_PROPERTY)
        if var and data.get(var):
            group_id = self.groups.find(session, str(data[var]))
            if group_id is not None:
                return group_id
        return self.groups.find(session, lane)

    def _natural_assignee(self, session: Session, instance: ProcessInstance, workflow: BpmnWorkflow,
                          row: HumanTask, actor: User | None) -> int | None:
        """Rework goes back to whoever did this step before; otherwise the agent who took the case
        keeps it, or the acting user, when the step is in their own group."""
        if row.group_id is None:
            return None
        candidates: list[int] = []
        if workflow.get_tasks(spec_name=row.name, state=TaskState.COMPLETED):  # a rework pass
            previous = session.scalars(
                select(HumanTask.completed_by).where(HumanTask.instance_id == instance.id,
                                                     HumanTask.name == row.name, HumanTask.status == DONE)
                .order_by(HumanTask.id.desc()).limit(1)).first()
            if previous is not None:
                candidates.append(previous)
        if instance.started_by is not None:
            candidates.append(instance.started_by)
        if actor is not None:
            candidates.append(actor.id)
        if not candidates:
            return None
        members = members_among(session, row.group_id, candidates)
        return next((c for c in candidates if c in members), None)

    def get_instance(self, session: Session, instance_id: int, actor: User) -> ProcessInstance:
        """A case the actor may see; NotFound otherwise (we do not reveal that it exists)."""
        instance = session.get(ProcessInstance, instance_id)
        if instance is None or not self.may_view_instance(session, actor, instance):
            raise NotFound(f"case {instance_id} not found")
        return instance

    def may_view_instance(self, session: Session, actor: User, instance: ProcessInstance) -> bool:
        """Managers, leaders and admins see every case; others the cases they started or whose
        steps were (or are) in their groups or in their hands."""
        if actor.has_role("admin", "manager", "leader") or instance.started_by == actor.id:
            return True
        groups = actor.group_ids or {-1}
        hit = session.scalar(select(HumanTask.id).where(
            HumanTask.instance_id == instance.id,
            (HumanTask.group_id.in_(groups)) | (HumanTask.assignee_id == actor.id)
            | (HumanTask.completed_by == actor.id)).limit(1))
        return hit is not None


    def _leads(self, session: Session, actor: User, task: HumanTask) -> bool:
        if actor.has_role("admin"):
            return True
        if task.group_id is None:
            return False
        group = session.get(Group, task.group_id)
        return group is not None and group.leader_id == actor.id

    def _mark_error(self, session: Session, instance_id: int, message: str, now: datetime) -> None:
        instance = session.get(ProcessInstance, instance_id)
        if instance is None:
            return
        instance.status, instance.error, instance.updated_at = ERROR, message[:4000], now
        record_event(session, "error", at=now, instance_id=instance_id, message=message[:500])
        session.commit()
        log.error("instance %s failed: %s", instance_id, message)


def waits_for_message(workflow: BpmnWorkflow, name: str) -> bool:
    """Whether a waiting task of ``workflow`` catches the message ``name`` (also behind an
    event-based gateway, which Spiff reports as one combined event without names)."""
    for task in workflow.get_tasks(state=TaskState.WAITING):
        definition = getattr(task.task_spec, "event_definition", None)
        for d in getattr(definition, "event_definitions", None) or [definition]:
            if isinstance(d, MessageEventDefinition) and d.name == name:
                return True
    return False


def _start_event(spec: Any) -> Any:
    """The process's plain (none) start event, whose properties describe the whole case."""
    for task_spec in spec.task_specs.values():
        event = getattr(task_spec, "event_definition", None)
        if type(task_spec).__name__ == "StartEvent" and type(event).__name__ == "NoneEventDefinition":
            return task_spec
    return spec.start


def _title(data: dict[str, Any], fallback: str) -> str:
    """A case's one-line title: its ``title`` field, else the start of its description."""
    text = " ".join(str(data.get("title") or data.get("description") or fallback).split())
    return text if len(text) <= 60 else text[:59] + "…"


def _end_name(workflow: BpmnWorkflow) -> str:
    """The name of the end event the case finished on (e.g. 投诉关闭)."""
    ends = [t for t in workflow.get_tasks(state=TaskState.COMPLETED)
            if type(t.task_spec).__name__ == "EndEvent"]
    return (ends[-1].task_spec.bpmn_name or "") if ends else ""


def _in_group(user: User, group_id: int) -> bool:
    return group_id in user.group_ids


def _name(user: User | None) -> str | None:
    return user.username if user else None


def _str_or_none(value: Any) -> str | None:
    return str(value)[:32] if value not in (None, "") else None


def _uuid(value: str):
    from uuid import UUID

    return UUID(value)


def _forget(workflow: BpmnWorkflow, names: frozenset[str]) -> None:
    """Remove write-only fields from every task's data (Spiff copies data from task to task)."""
    for task in workflow.get_tasks():
        for name in names:
            task.data.pop(name, None)
    for name in names:
        workflow.data.pop(name, None)


def _audit_data(data: dict[str, Any], secrets: frozenset[str] = frozenset()) -> dict[str, Any]:
    """What the history keeps of submitted data (JSON-safe, long texts cut; write-only fields
    are left out)."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if key in secrets:
            continue
        if isinstance(value, str) and len(value) > 500:
            value = value[:500] + "…"
        out[key] = value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
    return out
