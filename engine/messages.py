"""BPMN messages into waiting cases, found through a correlation index.

Every step writes which messages its case now waits for, each with its correlation value (by
default the case's ``customer_phone``; a catching event may name another data variable in the
``kefu.correlation`` property, e.g. ``serial_no``). Finding the case that waits for a customer's
SMS reply or a subscriber's payment is then one indexed query — never a scan of workflows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from SpiffWorkflow.bpmn.specs.mixins.events.intermediate_event import EventBasedGateway
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.spiff.specs.event_definitions import MessageEventDefinition
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import ForeignKey, Index, Integer, String, delete, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from . import definitions
from .db import Base
from .models import RUNNING, ProcessInstance

CORRELATION_PROPERTY = "kefu.correlation"  # the data variable whose value a message must match
DEFAULT_CORRELATION = "customer_phone"


class MessageWait(Base):
    """One message a running case waits for, with the value that routes it there."""

    __tablename__ = "message_waits"
    __table_args__ = (Index("ix_message_waits_route", "name", "correlation", "instance_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instances.id"), index=True)
    name: Mapped[str] = mapped_column(String(120))
    correlation: Mapped[str] = mapped_column(String(120))


def waits_of(workflow: BpmnWorkflow, instance: ProcessInstance) -> set[tuple[str, str]]:
    """(message name, correlation value) for every message ``workflow`` waits for now (also behind
    an event-based gateway, which Spiff reports as one combined event on the gateway)."""
    found: set[tuple[str, str]] = set()
    for task in workflow.get_tasks(state=TaskState.WAITING):
        for name, var in _caught_messages(task.task_spec):
            value = task.data.get(var)
            if value in (None, "") and var == DEFAULT_CORRELATION:
                value = instance.customer_phone
            if value in (None, ""):
                continue  # nothing to route by: only deliver_message by case id reaches it
            found.add((name, str(value)[:120]))
    return found


def _caught_messages(spec: Any) -> list[tuple[str, str]]:
    """(message name, correlation variable) for each message a waiting task spec catches.

    Behind an event-based gateway Spiff waits on the gateway itself: it moves the catching events'
    definitions onto the gateway (in the order of its outgoing flows) and leaves the events with
    none. The gateway carries no properties, so each message's ``kefu.correlation`` is read from
    the catching event that follows it."""
    definition = getattr(spec, "event_definition", None)
    own = definitions.properties_of(spec).get(CORRELATION_PROPERTY)
    if isinstance(spec, EventBasedGateway):
        outputs = list(getattr(spec, "outputs", None) or [])
        caught = []
        for index, d in enumerate(getattr(definition, "event_definitions", None) or []):
            if not isinstance(d, MessageEventDefinition):
                continue
            event = outputs[index] if index < len(outputs) else None
            var = definitions.properties_of(event).get(CORRELATION_PROPERTY) if event is not None else None
            caught.append((d.name, var or own or DEFAULT_CORRELATION))
        return caught
    return [(d.name, own or DEFAULT_CORRELATION)
            for d in getattr(definition, "event_definitions", None) or [definition]
            if isinstance(d, MessageEventDefinition)]


def waits_for_message(workflow: BpmnWorkflow, name: str) -> bool:
    """Whether a waiting task of ``workflow`` catches the message ``name``."""
    for task in workflow.get_tasks(state=TaskState.WAITING):
        definition = getattr(task.task_spec, "event_definition", None)
        for d in getattr(definition, "event_definitions", None) or [definition]:
            if isinstance(d, MessageEventDefinition) and d.name == name:
                return True
    return False


def index_waits(session: Session, instance: ProcessInstance, waits: set[tuple[str, str]]) -> None:
    """Bring the case's rows in the index in line with ``waits`` (in the step's transaction). The
    instance keeps a digest of what is indexed, so a step that changes nothing writes nothing."""
    digest = _digest(waits)
    if instance.waiting_on == digest:
        return
    if instance.waiting_on:  # rows exist (None: never indexed; "": indexed, waits for nothing)
        session.execute(delete(MessageWait).where(MessageWait.instance_id == instance.id))
    if waits:
        session.add_all(MessageWait(instance_id=instance.id, name=name, correlation=value)
                        for name, value in sorted(waits))
    instance.waiting_on = digest


def clear_waits(session: Session, instance: ProcessInstance) -> None:
    """The case ended: it waits for nothing any more."""
    index_waits(session, instance, set())


def waiting_instance(session: Session, name: str, correlation: str) -> ProcessInstance | None:
    """The newest running case that waits for message ``name`` correlated by ``correlation``."""
    instance_id = session.scalar(
        select(MessageWait.instance_id).join(ProcessInstance, ProcessInstance.id == MessageWait.instance_id)
        .where(MessageWait.name == name, MessageWait.correlation == str(correlation),
               ProcessInstance.status == RUNNING)
        .order_by(MessageWait.instance_id.desc()).limit(1))
    return session.get(ProcessInstance, instance_id) if instance_id is not None else None


def unindexed_instances(session: Session, limit: int = 100) -> list[int]:
    """Running cases whose waits were never indexed (started before the index existed)."""
    return list(session.scalars(select(ProcessInstance.id).where(
        ProcessInstance.status == RUNNING, ProcessInstance.waiting_on.is_(None)).limit(limit)))


def _digest(waits: set[tuple[str, str]]) -> str:
    text = "|".join(f"{name}={value}" for name, value in sorted(waits))
    if len(text) <= 200:
        return text
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def catching_properties(process_specs: Iterable[Any], name: str) -> dict[str, str] | None:
    """The properties of the event that catches message ``name`` in a diagram's process and its
    sub-processes (``process_specs``), e.g. the time limit declared on a wait; None when no event
    catches it. Behind an event-based gateway: the catching event's own, not the gateway's."""
    for process in process_specs:
        for spec in process.task_specs.values():
            definition = getattr(spec, "event_definition", None)
            if isinstance(spec, EventBasedGateway):
                outputs = list(spec.outputs)
                for index, d in enumerate(getattr(definition, "event_definitions", None) or []):
                    if isinstance(d, MessageEventDefinition) and d.name == name and index < len(outputs):
                        return definitions.properties_of(outputs[index])
            elif isinstance(definition, MessageEventDefinition) and definition.name == name:
                return definitions.properties_of(spec)
    return None
