"""The engine's verbs: start, complete, claim, suspend/resume, fire due timers.

Each verb takes a session and the clock's ``now``, advances the Spiff workflow until it waits,
and writes in the caller's transaction: the state (optimistic lock on ``lock_version``), the inbox
rows, the next timer time, audit events, and whatever the listeners add. The caller commits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from SpiffWorkflow.bpmn.util import BpmnEvent
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.exceptions import TaskNotFoundException, WorkflowException
from SpiffWorkflow.spiff.specs.event_definitions import MessageEventDefinition
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import CursorResult, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError

from . import access, definitions, messages, outbox, step_data, worker
from .clock import LOCAL_TZ, frozen_at
from .errors import Conflict, Forbidden, InstanceFailed, NotFound, PeerUnavailable, ValidationFailed
from .forms import validate_form, write_only_fields
from .listeners import CaseDataListener, StepListener
from .models import (
    COMPLETED,
    ERROR,
    OPEN,
    RUNNING,
    SUSPENDED,
    WITH_INSTANCE,
    HumanTask,
    ProcessDefinition,
    ProcessInstance,
    append_event,
    due_timer_instances,
    record_event,
)
from .people import GroupIndex, User
from .scripting import make_script_engine
from .serialization import dump_state, load_state
from .service_tasks import ConnectorCalls, InlineCallFailed, begin_step, end_step
from .task_rows import TaskRows, close_task
from .task_tree import run_engine_steps
from .timers import next_timer_time
from .tree_check import TreeTooDeep, check_tree
from .unit_of_work import after_commit
from .workflow_cache import WorkflowCache

log = logging.getLogger("kefu.engine")
START_FORM_REFERENCE_PREFIX = "kefu.reference_prefix"


class Engine:
    """SpiffWorkflow host. One per process; thread-safe (state lives in the database)."""

    def __init__(self, listeners: Iterable[StepListener] = (),
                 checks: Iterable[definitions.PropertyCheck] = (), cache_size: int = 1000,
                 operations: dict[str, Any] | None = None, job_threads: int = 16) -> None:
        self.listeners = list(listeners)
        # Listeners that also hear the case's data at the end of each step (engine/listeners.py).
        self.data_listeners = [lst for lst in self.listeners if isinstance(lst, CaseDataListener)]
        # Connector operations by name (connectors.base.Operation), shared with the worker.
        self.operations: dict[str, Any] = operations if operations is not None else {}
        self.worker = worker.Worker(self.operations, self._deliver_job, threads=job_threads)
        self.checks = list(checks)
        self.specs = definitions.SpecCache()
        self.workflows = WorkflowCache(cache_size)
        self.groups = GroupIndex()
        self.task_rows = TaskRows(self.listeners, self.groups)
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
        """Deploy every ``*.bpmn`` in ``directory`` whose content changed since its latest version."""
        return [self.deploy(session, xml, forms, now=now, deployed_by=deployed_by, summary=f"bundled {name}")
                for name, xml, forms in definitions.changed_bundle(session, directory)]

    # -- instances -------------------------------------------------------------------------
    def start(self, session: Session, key: str, data: dict[str, Any], *, actor: User | None,
              now: datetime, server_data: dict[str, Any] | None = None) -> ProcessInstance:
        """Start the latest version of ``key`` with ``data`` (validated against the start form).
        ``server_data``: variables set by the product itself, never by a user (e.g. a received
        roaming dispatch's deadlines), added after the form check."""
        definition = definitions.latest_version(session, key)
        if definition is None:
            raise NotFound(f"no process '{key}' is deployed")
        spec, subs, forms = self.specs.get(session, definition.id)
        start_spec = step_data.start_event(spec)
        start_props = definitions.properties_of(start_spec)
        form_name = start_props.get(definitions.FORM_PROPERTY)
        secrets: frozenset[str] = frozenset()
        if form_name:
            data = validate_form(forms.get(form_name, {}), data)
            secrets = write_only_fields(forms.get(form_name))
        if server_data:
            data = {**data, **server_data}
        if actor is not None and start_spec.lane:
            group_id = self.groups.find(session, start_spec.lane)
            if group_id is not None and not access.in_group(actor, group_id):
                raise Forbidden(f"only members of '{start_spec.lane}' may start '{key}'")
        workflow = BpmnWorkflow(spec, subs, script_engine=self.script_engine)
        for task in workflow.get_tasks(state=TaskState.READY):
            task.data.update(data)
        instance = ProcessInstance(
            definition_id=definition.id, process_key=key, title=step_data.case_title(data, definition.name),
            customer_phone=step_data.short_or_none(data.get("customer_phone")), status=RUNNING, state="{}",
            started_by=actor.id if actor else None, created_at=now, updated_at=now)
        session.add(instance)
        session.flush()
        prefix = start_props.get(START_FORM_REFERENCE_PREFIX, key[:2].upper())
        instance.reference = f"{prefix}{now.astimezone(LOCAL_TZ):%Y%m%d}{instance.id:06d}"
        for task in workflow.get_tasks(state=TaskState.READY):
            task.data["reference"] = instance.reference  # texts and letters quote the case number
        append_event(session, "started", at=now, instance_id=instance.id, actor=step_data.username_of(actor),
                     message=definition.name, data=step_data.audit_data(data, secrets))
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
            spiff_task = workflow.get_task_from_id(step_data.task_uuid(task.task_guid))
        except TaskNotFoundException as exc:
            raise Conflict("the task no longer exists in the workflow") from exc
        if spiff_task.state != TaskState.READY:
            raise Conflict("the task is not ready")
        # Open rows always mirror the READY user tasks of the last step: when this task is the only
        # one, the step need not read the instance's open tasks back from the database.
        only_open = [task] if len(workflow.get_tasks(state=TaskState.READY, manual=True)) == 1 else None
        close_task(session, task, by=actor.id, now=now)
        for listener in self.listeners:
            listener.task_closed(session, instance, task, now)
        # Audit rows are added last so that they reach the database in the step's final flush.
        append_event(session, "task_completed", at=now, instance_id=instance.id, task_id=task.id,
                     actor=actor.username, message=task.title, data=step_data.audit_data(clean, secrets))
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
        # One conditional UPDATE decides between two agents claiming at once (on PostgreSQL both
        # may have read the task free): the loser changes no row and is told it is taken.
        result = session.execute(update(HumanTask).where(HumanTask.id == task.id, HumanTask.status == OPEN,
                                                         HumanTask.assignee_id.is_(None))
                                 .values(assignee_id=actor.id).execution_options(synchronize_session=False))
        won = cast(CursorResult[Any], result).rowcount
        if not won:
            session.expire(task)
            raise Conflict("this task is held by someone else")
        set_committed_value(task, "assignee_id", actor.id)
        record_event(session, "task_claimed", at=now, instance_id=task.instance_id, task_id=task.id,
                     actor=actor.username, message=task.title)
        return task

    def unclaim(self, session: Session, task_id: int, actor: User, now: datetime) -> HumanTask:
        task = self.get_task(session, task_id, actor)
        if task.status != OPEN:
            raise Conflict("this task is already done")
        if task.assignee_id not in (None, actor.id) and not access.leads(session, actor, task):
            raise Conflict("this task is held by someone else")
        task.assignee_id = None
        record_event(session, "task_unclaimed", at=now, instance_id=task.instance_id,
                     task_id=task.id, actor=actor.username, message=task.title)
        return task

    def assign(self, session: Session, task_id: int, assignee: User, actor: User,
               now: datetime) -> HumanTask:
        """A group leader (or admin) hands a task of the group to one of its members."""
        task = self.get_task(session, task_id, actor)
        if not access.leads(session, actor, task):
            raise Forbidden("only the group leader may reassign this task")
        if task.status != OPEN:
            raise Conflict("this task is already done")
        if task.group_id is not None and not access.in_group(assignee, task.group_id):
            raise ValidationFailed("the assignee is not in the task's group",
                                   {"assignee": "not a member of the group"})
        task.assignee_id = assignee.id
        record_event(session, "task_assigned", at=now, instance_id=task.instance_id, task_id=task.id,
                     actor=actor.username, message=f"{task.title} → {assignee.display_name}")
        return task

    def suspend(self, session: Session, instance_id: int, reason: str, *, actor: User,
                now: datetime) -> ProcessInstance:
        """Pause a case that waits on the customer (挂起): its SLA clocks stop until resumed."""
        instance = access.require_hold(session, actor, self.get_instance(session, instance_id, actor))
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
        instance = access.require_hold(session, actor, self.get_instance(session, instance_id, actor))
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
                 max_batches: int | None = None) -> worker.RunReport:
        """Run the connector jobs due by ``now`` and deliver their results (see engine.outbox)."""
        return self.worker.run_due(session, now, batch=batch, max_batches=max_batches)

    def _deliver_job(self, session: Session, job: outbox.ConnectorJob, now: datetime) -> None:
        """Resume the service task that waits for ``job`` with its result, as one step."""
        instance = session.get(ProcessInstance, job.instance_id)
        if instance is None or instance.status not in (RUNNING, SUSPENDED) or not job.task_guid:
            return  # the case ended or was cancelled meanwhile: nothing waits any more
        workflow = self._take_workflow(session, instance)
        try:
            spiff_task = workflow.get_task_from_id(step_data.task_uuid(job.task_guid))
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
    def waiting_for_message(self, session: Session, name: str, correlation: str) -> ProcessInstance | None:
        """The newest running case waiting for the BPMN message ``name`` correlated by
        ``correlation`` (by default the customer's phone; see engine.messages)."""
        return messages.waiting_instance(session, name, correlation)

    def index_unindexed_waits(self, session: Session, limit: int = 100) -> int:
        """Index the message waits of running cases started before the correlation index existed
        (each once; new steps index themselves). Commits."""
        ids = messages.unindexed_instances(session, limit)
        for instance_id in ids:
            instance = session.get(ProcessInstance, instance_id)
            if instance is not None:
                workflow = self._peek_workflow(session, instance)
                messages.index_waits(session, instance, messages.waits_of(workflow, instance))
        session.commit()
        return len(ids)

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
                     data=step_data.audit_data(payload))
        self._advance(session, instance, workflow, now, actor=None)
        return instance

    # -- reading ---------------------------------------------------------------------------
    def get_task(self, session: Session, task_id: int, actor: User) -> HumanTask:
        """A task the actor may see (their groups, assigned to them, or admin); else NotFound."""
        task = session.get(HumanTask, task_id, options=WITH_INSTANCE)
        if task is None or not access.may_see_task(session, actor, task):
            raise NotFound(f"task {task_id} not found")
        return task

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
            return dict(workflow.get_task_from_id(step_data.task_uuid(task.task_guid)).data)
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
                run_engine_steps(workflow)  # prunes finished history as it goes
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
            step_data.forget_fields(workflow, secrets)
        # The jobs the step asked for are written with it (the outbox): never without the step,
        # never twice for one task run (the key is unique).
        for request in calls.requests:
            outbox.enqueue(session, request.operation, request.params,
                           key=outbox.job_key(instance.id, request.task_guid), now=now,
                           instance_id=instance.id, task_guid=request.task_guid,
                           element_id=request.element_id, result_var=request.result_var, wait=request.wait,
                           priority=request.priority, batched=True)
        if calls.requests and self.on_jobs_queued is not None:
            after_commit(session, self.on_jobs_queued, key="jobs_queued")
        try:
            # The inbox is brought in step before the state is written, all in one flush: the
            # UPDATE of the instance carries the version check, and if it fails the whole step
            # (state, tasks, clocks, events) is rolled back with it.
            with session.no_autoflush:
                self.task_rows.sync(session, instance, workflow, now, actor=actor,
                                    open_rows=[] if new else open_rows)
            instance.state = dump_state(workflow)
            instance.updated_at = now
            instance.next_timer_at = next_timer_time(workflow)
            messages.index_waits(session, instance, messages.waits_of(workflow, instance))
            if self.data_listeners:
                data = step_data.current_data(workflow)
                for data_listener in self.data_listeners:
                    data_listener.step_data(session, instance, data, now)
            if workflow.is_completed():
                instance.status, instance.completed_at, instance.next_timer_at = COMPLETED, now, None
                append_event(session, "completed", at=now, instance_id=instance.id,
                             actor=step_data.username_of(actor), message=step_data.end_name(workflow))
                for listener in self.listeners:
                    listener.instance_finished(session, instance, now)
            session.flush()
        except (StaleDataError, IntegrityError) as exc:
            # IntegrityError: a concurrent run of the same step wrote its rows first (e.g. the job
            # key of the same service task) — the same race as a stale version, seen earlier.
            raise Conflict("the case was changed by someone else; reload and try again") from exc
        self.workflows.put_after_commit(session, instance.id, instance.lock_version, workflow)

    def get_instance(self, session: Session, instance_id: int, actor: User) -> ProcessInstance:
        """A case the actor may see; NotFound otherwise (we do not reveal that it exists)."""
        instance = session.get(ProcessInstance, instance_id)
        if instance is None or not access.may_view_instance(session, actor, instance):
            raise NotFound(f"case {instance_id} not found")
        return instance

    def _mark_error(self, session: Session, instance_id: int, message: str, now: datetime) -> None:
        instance = session.get(ProcessInstance, instance_id)
        if instance is None:
            return
        instance.status, instance.error, instance.updated_at = ERROR, message[:4000], now
        record_event(session, "error", at=now, instance_id=instance_id, message=message[:500])
        session.commit()
        log.error("instance %s failed: %s", instance_id, message)
