"""File exchange with the national and network-management centres over FTP (DESIGN.md, "File
exchange over FTP"): every file sent or received is a ``file_exchanges`` row whose status the tick
moves on; the FTP calls themselves are outbox jobs (``connectors/ftp``), so a server that is down
or a connection that drops loses nothing and sends nothing twice.

Upload: ``ftp.upload`` (NAME.part → NAME → NAME.sent) → ``ftp.check_ack`` polls for NAME.ok. No
mark within ``ack_limit`` → the same file is uploaded again under the same name (one file on the
server, never two), and after the second miss the exchange fails with an incident whose retry
button polls for the mark again.

Download: an ``ftp.collect`` job every few minutes fetches the files offered in the inbox folder;
each is recorded (deduplicated by name and SHA-256) before ``ftp.acknowledge`` writes NAME.ok, so
a crash between the two fetches the file again rather than losing it.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from engine import outbox
from engine.db import Base
from engine.models import record_event

UP, DOWN = "up", "down"
SENDING, SENT, ACKNOWLEDGED, FAILED = "sending", "sent", "acknowledged", "failed"
UPLOADS_PER_FILE = 2           # the first upload and one more after a missed success mark
COLLECT_EVERY = timedelta(minutes=5)
CONSUMED = "consumed"          # a done ftp.collect job whose files are recorded
LABELS = {SENDING: "发送中", SENT: "已发送，待确认", ACKNOWLEDGED: "对方已确认", FAILED: "失败"}
DIRECTIONS = {UP: "上传", DOWN: "下载"}


class FileExchange(Base):
    """One file sent to or received from a centre."""

    __tablename__ = "file_exchanges"
    __table_args__ = (Index("ix_file_exchanges_open", "status", "id"),
                      Index("ix_file_exchanges_file", "direction", "name", "sha256", unique=True))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    direction: Mapped[str] = mapped_column(String(4))
    kind: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    uploads: Mapped[int] = mapped_column(Integer, default=0)
    job_id: Mapped[int | None] = mapped_column(ForeignKey("connector_jobs.id"))  # the step waited on
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("process_instances.id"))
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    acknowledged_at: Mapped[datetime | None]


def send_file(session: Session, name: str, kind: str, content: bytes | str, now: datetime, *,
              instance_id: int | None = None) -> FileExchange:
    """Queue ``content`` for upload as ``name`` (in the caller's transaction). The same file again
    is the same exchange; the file name is checked by the FTP connector when it runs."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    digest = hashlib.sha256(data).hexdigest()
    row = session.scalar(select(FileExchange).where(FileExchange.direction == UP, FileExchange.name == name,
                                                     FileExchange.sha256 == digest))
    if row is not None:
        return row
    row = FileExchange(name=name, direction=UP, kind=kind, status=SENDING, size=len(data), sha256=digest,
                       content=data, uploads=0, instance_id=instance_id, created_at=now)
    session.add(row)
    session.flush()
    _upload(session, row, now)
    return row


def advance(session: Session, now: datetime, ack_limit: timedelta, *, collect: bool = True,
            limit: int = 200) -> int:
    """Move every open exchange on by what its jobs did; collect offered files when due. Commits.
    Returns how many exchanges changed."""
    changed = 0
    rows = list(session.scalars(select(FileExchange).where(FileExchange.status.in_((SENDING, SENT, FAILED)))
                                .where(FileExchange.created_at >= now - timedelta(days=30))
                                .order_by(FileExchange.id).limit(limit)))
    for row in rows:
        changed += _step(session, row, now, ack_limit)
    if collect:
        changed += _record_collected(session, now)
        _collect_when_due(session, now)
    session.commit()
    return changed


def exchanges(session: Session, limit: int = 200) -> list[FileExchange]:
    return list(session.scalars(select(FileExchange).order_by(FileExchange.id.desc()).limit(limit)))


def as_item(row: FileExchange) -> dict[str, Any]:
    """The contract's item of ``GET /api/v1/exchanges``."""
    return {"id": row.id, "name": row.name, "direction": row.direction, "kind": row.kind, "status": row.status,
            "size": row.size, "sha256": row.sha256, "uploads": row.uploads,
            "sent_at": _iso(row.sent_at), "acknowledged_at": _iso(row.acknowledged_at)}


# -- internals -----------------------------------------------------------------------------------
def _step(session: Session, row: FileExchange, now: datetime, ack_limit: timedelta) -> int:
    job = session.get(outbox.ConnectorJob, row.job_id) if row.job_id else None
    if job is None:
        return 0
    if row.direction == DOWN:  # received: waiting for our success mark to be written
        if job.status == outbox.DONE:
            row.status, row.acknowledged_at = ACKNOWLEDGED, now
            return 1
        return 0
    if job.operation == "ftp.upload":
        if job.status == outbox.DONE:
            row.status, row.sent_at = SENT, now
            row.job_id = _job_id(session, outbox.enqueue(session, "ftp.check_ack", {"name": row.name},
                                                         key=f"ftp-ack-{row.id}-{row.uploads}", now=now))
            return 1
        if job.status == outbox.FAILED and row.status != FAILED:
            row.status = FAILED  # the outbox opened the incident; its retry uploads again
            return 1
        if job.status == outbox.QUEUED and row.status == FAILED:
            row.status = SENDING  # an administrator retried the incident
            return 1
        return 0
    # ftp.check_ack
    if job.status == outbox.DONE:
        row.status, row.acknowledged_at = ACKNOWLEDGED, now
        record_event(session, "file_acknowledged", at=now, instance_id=row.instance_id, message=row.name)
        return 1
    if row.status == FAILED:
        if job.status == outbox.QUEUED:
            row.status = SENT  # the incident was retried: poll for the mark again
            return 1
        return 0
    if row.sent_at is None or now - row.sent_at < ack_limit or job.status != outbox.QUEUED:
        return 0
    if row.uploads < UPLOADS_PER_FILE:
        job.status = outbox.CANCELLED
        _upload(session, row, now)
        row.status = SENDING
        return 1
    row.status = FAILED
    outbox.open_incident(session, job, outbox.EXHAUSTED,
                         f"no success mark {row.name}.ok within {int(ack_limit.total_seconds() // 60)} min "
                         f"after {row.uploads} uploads", now)
    return 1


def _upload(session: Session, row: FileExchange, now: datetime) -> None:
    row.uploads += 1
    params = {"name": row.name, "content_b64": base64.b64encode(row.content).decode()}
    row.job_id = _job_id(session, outbox.enqueue(session, "ftp.upload", params, key=f"ftp-up-{row.id}-{row.uploads}",
                                                 now=now, instance_id=row.instance_id))


def _collect_when_due(session: Session, now: datetime) -> None:
    last = session.scalar(select(outbox.ConnectorJob).where(outbox.ConnectorJob.operation == "ftp.collect")
                          .order_by(outbox.ConnectorJob.id.desc()).limit(1))
    if last is not None and (last.status in (outbox.QUEUED, outbox.RUNNING)
                             or now - last.created_at < COLLECT_EVERY):
        return
    outbox.enqueue(session, "ftp.collect", {}, key=f"ftp-collect-{now:%Y%m%d%H%M%S}", now=now)


def _record_collected(session: Session, now: datetime) -> int:
    recorded = 0
    for job in session.scalars(select(outbox.ConnectorJob).where(outbox.ConnectorJob.operation == "ftp.collect",
                                                                 outbox.ConnectorJob.status == outbox.DONE)):
        for item in (job.result or {}).get("files") or []:
            if "content_b64" not in item:
                continue  # too large to travel in a result: stays offered, an administrator fetches it
            data = base64.b64decode(item["content_b64"])
            digest = hashlib.sha256(data).hexdigest()
            if session.scalar(select(FileExchange.id).where(FileExchange.direction == DOWN,
                                                            FileExchange.name == item["name"],
                                                            FileExchange.sha256 == digest)):
                continue
            row = FileExchange(name=item["name"], direction=DOWN, kind=_kind_of(item["name"]), status=SENT,
                               size=len(data), sha256=digest, content=data, uploads=0, created_at=now,
                               sent_at=now)
            session.add(row)
            session.flush()
            row.job_id = _job_id(session, outbox.enqueue(session, "ftp.acknowledge", {"name": row.name},
                                                         key=f"ftp-ok-{row.id}", now=now))
            recorded += 1
        job.status = CONSUMED
    return recorded


def _job_id(session: Session, job: outbox.ConnectorJob) -> int:
    session.flush()  # the job's id is given on insert
    return job.id


def _kind_of(name: str) -> str:
    """A received file's kind from its name's prefix (``SPEC_…`` 规范文件, else 业务文件)."""
    return "specification" if name.upper().startswith("SPEC") else "business"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
