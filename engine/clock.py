"""The one injectable clock.

SpiffWorkflow's timer events read ``datetime.now(timezone.utc)`` themselves; we give its timer
module a ``datetime`` whose ``now`` follows :func:`frozen_at`, so that a tick "as of" a given time
fires exactly the timers due then. The override is per thread/context (a ContextVar), so web
requests running beside a tick see the real time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from SpiffWorkflow.bpmn.specs.event_definitions import timer as _spiff_timer

# The centre's local time: references (工单号) and the working-day calendar use it.
LOCAL_TZ = ZoneInfo("Asia/Shanghai")

_frozen: ContextVar[datetime | None] = ContextVar("kefu_frozen_now", default=None)


def utcnow() -> datetime:
    """The current instant in UTC, honouring :func:`frozen_at`."""
    return _frozen.get() or datetime.now(UTC)


def parse_instant(value: Any) -> datetime | None:
    """An ISO-8601 instant with a time zone from case data, else None (not a string, malformed,
    or naive: a naive time in a case's data is ambiguous, so it is not trusted)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


@contextlib.contextmanager
def frozen_at(now: datetime) -> Iterator[None]:
    """Make the engine (and Spiff's timers) see ``now`` as the current time in this context."""
    if now.tzinfo is None:
        raise ValueError("the clock needs an aware datetime")
    token = _frozen.set(now.astimezone(UTC))
    try:
        yield
    finally:
        _frozen.reset(token)


class _ClockedDatetime(datetime):
    @classmethod
    def now(cls, tz: tzinfo | None = None) -> datetime:  # type: ignore[override]
        frozen = _frozen.get()
        if frozen is None:
            return datetime.now(tz)
        return frozen.astimezone(tz) if tz else frozen.astimezone().replace(tzinfo=None)


_spiff_timer.datetime = _ClockedDatetime
