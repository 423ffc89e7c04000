"""What peers report back: the ids they gave our calls (an SMSC message id, a PBX unique id) and
the events they send us (delivery receipts, customers' SMS replies, call events), stored first and
handled by the tick (``processes.inbound``)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from .db import Base
from .models import record_event
from .outbox import ConnectorJob

# How long a peer's id identifies one call: beyond an SMS's validity period (48-72 h at SMSCs).
REFERENCE_WINDOW = timedelta(days=7)


class PeerReference(Base):
    """An id a peer gave a job's call (an SMSC message id, a PBX unique id, a billing order key), so
    that later reports from the peer (delivery receipts, call events) find the job and its case.

    A peer's ids are not unique over time: an SMSC that restarts numbers its messages from 1 again.
    So the same (kind, ref) may be stored many times, and a report goes to the newest one given
    within :data:`REFERENCE_WINDOW` (what a restarted peer reports on is what it was given since)."""

    __tablename__ = "connector_refs"
    __table_args__ = (Index("ix_connector_refs_ref", "kind", "ref", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    ref: Mapped[str] = mapped_column(String(80))
    job_id: Mapped[int] = mapped_column(ForeignKey("connector_jobs.id"), index=True)
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("process_instances.id"))
    state: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class InboundEvent(Base):
    """Something a peer sent us (a delivery receipt, a customer's SMS reply, a call event), stored
    before the peer is acknowledged and processed by the next tick: nothing received is lost when
    the product stops, and the receiving thread never waits for a workflow step."""

    __tablename__ = "connector_inbox"
    __table_args__ = (Index("ix_connector_inbox_pending", "processed_at", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    ref: Mapped[str | None] = mapped_column(String(80))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    received_at: Mapped[datetime]
    processed_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(200))
    instance_id: Mapped[int | None] = mapped_column(Integer)


def add_references(session: Session, job: ConnectorJob, kind: str, refs: Iterable[str], state: str,
                   now: datetime) -> None:
    for ref in refs:
        session.add(PeerReference(kind=kind, ref=str(ref)[:80], job_id=job.id, instance_id=job.instance_id,
                                  state=state, created_at=now, updated_at=now))


def update_reference(session: Session, kind: str, ref: str, state: str, now: datetime,
                     detail: dict[str, Any] | None = None, job_key: str | None = None) -> PeerReference | None:
    """A peer reported on one of its ids (e.g. a delivery receipt): store the state and put it on the
    case's history. When the peer's client knows which call was given the id (``job_key``, the
    job's idempotency key) the report goes to that call's reference — None while its outcome is not
    stored yet. Otherwise it belongs to the newest call the peer gave that id within
    :data:`REFERENCE_WINDOW`; unknown ids (another system's, or older) are ignored."""
    query = select(PeerReference).where(PeerReference.kind == kind, PeerReference.ref == ref)
    if job_key:
        query = query.join(ConnectorJob, ConnectorJob.id == PeerReference.job_id).where(ConnectorJob.key == job_key)
    else:
        query = query.where(PeerReference.created_at >= now - REFERENCE_WINDOW)
    row = session.scalars(query.order_by(PeerReference.id.desc()).limit(1)).first()
    if row is None:
        return None
    row.state, row.updated_at = state, now
    record_event(session, f"{kind}_{state}", at=now, instance_id=row.instance_id, message=ref,
                 data={"job_id": row.job_id, **(detail or {})})
    return row


# -- inbound -----------------------------------------------------------------------------------
def receive(session: Session, kind: str, payload: dict[str, Any], *, now: datetime,
            ref: str | None = None) -> InboundEvent:
    """Store what a peer sent (the caller commits before acknowledging the peer)."""
    event = InboundEvent(kind=kind, ref=ref, payload=payload, received_at=now)
    session.add(event)
    return event


def pending_inbound(session: Session, limit: int = 500) -> list[InboundEvent]:
    return list(session.scalars(select(InboundEvent).where(InboundEvent.processed_at.is_(None))
                                .order_by(InboundEvent.id).limit(limit)))


def recent_inbound(session: Session, kind: str, limit: int = 100) -> list[InboundEvent]:
    return list(session.scalars(select(InboundEvent).where(InboundEvent.kind == kind)
                                .order_by(InboundEvent.id.desc()).limit(limit)))
