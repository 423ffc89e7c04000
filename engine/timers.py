"""When an instance next needs a tick: the earliest due time of its waiting timer events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState


def next_timer_time(workflow: BpmnWorkflow) -> datetime | None:
    """Earliest due time among the workflow's waiting timers (None when it waits on none)."""
    times: list[datetime] = []
    for event in workflow.waiting_events():
        # Spiff's timer event types: DurationTimer…, TimeDate… (no "Timer" in it), CycleTimer….
        if not any(kind in event.event_type for kind in ("Timer", "TimeDate", "Cycle")):
            continue
        _add(times, event.value)
    # An event-based gateway waits on one combined event whose pending details carry no time; the
    # timer behind it keeps its due time on the gateway task.
    for task in workflow.get_tasks(state=TaskState.WAITING):
        definition = getattr(task.task_spec, "event_definition", None)
        if isinstance(definition, MultipleEventDefinition) and any(
                isinstance(d, TimerEventDefinition) for d in definition.event_definitions):
            _add(times, task._get_internal_data("event_value"))
    return min(times) if times else None


def _add(times: list[datetime], value: Any) -> None:
    if isinstance(value, dict):  # cycle timers keep {'cycles', 'next', 'duration'}
        value = value.get("next")
    if not value:
        return
    when = datetime.fromisoformat(str(value))
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    times.append(when)
