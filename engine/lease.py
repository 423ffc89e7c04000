"""A database lease so that exactly one scheduler acts at a time, however many processes run.

The lease is taken or renewed with one conditional UPDATE (atomic on SQLite and PostgreSQL); a
holder that dies lets it expire. Correctness never depends on it — every tick step is idempotent —
it only keeps several schedulers from doing the same work.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import String, or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from .db import Base


class SchedulerLease(Base):
    __tablename__ = "scheduler_leases"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    holder: Mapped[str] = mapped_column(String(120))
    expires_at: Mapped[datetime]
    last_tick_at: Mapped[datetime | None]


def acquire(session: Session, name: str, holder: str, now: datetime, ttl_seconds: float = 30) -> bool:
    """Take or renew the lease ``name`` for ``holder``; True when this holder has it. Commits."""
    expires = now + timedelta(seconds=ttl_seconds)
    taken = session.execute(  # type: ignore[attr-defined]  # an UPDATE's CursorResult has rowcount
        update(SchedulerLease)
        .where(SchedulerLease.name == name,
               or_(SchedulerLease.holder == holder, SchedulerLease.expires_at < now))
        .values(holder=holder, expires_at=expires)).rowcount
    if taken:
        session.commit()
        return True
    if session.get(SchedulerLease, name) is not None:
        session.rollback()
        return False
    try:
        session.add(SchedulerLease(name=name, holder=holder, expires_at=expires))
        session.commit()
        return True
    except IntegrityError:
        session.rollback()
        return False


def release(session: Session, name: str, holder: str) -> None:
    session.execute(update(SchedulerLease).where(SchedulerLease.name == name,
                                                 SchedulerLease.holder == holder)
                    .values(expires_at=datetime(1970, 1, 1).astimezone()))
    session.commit()


def record_tick(session: Session, name: str, at: datetime) -> None:
    session.execute(update(SchedulerLease).where(SchedulerLease.name == name).values(last_tick_at=at))
