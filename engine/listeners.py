"""The hooks through which other packages (SLA clocks, notifications) join an engine step.

Every hook runs inside the step's transaction, so what it writes commits or rolls back with the
workflow state. The engine calls them; it never imports their implementations.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

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
