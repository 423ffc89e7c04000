"""Small pure helpers of a step: case titles and numbers, audit-safe data, write-only fields."""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Mapping
from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState

from .people import User


def start_event(spec: Any) -> Any:
    """The process's plain (none) start event, whose properties describe the whole case."""
    for task_spec in spec.task_specs.values():
        event = getattr(task_spec, "event_definition", None)
        if type(task_spec).__name__ == "StartEvent" and type(event).__name__ == "NoneEventDefinition":
            return task_spec
    return spec.start


def current_data(workflow: BpmnWorkflow) -> Mapping[str, Any]:
    """The case's data as of now, without copying: its newest completed step's data, and the
    workflow's own on top once it has finished (as ``Engine.workflow_data`` reads it)."""
    task = workflow.last_task
    data: dict[str, Any] = task.data if task is not None else {}
    return ChainMap(workflow.data, data) if workflow.is_completed() else data


def case_title(data: dict[str, Any], fallback: str) -> str:
    """A case's one-line title: its ``title`` field, else the start of its description."""
    text = " ".join(str(data.get("title") or data.get("description") or fallback).split())
    return text if len(text) <= 60 else text[:59] + "…"


def end_name(workflow: BpmnWorkflow) -> str:
    """The name of the end event the case finished on (e.g. 投诉关闭)."""
    ends = [t for t in workflow.get_tasks(state=TaskState.COMPLETED)
            if type(t.task_spec).__name__ == "EndEvent"]
    return (ends[-1].task_spec.bpmn_name or "") if ends else ""


def username_of(user: User | None) -> str | None:
    return user.username if user else None


def short_or_none(value: Any) -> str | None:
    return str(value)[:32] if value not in (None, "") else None


def task_uuid(value: str) -> UUID:
    return UUID(value)


def forget_fields(workflow: BpmnWorkflow, names: frozenset[str]) -> None:
    """Remove write-only fields from every task's data (Spiff copies data from task to task)."""
    for task in workflow.get_tasks():
        for name in names:
            task.data.pop(name, None)
    for name in names:
        workflow.data.pop(name, None)


def audit_data(data: dict[str, Any], secrets: frozenset[str] = frozenset()) -> dict[str, Any]:
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
