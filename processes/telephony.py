"""Calls and screen pops: what the PBX (or CTI middleware) tells us about agents' calls, and the
pop-ups an agent's open browser shows.

A call row is written when a call rings an agent (inbound) or when a callback dials (outbound);
cases started from a call are linked to it (``call_cases``). A screen pop is a row addressed to one
user; the agent's browser streams the rows newer than the last it saw, so a pop survives a page
reload and reaches the agent wherever the ringing was reported (any process).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, UniqueConstraint, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from engine.clock import utcnow
from engine.db import Base
from engine.people import User
from engine.unit_of_work import Sessions, after_commit

log = logging.getLogger("kefu.calls")
INBOUND, OUTBOUND = "inbound", "outbound"
INBOUND_CALL = "inbound_call"   # ScreenPop.kind of a ringing call (also the 360 page's ``reason``)
LEVEL_LOOKUP_SECONDS = 0.3      # the pop does not wait longer for the caller's customer level


class Call(Base):
    """One telephone call of an agent: caller, extension, start, answer, end, recording."""

    __tablename__ = "calls"
    __table_args__ = (
        Index("ix_calls_number", "customer_number", "started_at"),
        Index("ix_calls_agent", "agent_id", "started_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[str] = mapped_column(String(80), unique=True)  # the PBX's Linkedid or CTI's id
    direction: Mapped[str] = mapped_column(String(10))
    customer_number: Mapped[str] = mapped_column(String(32))
    extension: Mapped[str | None] = mapped_column(String(16))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    source: Mapped[str] = mapped_column(String(10), default="ami")  # ami | api | callback
    started_at: Mapped[datetime]
    answered_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(20))  # answered | busy | no_answer | failed …
    hangup_cause: Mapped[str | None] = mapped_column(String(60))
    recording_ref: Mapped[str | None] = mapped_column(String(200))
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("process_instances.id"))  # a callback's


class CallCase(Base):
    """A case started (or worked) during a call."""

    __tablename__ = "call_cases"
    __table_args__ = (UniqueConstraint("call_id", "instance_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id"), index=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instances.id"), index=True)
    linked_at: Mapped[datetime]


class ScreenPop(Base):
    """Something to show at once in one user's browser (an inbound call, a task to work now)."""

    __tablename__ = "screen_pops"
    __table_args__ = (Index("ix_screen_pops_user", "user_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(20))  # inbound_call | task
    title: Mapped[str] = mapped_column(String(200))
    url: Mapped[str] = mapped_column(String(300))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id"))
    created_at: Mapped[datetime]


# -- screen pops -----------------------------------------------------------------------------------
class PopSignal:
    """Wakes this process's open pop streams when a transaction that added pops commits.

    A generation counter instead of a bare ``Condition.wait``: a stream reads the generation
    before it queries, so a commit between its query and its wait is never missed. Streams of
    other processes find the rows by polling the database (about once a second)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.generation = 0

    def notify(self) -> None:
        with self._cond:
            self.generation += 1
            self._cond.notify_all()

    def wait(self, seen: int, timeout: float) -> int:
        """Wait until the generation moves past ``seen`` (or ``timeout``); the current generation."""
        with self._cond:
            if self.generation == seen:
                self._cond.wait(timeout)
            return self.generation


pop_signal = PopSignal()


def push_pop(session: Session, *, user_id: int, kind: str, title: str, url: str, now: datetime,
             payload: dict | None = None, call_id: int | None = None) -> ScreenPop:
    """Add a screen pop for one user (the caller commits; the commit wakes the open streams)."""
    pop = ScreenPop(user_id=user_id, kind=kind, title=title[:200], url=url[:300], payload=payload or {},
                    call_id=call_id, created_at=now)
    session.add(pop)
    session.flush()
    after_commit(session, pop_signal.notify, key="screen_pops")
    return pop


def pops_after(session: Session, user_id: int, after_id: int, since: datetime | None = None,
               limit: int = 20) -> list[ScreenPop]:
    """The user's pops with an id above ``after_id`` (and not older than ``since``), oldest first."""
    query = select(ScreenPop).where(ScreenPop.user_id == user_id, ScreenPop.id > after_id)
    if since is not None:
        query = query.where(ScreenPop.created_at >= since)
    return list(session.scalars(query.order_by(ScreenPop.id).limit(limit)))


def last_pop_id(session: Session, user_id: int) -> int:
    last = session.scalar(select(ScreenPop.id).where(ScreenPop.user_id == user_id)
                          .order_by(ScreenPop.id.desc()).limit(1))
    return last or 0


def pop_json(pop: ScreenPop) -> dict[str, Any]:
    return {"id": pop.id, "kind": pop.kind, "title": pop.title, "url": pop.url, "call": pop.call_id,
            "payload": pop.payload or {}, "created_at": pop.created_at.isoformat()}


# -- calls -----------------------------------------------------------------------------------------
def agent_for_extension(session: Session, extension: str) -> User | None:
    """The active user with this extension (the first by id if several share it)."""
    return session.scalars(select(User).where(User.extension == extension, User.active)
                           .order_by(User.id).limit(1)).first()


def customer_url(phone: str, call: int | None = None, reason: str = INBOUND_CALL) -> str:
    """The caller's customer 360 page (a relative URL; the web's customers.view route)."""
    args: dict[str, Any] = {"reason": reason}
    if call is not None:
        args["call"] = call
    return f"/customers/{quote(phone, safe='')}?{urlencode(args)}"


def mask_caller(number: str) -> str:
    """``13800138000`` → ``138****8000`` (titles end up in logs and lists)."""
    if len(number) >= 11:
        return number[:3] + "****" + number[-4:]
    return number


_lookups = ThreadPoolExecutor(max_workers=2, thread_name_prefix="kefu-level")


def customer_level(gateway: Any, phone: str) -> dict[str, str] | None:
    """The caller's customer level from billing (a BillingGateway, or None when there is none),
    if it answers within a fraction of a second."""
    if gateway is None:
        return None

    def lookup() -> dict[str, str] | None:
        view = gateway.customer_360(phone, months=0, payments_limit=0, orders_limit=0)
        if not view:
            return None
        customer = view["customer"]
        return {"level": customer["level"], "level_label": customer["level_label"], "name": customer["name"]}

    future = _lookups.submit(lookup)
    try:
        return future.result(timeout=LEVEL_LOOKUP_SECONDS)
    except FutureTimeout:
        log.info("customer level of the caller not known in time; the pop goes without it")
    except Exception as exc:  # noqa: BLE001 - the pop matters more than the level
        log.info("customer level lookup failed: %s", exc)
    return None


def _upsert_call(session: Session, call_id: str, values: dict[str, Any]) -> tuple[Call, bool]:
    """The call with this PBX/CTI id, created with ``values`` if new; (call, created).

    Every process connected to the PBX sees the same events: the unique ``call_id`` lets only
    the first record the call (the others find it)."""
    call = session.scalar(select(Call).where(Call.call_id == call_id))
    if call is not None:
        return call, False
    try:
        with session.begin_nested():
            call = Call(call_id=call_id, **values)
            session.add(call)
    except IntegrityError:
        call = session.scalar(select(Call).where(Call.call_id == call_id))
        if call is None:
            raise
        return call, False
    return call, True


def record_inbound(session: Session, *, caller: str, extension: str, call_id: str,
                   now: datetime, source: str, agent: User | None = None,
                   recording_ref: str | None = None, level: dict[str, str] | None = None
                   ) -> tuple[Call, ScreenPop | None]:
    """Record an inbound call ringing ``extension`` and pop the caller's page on that agent's screen
    (once per call and agent: a repeated notice changes nothing). The caller commits."""
    agent = agent if agent is not None else agent_for_extension(session, extension)
    call, created = _upsert_call(session, call_id, {
        "direction": INBOUND, "customer_number": caller, "extension": extension,
        "agent_id": agent.id if agent else None, "source": source, "started_at": now,
        "recording_ref": recording_ref})
    if not created:
        if recording_ref and not call.recording_ref:
            call.recording_ref = recording_ref
        if agent is not None and call.answered_at is None and call.agent_id != agent.id:
            call.extension, call.agent_id = extension, agent.id  # rung on (queue, transfer)
    if agent is None:
        return call, None
    seen = session.scalar(select(ScreenPop.id).where(ScreenPop.call_id == call.id,
                                                     ScreenPop.user_id == agent.id).limit(1))
    if seen is not None:
        return call, None
    payload: dict[str, Any] = {"caller": caller, "extension": extension, "call_id": call_id}
    if level:
        payload.update(level)
    pop = push_pop(session, user_id=agent.id, kind=INBOUND_CALL, title=f"来电 {caller}",
                   url=customer_url(caller, call.id), now=now, payload=payload, call_id=call.id)
    return call, pop


def inbound_ringing(sessions: Sessions, billing: Any, *, caller: str, extension: str, call_id: str,
                    source: str) -> None:
    """A PBX event: ``caller`` rings ``extension`` (runs on the PBX worker thread)."""
    level = customer_level(billing, caller) if caller else None
    with sessions() as session:
        call, pop = record_inbound(session, caller=caller or "unknown", extension=extension,
                                   call_id=call_id, now=utcnow(), source=source, level=level)
        session.commit()
        if pop is None and call.agent_id is None:
            log.info("inbound call %s rings extension %s, which no active user has", call_id, extension)


OUTCOMES = {16: "answered", 17: "busy", 19: "no_answer", 18: "no_answer", 34: "congested", 1: "failed"}


def call_ended(sessions: Sessions, record: Any) -> None:
    """A PBX event: a call hung up (``connectors.pbx.CallRecord``); completes its row.

    Outbound calls that were answered are recorded too (or completed, when a callback wrote the
    row first with the originate's Uniqueid as ``call_id``); unanswered dials are left to the
    callback process, which records every attempt with its outcome."""
    with sessions() as session:
        if (record.direction == OUTBOUND and record.answered_at is None
                and session.scalar(select(Call.id).where(Call.call_id == record.call_id)) is None):
            return  # an unanswered dial: the callback process records its attempts itself
        agent = agent_for_extension(session, record.extension) if record.extension else None
        call, _created = _upsert_call(session, record.call_id, {
            "direction": record.direction, "customer_number": record.customer_number or "unknown",
            "extension": record.extension or None, "agent_id": agent.id if agent else None,
            "source": "ami", "started_at": record.started_at or utcnow()})
        call.answered_at = call.answered_at or record.answered_at
        call.ended_at = record.ended_at or utcnow()
        if call.answered_at is not None:
            call.outcome = "answered"
        elif record.direction == INBOUND:
            call.outcome = "abandoned" if record.cause in (None, 16, 127) else \
                OUTCOMES.get(record.cause or 0, "missed")
        else:
            call.outcome = OUTCOMES.get(record.cause or 0, "failed")
        if record.cause is not None:
            call.hangup_cause = f"{record.cause} {record.cause_txt}".strip()[:60]
        recording = getattr(record, "recording_ref", "")
        if recording and not call.recording_ref:
            call.recording_ref = recording[:200]
        session.commit()
