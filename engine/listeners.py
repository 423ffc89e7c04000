"""The hooks through which other packages (SLA clocks, notifications) join an engine step.

Every hook runs inside the step's transaction, so what it writes commits or rolls back with the
workflow state. The engine calls them; it never imports their implementations.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from sqlalchemy.orm import Session

from .models import HumanTask, ProcessInstance


class StepListener(Protocol):
    def instance_started(self, session: Session, instance: ProcessInstance,
                         start_properties: dict[str, str], group_id: int | None, now: datetime) -> None: ...

    def task_opened(self, session: Session, instance: ProcessInstance, task: HumanTask,
                    properties: dict[str, str], data: dict[str, Any], now: datetime) -> None: ...

    def task_closed(self, session: Session, instance: ProcessInstance, task: HumanTask,
                    now: datetime) -> None: ...

    def instance_finished(self, session: Session, instance: ProcessInstance, now: datetime) -> None: ...

    def instance_suspended(self, session: Session, instance: ProcessInstance, now: datetime) -> None: ...

    def instance_resumed(self, session: Session, instance: ProcessInstance, now: datetime) -> None: ...


class StepHooks:
    """A ``StepListener`` that does nothing at every hook: subclass it and override only the hooks
    a listener needs."""

    def instance_started(self, *args: Any) -> None: ...

    def task_opened(self, *args: Any) -> None: ...

    def task_closed(self, *args: Any) -> None: ...

    def instance_finished(self, *args: Any) -> None: ...

    def instance_suspended(self, *args: Any) -> None: ...

    def instance_resumed(self, *args: Any) -> None: ...


@runtime_checkable
class CaseDataListener(Protocol):
    """Optional, beside ``StepListener``: a listener that also has this method hears the case's
    data at the end of every step (after the inbox rows, before ``instance_finished``), e.g. to
    keep denormalised facts of a case in step without ever deserializing its workflow.

    ``data`` is the case's current data (its newest completed step's, plus the workflow's own
    when it has finished), read-only, without the step's write-only fields."""

    def step_data(self, session: Session, instance: ProcessInstance, data: Mapping[str, Any],
                  now: datetime) -> None: ...
