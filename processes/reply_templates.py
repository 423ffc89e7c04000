"""Reply templates (答复模板): canned texts that a handler inserts into a step's reply or answer field
and then adapts, kept by leaders and managers per process and, where the process has one, per kind of
case (a complaint's category, an acceptance's request type, a callback's kind). Internal notes on a
case live here too: a note is a line of the case's history (``internal_note``), never a text to the
customer."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, Text, or_, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from engine.db import Base
from engine.errors import NotFound, ValidationFailed
from engine.models import AuditEvent, ProcessInstance, record_event
from engine.people import User

# The complaint intake's categories (bpmn/forms/complaint_intake.schema.json); "" = every category.
CATEGORIES = ("billing", "network", "service", "sales", "suggestion", "other",
              "installation", "value_added", "appeal")
# Process key -> the case variable its templates are keyed by (None: one list for the process).
PROCESSES: dict[str, str | None] = {"complaint": "category", "roaming_transfer": "category",
                                    "business_acceptance": "request_type", "outbound_callback": "kind",
                                    "dunning": None}
# The task forms' fields where a reply or answer is typed (bpmn/forms), in order of preference: the
# task page offers the templates on a step that has one of them.
REPLY_FIELDS = ("final_reply", "first_reply", "dept_first_reply", "handling_result", "callback_note",
                "refusal_note", "result_note", "dunning_note")
NOTE_KIND = "internal_note"
NOTE_LIMIT = 500  # one history line


class ReplyTemplate(Base):
    __tablename__ = "reply_templates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    process_key: Mapped[str] = mapped_column(String(80), default="complaint", server_default="complaint")
    category: Mapped[str] = mapped_column(String(32), default="", index=True)  # the kind; "" = every kind
    title: Mapped[str] = mapped_column(String(80))
    body: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime]
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


def save(session: Session, template_id: int | None, category: str, title: str, body: str,
         actor: User, now: datetime, process: str = "complaint", kinds: Collection[str] | None = None) -> ReplyTemplate:
    """Create (``template_id`` None) or change a template, checked. ``kinds``: the process's kinds
    (from its deployed form); the complaint categories when not given."""
    category, title, body = (category or "").strip(), (title or "").strip(), (body or "").strip()
    fields = {}
    if process not in PROCESSES:
        fields["process"] = "choice"
    elif category and (PROCESSES[process] is None
                       or category not in (kinds if kinds is not None else
                                           CATEGORIES if PROCESSES[process] == "category" else ())):
        fields["category"] = "choice"
    if not title or len(title) > 80:
        fields["title"] = "required" if not title else "too_long"
    if not body or len(body) > 4000:
        fields["body"] = "required" if not body else "too_long"
    if fields:
        raise ValidationFailed("the reply template is not complete", fields)
    row = get(session, template_id) if template_id is not None else ReplyTemplate()
    row.process_key, row.category, row.title, row.body = process, category, title, body
    row.updated_at, row.updated_by_id = now, actor.id
    session.add(row)
    return row


def get(session: Session, template_id: int) -> ReplyTemplate:
    row = session.get(ReplyTemplate, template_id)
    if row is None:
        raise NotFound(f"reply template {template_id} not found")
    return row


def delete(session: Session, template_id: int) -> None:
    session.delete(get(session, template_id))


def all_templates(session: Session) -> list[ReplyTemplate]:
    rows = session.scalars(select(ReplyTemplate).order_by(ReplyTemplate.category, ReplyTemplate.title))
    order = list(PROCESSES)
    return sorted(rows, key=lambda r: order.index(r.process_key) if r.process_key in order else len(order))


def kind_of(process: str, data: Mapping[str, Any] | None) -> str | None:
    """The case's kind its templates are chosen by (None when the process has none or it is unset)."""
    variable = PROCESSES.get(process)
    value = (data or {}).get(variable) if variable else None
    return value if isinstance(value, str) and value else None


def for_case(session: Session, process: str, kind: str | None) -> list[ReplyTemplate]:
    """The process's templates for this kind first, then those for every kind."""
    query = select(ReplyTemplate).where(ReplyTemplate.process_key == process,
                                        or_(ReplyTemplate.category == "", ReplyTemplate.category == (kind or "")))
    rows = list(session.scalars(query.order_by(ReplyTemplate.title)))
    return sorted(rows, key=lambda r: r.category == "")


def for_category(session: Session, category: str | None) -> list[ReplyTemplate]:
    """A complaint category's templates first, then those for every category."""
    return for_case(session, "complaint", category)


def reply_field(names: Collection[str]) -> str | None:
    """The field of a step's form where the reply is typed, if it has one."""
    return next((name for name in REPLY_FIELDS if name in names), None)


def add_note(session: Session, instance: ProcessInstance, text: str, actor: User, now: datetime) -> AuditEvent:
    """An internal note on the case's history (the caller checked that ``actor`` may see the case)."""
    text = (text or "").strip()
    if not text:
        raise ValidationFailed("the note is empty", {"note": "required"})
    if len(text) > NOTE_LIMIT:
        raise ValidationFailed(f"a note has at most {NOTE_LIMIT} characters", {"note": "too_long"})
    return record_event(session, NOTE_KIND, at=now, instance_id=instance.id, actor=actor.username,
                        message=text, data={"author": actor.display_name})


def notes_of(session: Session, instance_id: int) -> list[AuditEvent]:
    return list(session.scalars(select(AuditEvent).where(AuditEvent.instance_id == instance_id,
                                                         AuditEvent.kind == NOTE_KIND).order_by(AuditEvent.id)))
