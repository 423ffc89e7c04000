"""When an instance next needs a tick: the earliest due time of its waiting timer events."""

from __future__ import annotations

from datetime import UTC, datetime

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow


def next_timer_time(workflow: BpmnWorkflow) -> datetime | None:
    """Earliest due time among the workflow's waiting timers (None when it waits on none)."""
    times = []
    for event in workflow.waiting_events():
        if "Timer" not in event.event_type and "Cycle" not in event.event_type:
            continue
        value = event.value
        if isinstance(value, dict):  # cycle timers keep {'cycles', 'next', 'duration'}
            value = value.get("next")
        if not value:
            continue
        when = datetime.fromisoformat(str(value))
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        times.append(when)
    return min(times) if times else None
