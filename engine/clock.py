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
from zoneinfo import ZoneInfo

from SpiffWorkflow.bpmn.specs.event_definitions import timer as _spiff_timer

# The centre's local time: references (工单号) and the working-day calendar use it.
LOCAL_TZ = ZoneInfo("Asia/Shanghai")

_frozen: ContextVar[datetime | None] = ContextVar("kefu_frozen_now", default=None)


def utcnow() -> datetime:
    """The current instant in UTC, honouring :func:`frozen_at`."""
    return _frozen.get() or datetime.now(UTC)


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


_spiff_timer.datetime = _ClockedDatetime  # type: ignore[misc]
