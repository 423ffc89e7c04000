"""Reply templates (答复模板): canned texts per complaint category that a handler inserts into a
reply field and then adapts; leaders and managers keep them. Internal notes on a case live here too:
a note is a line of the case's history (``internal_note``), never a text to the customer."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, or_, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from engine.db import Base
from engine.errors import NotFound, ValidationFailed
from engine.models import AuditEvent, ProcessInstance, record_event
from engine.people import User

# The complaint intake's categories (bpmn/forms/complaint_intake.schema.json); "" = every category.
CATEGORIES = ("billing", "network", "service", "sales", "suggestion", "other",
              "installation", "value_added", "appeal")
NOTE_KIND = "internal_note"
NOTE_LIMIT = 500  # one history line


class ReplyTemplate(Base):
    __tablename__ = "reply_templates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    category: Mapped[str] = mapped_column(String(32), default="", index=True)
    title: Mapped[str] = mapped_column(String(80))
    body: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime]
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


def save(session: Session, template_id: int | None, category: str, title: str, body: str,
         actor: User, now: datetime) -> ReplyTemplate:
    """Create (``template_id`` None) or change a template, checked."""
    category, title, body = (category or "").strip(), (title or "").strip(), (body or "").strip()
    fields = {}
    if category and category not in CATEGORIES:
        fields["category"] = "choice"
    if not title or len(title) > 80:
        fields["title"] = "required" if not title else "too_long"
    if not body or len(body) > 4000:
        fields["body"] = "required" if not body else "too_long"
    if fields:
        raise ValidationFailed("the reply template is not complete", fields)
    row = get(session, template_id) if template_id is not None else ReplyTemplate()
    row.category, row.title, row.body, row.updated_at, row.updated_by_id = category, title, body, now, actor.id
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
    return list(session.scalars(select(ReplyTemplate).order_by(ReplyTemplate.category, ReplyTemplate.title)))


def for_category(session: Session, category: str | None) -> list[ReplyTemplate]:
    """The category's templates first, then those for every category."""
    query = select(ReplyTemplate).where(or_(ReplyTemplate.category == "", ReplyTemplate.category == (category or "")))
    rows = list(session.scalars(query.order_by(ReplyTemplate.title)))
    return sorted(rows, key=lambda r: r.category == "")


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
