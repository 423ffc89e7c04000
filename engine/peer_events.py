"""What peers report back: the ids they gave our calls (an SMSC message id, a PBX unique id) and
the events they send us (delivery receipts, customers' SMS replies, call events), stored first and
handled by the tick (``processes.inbound``)."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, or_, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from .db import Base
from .models import record_event
from .outbox import ConnectorJob

# How long a peer's id identifies one call: beyond an SMS's validity period (48-72 h at SMSCs).
REFERENCE_WINDOW = timedelta(days=7)
# How far a peer's clock and ours may disagree, plus the time a call takes to have its id recorded.
PEER_CLOCK_SLACK = timedelta(minutes=2)
_CANDIDATES = 50  # references with one id looked at for one report (one per restart of the peer)


class PeerReference(Base):
    """An id a peer gave a job's call (an SMSC message id, a PBX unique id, a billing order key), so
    that later reports from the peer (delivery receipts, call events) find the job and its case.

    A peer's ids are not unique over time: an SMSC that restarts numbers its messages from 1 again.
    So the same (kind, ref) may be stored many times; :func:`update_reference` tells them apart by
    what the report says of itself (when its call was made, to whom) and by ``given_at``."""

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
    # When the peer gave the id by this host's clock — not the engine's, which ticks and tests set —
    # to be compared with the peer's own clock (a receipt's submit date). None on older rows.
    given_at: Mapped[datetime | None]


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
    given = datetime.now(UTC)  # the host's clock, as the peer's reports are (see PeerReference.given_at)
    for ref in refs:
        session.add(PeerReference(kind=kind, ref=str(ref)[:80], job_id=job.id, instance_id=job.instance_id,
                                  state=state, created_at=now, updated_at=now, given_at=given))


def update_reference(session: Session, kind: str, ref: str, state: str, now: datetime,
                     detail: dict[str, Any] | None = None, job_key: str | None = None, *,
                     called_at: datetime | None = None, address: str | None = None,
                     settled: Collection[str] = ()) -> PeerReference | None:
    """A peer reported on one of its ids (e.g. a delivery receipt): store the state and put it on the
    case's history; None when no recorded call fits the report (yet: the caller keeps the report and
    tries again, as its call's id may not be recorded yet).

    A restarted peer gives its ids again, so a report may name an id several calls were given. What
    the report says of itself rules calls out: one the peer gave the id more than
    :data:`PEER_CLOCK_SLACK` before the report's own ``called_at`` (by the peer's clock: a call
    before the peer restarted); one whose job's ``to`` is not the report's ``address``; one already
    in a ``settled`` state (it had its final report). Of the calls left, ``job_key`` (the job's
    idempotency key, from the peer client that made the call) names the one — or, when that call's
    id is not recorded yet, none: the report waits for it. A ``job_key`` naming a call ruled out is
    not trusted (a client that outlived a restart of its peer) and the newest call left within
    :data:`REFERENCE_WINDOW` takes the report; unknown ids (another system's, or older) are ignored."""
    recent = PeerReference.created_at >= now - REFERENCE_WINDOW
    rows = session.execute(
        select(PeerReference, ConnectorJob).join(ConnectorJob, ConnectorJob.id == PeerReference.job_id)
        .where(PeerReference.kind == kind, PeerReference.ref == ref,
               or_(recent, ConnectorJob.key == job_key) if job_key else recent)
        .order_by(PeerReference.id.desc()).limit(_CANDIDATES)).all()

    def fits(reference: PeerReference, job: ConnectorJob) -> bool:
        if reference.state in settled:
            return False
        if called_at is not None and reference.given_at is not None \
                and reference.given_at < called_at - PEER_CLOCK_SLACK:
            return False
        return not address or _same_number(address, (job.params or {}).get("to"))

    tagged = [(r, j) for r, j in rows if job_key and j.key == job_key]
    if job_key and not tagged:
        return None  # the call that was given the id is not recorded yet
    row = next((r for r, j in tagged if fits(r, j)), None)
    if row is None:
        row = next((r for r, j in rows if r.created_at >= now - REFERENCE_WINDOW and fits(r, j)), None)
    if row is None:
        return None
    row.state, row.updated_at = state, now
    record_event(session, f"{kind}_{state}", at=now, instance_id=row.instance_id, message=ref,
                 data={"job_id": row.job_id, **(detail or {})})
    return row


def _same_number(reported: str, sent: Any) -> bool:
    """The peer's address for a call is the one we sent it to, give or take a country prefix
    (8613800000009 for 13800000009). Nothing to compare (no ``to``): not ruled out."""
    a, b = re.sub(r"\D", "", reported), re.sub(r"\D", "", str(sent or ""))
    if not a or not b:
        return True
    short, long = sorted((a, b), key=len)
    return long.endswith(short) and len(short) >= min(len(long), 7)


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
