"""Service tasks that call connector operations through the outbox.

A BPMN service task names an operation (``spiffworkflow:serviceTaskOperator id="sms.send"``) with
parameters (Python expressions evaluated in the task's data). Spiff's stock service task calls the
peer inside the step; ours instead asks the step's :class:`ConnectorCalls` what to do:

* an ``inline`` operation (a fast read without side effects, e.g. a password check) runs at once
  and its result lands in the task's data;
* any other operation becomes a *connector job request*, written by the engine in the step's own
  transaction (the outbox). The task then waits in Spiff's STARTED state until a worker delivers
  the result — or, for a task marked ``kefu.wait=false`` (a notification), completes at once.
  ``kefu.priority`` (an expression over the task's data, e.g. ``priority``) orders the job among
  the due ones: higher runs first (a VIP's callback before the queue of ordinary ones).
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from SpiffWorkflow.bpmn.parser.BpmnParser import BpmnValidator, full_tag
from SpiffWorkflow.bpmn.specs.mixins.service_task import ServiceTask as _BpmnServiceTask
from SpiffWorkflow.exceptions import WorkflowException
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser
from SpiffWorkflow.spiff.parser.task_spec import ServiceTaskParser
from SpiffWorkflow.spiff.specs.defaults import ServiceTask as _SpiffServiceTask

WAIT_PROPERTY = "kefu.wait"
PRIORITY_PROPERTY = "kefu.priority"


@dataclass
class JobRequest:
    """A connector job the current step asks for (written by the engine with the step)."""

    task_guid: str
    element_id: str
    operation: str
    params: dict[str, Any]
    result_var: str
    wait: bool
    priority: int = 0


@dataclass
class ConnectorCalls:
    """What one step may call: the installed operations, and the jobs it has asked for so far."""

    operations: dict[str, Any]
    now: datetime
    instance_id: int | None = None
    session: Any = None  # the step's session (inline product operations write with the step)
    requests: list[JobRequest] = field(default_factory=list)


_current: ContextVar[ConnectorCalls | None] = ContextVar("kefu_connector_calls", default=None)


def begin_step(calls: ConnectorCalls):
    """Make ``calls`` the current step's connector context; returns a token for :func:`end_step`."""
    return _current.set(calls)


def end_step(token) -> None:
    _current.reset(token)


class InlineCallFailed(WorkflowException):
    """An inline operation failed: the step is abandoned and the user told why."""


class ConnectorServiceTask(_SpiffServiceTask):
    """Spiff's service task, but calls go through :class:`ConnectorCalls` (see module doc)."""

    def _execute(self, task):
        calls = _current.get()
        if calls is None:
            raise WorkflowException(f"service task {self.bpmn_id} ran outside an engine step", task_spec=self)
        operation = calls.operations.get(self.operation_name)
        if operation is None:
            raise WorkflowException(f"no connector offers the operation '{self.operation_name}'",
                                    task_spec=self)
        params = {name: value["value"] for name, value in self.evaluate_params(task).items()}
        if operation.mode == "inline":
            return self._run_inline(task, calls, operation, params)
        properties = _properties(self)
        wait = str(properties.get(WAIT_PROPERTY, "true")).lower() not in ("false", "no", "0")
        calls.requests.append(JobRequest(task_guid=str(task.id), element_id=self.bpmn_id,
                                         operation=self.operation_name, params=params,
                                         result_var=self.result_variable, wait=wait,
                                         priority=self._priority(task, properties.get(PRIORITY_PROPERTY))))
        return None if wait else True

    def _priority(self, task, expression: str | None) -> int:
        """The job's priority: ``kefu.priority`` evaluated on the task's data (0 when absent)."""
        if not expression or not str(expression).strip():
            return 0
        value = task.workflow.script_engine.evaluate(task, str(expression))
        try:
            return int(value or 0)
        except (TypeError, ValueError) as exc:
            raise WorkflowException(f"kefu.priority '{expression}' gave {value!r}, not a number",
                                    task_spec=self) from exc

    def _run_inline(self, task, calls: ConnectorCalls, operation: Any, params: dict[str, Any]) -> bool:
        from connectors.base import Call, ConnectorError

        call = Call(job_id=0, key=f"inline-{task.id}", attempt=1, now=calls.now,
                    instance_id=calls.instance_id, session=calls.session)
        try:
            task.data[self.result_variable] = operation.run(params, call)
        except ConnectorError as exc:
            raise InlineCallFailed(f"{operation.title}: {exc}", task_spec=self) from exc
        return True


def _properties(spec: Any) -> dict[str, str]:
    return dict((getattr(spec, "extensions", None) or {}).get("properties") or {})


class KefuBpmnParser(SpiffBpmnParser):
    """SpiffBpmnParser whose service tasks are :class:`ConnectorServiceTask`."""

    OVERRIDE_PARSER_CLASSES: ClassVar[dict] = {
        **SpiffBpmnParser.OVERRIDE_PARSER_CLASSES,
        full_tag("serviceTask"): (ServiceTaskParser, ConnectorServiceTask),
    }


def make_parser() -> KefuBpmnParser:
    return KefuBpmnParser(validator=BpmnValidator())


def is_service_task(spec: Any) -> bool:
    return isinstance(spec, _BpmnServiceTask)
