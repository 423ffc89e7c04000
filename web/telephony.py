"""Calls and screen pops: what the PBX (or CTI middleware) tells us about agents' calls, and the
pop-ups an agent's open browser shows.

A call row is written when a call rings an agent (inbound) or when a callback dials (outbound);
cases started from a call are linked to it (``call_cases``). A screen pop is a row addressed to one
user; the agent's browser streams the rows newer than the last it saw, so a pop survives a page
reload and reaches the agent wherever the ringing was reported (any process).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.db import Base

INBOUND, OUTBOUND = "inbound", "outbound"


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
