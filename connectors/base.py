"""The one small interface every connector offers: named operations with declared parameters."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

INLINE, OUTBOX = "inline", "outbox"


class ConnectorError(Exception):
    """A call failed; ``retry`` says whether trying again later may succeed (peer down, busy)."""

    retry = True


class TransientError(ConnectorError):
    """The peer is unreachable, busy or throttling: retry with backoff."""


class PermanentError(ConnectorError):
    """The request itself is wrong (bad parameters, refused): retrying the same will not help."""

    retry = False


class NotReady(Exception):  # a signal, not a failure
    """The operation is waiting on the peer (e.g. billing has not finished an order): ask again
    after ``delay`` without counting it as a failed attempt."""

    def __init__(self, delay: timedelta = timedelta(seconds=10), message: str = "") -> None:
        super().__init__(message or f"not ready, ask again in {delay.total_seconds():g}s")
        self.delay = delay


@dataclass(frozen=True)
class Call:
    """What an operation is told about the job it runs for."""

    job_id: int
    key: str          # idempotency key: the same for every attempt of one job
    attempt: int      # 1 for the first try
    now: datetime
    instance_id: int | None = None
    # The step's database session, for the product's own operations that run inline (mode inline)
    # and write with the step; None for jobs run by a worker.
    session: Any = None
    # ``accepted(kind, ids)``: tell the outbox, the moment the peer gives them, the ids it gave this
    # call (e.g. SMSC message ids), so that a crash before the outcome is stored still knows what
    # the peer accepted. None when nobody listens.
    accepted: Callable[[str, list[str]], None] | None = None
    # ``handing_over()``: for an operation with ``marks_handover``, called right before the request
    # leaves for the peer (after any wait for a link or a window slot); it records that the call
    # may now reach the peer, and raises ``TransientError`` when the call must not be made. None
    # when nobody listens.
    handing_over: Callable[[], None] | None = None


@dataclass(frozen=True)
class Operation:
    """A named operation a BPMN service task can call.

    ``run(params, call)`` returns a JSON-able dict (stored as the task's result variable) or raises
    ``ConnectorError`` / ``NotReady``. ``idempotent``: the peer deduplicates by ``call.key``, so a
    job interrupted mid-call may simply be run again. ``mode``: ``outbox`` (default) runs after the
    step commits, in a worker; ``inline`` runs inside the step (only for fast reads without side
    effects; a failure aborts the step with a clear message).
    """

    name: str
    title: str                                  # shown in the modeler (Chinese)
    run: Callable[[dict[str, Any], Call], dict[str, Any]]
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    idempotent: bool = False
    mode: str = OUTBOX
    description: str = ""
    # ``query(params, ids)``: ask the peer what became of a call whose outcome is unknown, given the
    # ids it accepted for it; returns a ``PeerAnswer``. None when the protocol cannot ask.
    # (params, ids the peer gave this call, those of them it has since given to a later call)
    query: Callable[[dict[str, Any], list[str], frozenset[str]], PeerAnswer] | None = None
    # The operation calls ``call.handing_over()`` itself, when its request really leaves (after its
    # client's queueing). Otherwise the worker marks the job handed over before ``run``: a crash
    # while it queued would make its outcome 'unknown' although nothing was sent.
    marks_handover: bool = False


@dataclass(frozen=True)
class PeerAnswer:
    """What a peer says about a call: ``has`` True (it has it), False (it has not), None (cannot
    tell); ``summary_zh`` says so in words for the administrator; ``result`` is the call's result
    to store when the administrator confirms it happened."""

    has: bool | None
    summary_zh: str
    result: dict[str, Any] = field(default_factory=dict)


@dataclass
class Registry:
    """The operations of the installed connectors, by name."""

    operations: dict[str, Operation] = field(default_factory=dict)
    closers: list[Callable[[], None]] = field(default_factory=list)

    def add(self, operations: Iterable[Operation], close: Callable[[], None] | None = None) -> None:
        for op in operations:
            if op.name in self.operations:
                raise ValueError(f"operation {op.name} is registered twice")
            self.operations[op.name] = op
        if close is not None:
            self.closers.append(close)

    def get(self, name: str) -> Operation | None:
        return self.operations.get(name)

    def close(self) -> None:
        for close in reversed(self.closers):
            close()


# -- waits on a peer ------------------------------------------------------------------------------
# A web request that asks billing for a customer's 360 view waits on billing's network and
# database, not on this machine's CPU. The production server admits only a few ordinary requests
# of a process at once (web/admission.py); a request that kept its slot through a peer's outage (up
# to its timeout) would stall every other agent of that process. So code that blocks on a peer
# runs inside peer_wait, and the admission limit registers a hook that gives the slot back for the
# wait and queues for one again afterwards. Without a hook (worker, scheduler, tests) it costs nothing.

_wait_hook: Callable[[], AbstractContextManager[object]] | None = None


def set_wait_hook(hook: Callable[[], AbstractContextManager[object]] | None) -> None:
    """Install (or with None remove) what every :func:`peer_wait` enters, one per process."""
    global _wait_hook
    _wait_hook = hook


@contextmanager
def peer_wait() -> Iterator[None]:
    """Around a blocking call to a peer; nested waits announce only once (the hook's concern)."""
    with _wait_hook() if _wait_hook is not None else nullcontext():
        yield
