"""Admission control: at most K ordinary requests of one server process run at once.

A gunicorn worker process has many threads because each open agent page holds one for its
screen-pop stream (Server-Sent Events), but ordinary requests are CPU-bound Python: when a
dozen of them run at once in one process they take turns on the GIL, every database round trip
hands the GIL to another thread and waits to get it back, transactions stay open meanwhile, and
each request may cost more CPU than alone. With ``KEFU_API_CONCURRENCY`` = K > 0 each process lets
at most K ordinary requests run; the others wait for a slot (a blocked thread takes no GIL and no
CPU) first come, first served, and none fails. A slot is held while the request waits for the
database too, so K must cover that wait: when the database is slow or far (or starved of CPU,
as on a shared machine) a small K leaves the server idle. K = 2 by default: with the server's
processes holding equal shares of the connections (``web/gunicorn_worker.py``) it keeps the rate
flat beyond the cores where no limit lost a fifth (bench/README.md); ``bench/http_load.py
--concurrency 0,2,4`` compares limits on your machine, 0 turns it off. Streams
never take a slot: a request that asks for ``text/event-stream`` bypasses the limit, and a
response that turns out to be a stream (or a file handed to the server's file wrapper) gives its
slot back as soon as the view returned, before its body is sent. A request that waits on a peer
(billing's database, the object store: ``connectors.base.peer_wait``) gives its slot back for the
wait, so that a peer's outage (a wait up to its timeout) cannot stall a process's other agents.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from connectors.base import set_wait_hook

STREAM = "text/event-stream"
DEFAULT_CONCURRENCY = 2  # bench/README.md: with connections shared out evenly, 2 keeps the rate flat beyond the cores

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WsgiApp = Callable[[Environ, StartResponse], Iterable[bytes]]


def concurrency_from(value: str | None, default: int = DEFAULT_CONCURRENCY) -> int:
    """Parse ``KEFU_API_CONCURRENCY``: a whole number ≥ 0 (0: no limit); unset or empty: default."""
    if value is None or not value.strip():
        return default
    try:
        number = int(value.strip())
    except ValueError:
        raise ValueError(f"KEFU_API_CONCURRENCY must be a whole number (0: no limit), not {value!r}") from None
    if number < 0:
        raise ValueError(f"KEFU_API_CONCURRENCY must be 0 (no limit) or more, not {number}")
    return number


def configured_concurrency() -> int:
    return concurrency_from(os.environ.get("KEFU_API_CONCURRENCY"))


def wants_stream(environ: Environ) -> bool:
    """EventSource always sends ``Accept: text/event-stream``; nothing else does."""
    return STREAM in environ.get("HTTP_ACCEPT", "")


class FifoSlots:
    """``limit`` slots handed to waiters in arrival order. A freed slot goes straight to the
    longest waiter, so a request that just arrived never overtakes it (``threading.Semaphore``
    lets it, which stretches the slowest answers under load)."""

    def __init__(self, limit: int) -> None:
        self._lock = threading.Lock()
        self._free = limit
        self._queue: deque[threading.Lock] = deque()

    def acquire(self) -> None:
        with self._lock:
            if self._free and not self._queue:
                self._free -= 1
                return
            turn = threading.Lock()
            turn.acquire()
            self._queue.append(turn)
        turn.acquire()  # released by the holder that hands its slot over

    def release(self) -> None:
        with self._lock:
            if self._queue:
                self._queue.popleft().release()  # the slot passes on, never freed in between
            else:
                self._free += 1


class AdmissionLimit:
    """WSGI middleware: ``limit`` ordinary requests at a time in this process, streams apart.

    One instance per process (its slots are this process's); install it after the fork.
    ``running``/``waiting`` are read by tests and may be logged; they are approximate by design.
    """

    def __init__(self, app: WsgiApp, limit: int) -> None:
        if limit < 1:
            raise ValueError("an admission limit needs at least one slot")
        self.app = app
        self.limit = limit
        self._slots = FifoSlots(limit)
        self._count = threading.Lock()
        self.running = 0
        self.waiting = 0

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if wants_stream(environ):
            return self.app(environ, start_response)
        self._enter()
        streaming = False

        def noting(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            nonlocal streaming
            streaming = any(name.lower() == "content-type" and value.split(";")[0].strip().lower() == STREAM
                            for name, value in headers)
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        try:
            body = self.app(environ, noting)
        except BaseException:
            self._leave()
            raise
        wrapper = environ.get("wsgi.file_wrapper")
        if streaming or (isinstance(wrapper, type) and isinstance(body, wrapper)):
            self._leave()  # the body is a long wait or a file: it needs no slot (and keeps sendfile)
            return body
        return _Released(body, self._leave)

    def _enter(self) -> None:
        with self._count:
            self.waiting += 1
        self._slots.acquire()
        with self._count:
            self.waiting -= 1
            self.running += 1
        _holding.limit = self

    def _leave(self) -> None:
        _holding.limit = None
        with self._count:
            self.running -= 1
        self._slots.release()


_holding = threading.local()  # the limit whose slot this thread's request holds, if any


@contextmanager
def slot_given_back() -> Iterator[None]:
    """While this thread's request waits on a peer (``connectors.base.peer_wait``), its slot
    serves another request; afterwards it queues for one again like a new request."""
    limit: AdmissionLimit | None = getattr(_holding, "limit", None)
    if limit is None:
        yield
        return
    limit._leave()
    try:
        yield
    finally:
        limit._enter()


class _Released:
    """The response body; the slot is given back when the server closes it (PEP 3333), once."""

    def __init__(self, body: Iterable[bytes], release: Callable[[], None]) -> None:
        self._body = body
        self._release: Callable[[], None] | None = release

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._body)

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()


def limit_admission(app: Any, limit: int | None = None) -> int:
    """Wrap a Flask app's ``wsgi_app`` in this process; returns the limit (0: none installed)."""
    limit = configured_concurrency() if limit is None else limit
    if limit > 0:
        app.wsgi_app = AdmissionLimit(app.wsgi_app, limit)
        set_wait_hook(slot_given_back)
    return limit
