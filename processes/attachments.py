"""Attachments on a case (附件): files people add to a case, kept in the attachment store (a
directory of the data dir, or an S3-compatible bucket: ``attachment_store``).

Only a few harmless kinds are accepted, recognised by their content (magic bytes) and not only by
their name: PDF, PNG, JPEG, plain text, and Office documents without macros (docx, xlsx, pptx).
The file is stored under a fresh random key; its original name is kept for downloading only.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import uuid
import zipfile
from datetime import datetime
from pathlib import Path

from sqlalchemy import ForeignKey, Index, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from engine.db import Base
from engine.errors import ValidationFailed
from engine.models import ProcessInstance, record_event
from engine.people import User

from .attachment_store import AttachmentStore, DirectoryStore, ObjectMissing, StoreUnavailable

log = logging.getLogger("kefu.attachments")

DEFAULT_LIMIT = 10 * 1024 * 1024
# kind -> (extensions, the content type it is served as)
KINDS: dict[str, tuple[tuple[str, ...], str]] = {
    "pdf": ((".pdf",), "application/pdf"),
    "png": ((".png",), "image/png"),
    "jpeg": ((".jpg", ".jpeg"), "image/jpeg"),
    "text": ((".txt", ".csv", ".log"), "text/plain; charset=utf-8"),
    "docx": ((".docx",), "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
    "xlsx": ((".xlsx",), "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    "pptx": ((".pptx",), "application/vnd.openxmlformats-officedocument.presentationml.presentation"),
}
_OFFICE_PARTS = {"docx": "word/", "xlsx": "xl/", "pptx": "ppt/"}


class CaseAttachment(Base):
    """One file added to a case."""

    __tablename__ = "case_attachments"
    __table_args__ = (Index("ix_case_attachments_instance", "instance_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instances.id"))
    filename: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    stored_as: Mapped[str] = mapped_column(String(64), unique=True)
    added_at: Mapped[datetime]
    added_by_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    added_by_name: Mapped[str] = mapped_column(String(80))


def sniff(filename: str, content: bytes) -> str:
    """The kind of a file from its content, checked against its name; ValidationFailed otherwise."""
    suffix = Path(filename).suffix.lower()
    kind = _kind_of(content)
    if kind is None:
        raise ValidationFailed("this type of file is not accepted", {"file": "unsupported_type"})
    if suffix not in KINDS[kind][0]:
        raise ValidationFailed("the file's name does not match its content", {"file": "name_mismatch"})
    return kind


def _kind_of(content: bytes) -> str | None:
    if content.startswith(b"%PDF-"):
        return "pdf"
    if content.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if content.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if content.startswith(b"PK\x03\x04"):
        return _office_kind(content)
    if b"\x00" not in content and _is_text(content):
        return "text"
    return None


def _office_kind(content: bytes) -> str | None:
    """docx/xlsx/pptx: a ZIP with the Office parts and no macro project (vbaProject.bin)."""
    try:
        names = zipfile.ZipFile(io.BytesIO(content)).namelist()
    except (zipfile.BadZipFile, ValueError):
        return None
    if "[Content_Types].xml" not in names or any(n.lower().endswith("vbaproject.bin") for n in names):
        return None
    for kind, prefix in _OFFICE_PARTS.items():
        if any(n.startswith(prefix) for n in names):
            return kind
    return None


def _is_text(content: bytes) -> bool:
    for encoding in ("utf-8", "gb18030"):
        try:
            content.decode(encoding)
            return True
        except UnicodeDecodeError:
            continue
    return False


def clean_name(filename: str) -> str:
    """The name kept for downloads: no directories, no control characters, at most 200 characters."""
    name = re.sub(r"[\x00-\x1f\x7f/\\]", "_", Path(filename.replace("\\", "/")).name).strip(" .")
    return (name or "file")[-200:]


def add(session: Session, store: AttachmentStore | Path, instance: ProcessInstance, filename: str,
        content: bytes, actor: User, now: datetime, limit: int = DEFAULT_LIMIT) -> CaseAttachment:
    """Check and store a file on ``instance`` (the caller checked that ``actor`` may see the case).

    The object is written first, under a fresh key, then the row is flushed; a row that cannot be
    written deletes the object again (so does :func:`forget` after a failed commit). A store that is
    down raises :class:`StoreUnavailable` before any row exists: never a row without its object."""
    if not content:
        raise ValidationFailed("the file is empty", {"file": "empty"})
    if len(content) > limit:
        raise ValidationFailed("the file is too large", {"file": "too_large"})
    name = clean_name(filename)
    kind = sniff(name, content)
    store = DirectoryStore(store) if isinstance(store, Path) else store
    stored_as = uuid.uuid4().hex
    store.put(stored_as, content, KINDS[kind][1])
    row = CaseAttachment(instance_id=instance.id, filename=name, kind=kind, size=len(content),
                         sha256=hashlib.sha256(content).hexdigest(), stored_as=stored_as, added_at=now,
                         added_by_id=actor.id, added_by_name=actor.display_name)
    try:
        with session.begin_nested():  # the row alone: its failure leaves the caller's transaction usable
            session.add(row)
            session.flush()
    except Exception:
        forget(store, row)
        raise
    record_event(session, "attachment_added", at=now, instance_id=instance.id, actor=actor.username,
                 message=name)
    return row


def forget(store: AttachmentStore, row: CaseAttachment) -> None:
    """Delete the object of a row that was not written (a failed flush or commit). A store that is
    down leaves an orphan object, which no row names: harmless, never a row without its object."""
    try:
        store.delete(row.stored_as)
    except StoreUnavailable:
        log.warning("attachment object %s left orphaned: the store is not answering", row.stored_as)


def content_of(store: AttachmentStore, row: CaseAttachment) -> bytes:
    """The file's bytes, checked against the hash taken on upload (a changed object is missing)."""
    content = store.get(row.stored_as)
    if hashlib.sha256(content).hexdigest() != row.sha256:
        log.warning("attachment %s: the stored object does not match its hash", row.id)
        raise ObjectMissing(f"attachment object {row.stored_as} does not match its hash")
    return content


def of_instance(session: Session, instance_id: int) -> list[CaseAttachment]:
    return list(session.scalars(select(CaseAttachment).where(CaseAttachment.instance_id == instance_id)
                                .order_by(CaseAttachment.id)))


def content_type(row: CaseAttachment) -> str:
    return KINDS[row.kind][1]
