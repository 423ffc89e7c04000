"""Sign-in attempts: failures are recorded and throttled per account and per address, for the web
login and the API's token endpoint alike. A throttled account is refused even with the right
password until the window has passed, so guessing gains nothing by going on."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import Boolean, Index, Integer, String, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from .db import Base

log = logging.getLogger("kefu.sign_in")

WINDOW = timedelta(minutes=15)
PER_ACCOUNT = 5      # failures for one user name within the window
PER_ADDRESS = 20     # failures from one address within the window (any user names)


class LoginAttempt(Base):
    """One sign-in attempt (web form or token request)."""

    __tablename__ = "login_attempts"
    __table_args__ = (Index("ix_login_attempts_user", "username", "at"),
                      Index("ix_login_attempts_address", "address", "at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(40))
    address: Mapped[str] = mapped_column(String(64))
    ok: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[datetime]


def wait_before_trying(session: Session, username: str, address: str, now: datetime) -> timedelta | None:
    """How long this account or address must wait before another attempt (None: it may try now).
    Failures before the account's last success do not count against it."""
    since = now - WINDOW
    last_ok = session.scalar(select(func.max(LoginAttempt.at)).where(
        LoginAttempt.username == username, LoginAttempt.ok.is_(True), LoginAttempt.at >= since))
    waits = []
    for column, value, limit, start in ((LoginAttempt.username, username, PER_ACCOUNT, max(since, last_ok or since)),
                                        (LoginAttempt.address, address, PER_ADDRESS, since)):
        recent = list(session.scalars(select(LoginAttempt.at).where(
            column == value, LoginAttempt.ok.is_(False), LoginAttempt.at > start)
            .order_by(LoginAttempt.at.desc()).limit(limit)))
        if len(recent) >= limit:
            waits.append(_aware(recent[-1], now) + WINDOW - now)
    return max(waits) if waits else None


def record_attempt(session: Session, username: str, address: str, ok: bool, now: datetime) -> None:
    """Store the attempt (the caller commits); failures are logged for the administrators."""
    session.add(LoginAttempt(username=username[:40], address=address[:64], ok=ok, at=now))
    if not ok:
        log.warning("failed sign-in for %r from %s", username[:40], address[:64])


def _aware(value: datetime, now: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=now.tzinfo)
