"""gunicorn's threaded worker, with new connections shared out evenly among the worker processes.

Every process of gunicorn's ``gthread`` worker polls the one listening socket, and a kept-alive
connection stays with the process that accepted it. Which process accepts is a race, so agents
who connect at about the same time (a shift logging on, a load test's level) often land on one
process while another sits idle; a process runs Python on one core at most (the GIL), so two
agents on one process of a 2-core machine get half the machine, and the two are not rare.

Here each process publishes how many connections it holds in a small table of shared memory
(made by the master before it forks, one slot per process), and polls the listener only while
it holds at most ``SLACK`` more than the process holding fewest. A process held back looks again
every ``RECHECK_SECONDS``, so a connection never waits for long even when the tables of two
processes changed at once. Counts can still drift apart (connections closed on one process, two
processes accepting at the same instant): a process two or more ahead of the least-loaded one
answers its next request with ``Connection: close``, and the client reconnects to a process with
fewer. Each agent then costs each process about the same: the process count sets the
parallelism, not luck.
"""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

SLOTS = 128  # processes sharing out (beyond, a process accepts as plain gthread does)
FREE = -1  # a slot no live process holds
SLACK = 0  # connections a process may hold above the least-loaded one and still accept
RECHECK_SECONDS = 0.01
LET_GO_SECONDS = 0.1  # a process ahead lets at most one connection go per this

_table: Any = None  # multiprocessing.RawArray("q", SLOTS), made in the master


def _shared_table() -> Any:
    global _table
    if _table is None:
        _table = multiprocessing.RawArray("q", [FREE] * SLOTS)
    return _table


def pre_fork(server: Any, worker: Any) -> None:
    """gunicorn hook, in the master before it forks ``worker``: give it a free slot of the table."""
    table = _shared_table()
    taken = {getattr(w, "slot", None) for w in server.WORKERS.values()}
    worker.slot = next((i for i in range(SLOTS) if i not in taken), None)
    if worker.slot is not None:
        table[worker.slot] = 0


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn hook, in the master after a worker exited: its slot counts no more."""
    slot = getattr(worker, "slot", None)
    if slot is not None and _table is not None:
        _table[slot] = FREE


def may_accept(table: Any, slot: int, slack: int = SLACK) -> bool:
    """Whether the process of ``slot`` should take new connections: it holds at most ``slack``
    more than the live process holding fewest."""
    mine = table[slot]
    fewest = min((n for n in table if n != FREE), default=mine)
    return mine <= fewest + slack


class BalancedThreadWorker(ThreadWorker):
    """``gthread`` with the accept rule above (``worker_class`` in gunicorn.conf.py)."""

    slot: int | None = None
    _last_let_go = float("-inf")

    @property  # type: ignore[override]
    def nr_conns(self) -> int:
        return self._connections

    @nr_conns.setter
    def nr_conns(self, value: int) -> None:
        self._connections = value
        if self.slot is not None and _table is not None:
            _table[self.slot] = value
            # The run loop only re-enables accepting (set_accept_enabled below); stop as soon as
            # this process is ahead, or a burst of connections would all land here.
            if getattr(self, "_accepting", False) and self.poller is not None and not self._our_turn():
                super().set_accept_enabled(False)

    @property  # type: ignore[override]
    def max_keepalived(self) -> int:
        # gunicorn answers "Connection: close" when this is reached. A process two or more
        # connections ahead of the least-loaded one (a connection closed elsewhere, or two
        # processes that accepted at the same instant) lets the client go: its new connection
        # lands on a process with fewer. Balanced processes keep their connections.
        # One at a time: the count drops only once the main loop closed the last one let go.
        if (self.slot is not None and _table is not None and not may_accept(_table, self.slot, slack=1)
                and time.monotonic() - self._last_let_go >= LET_GO_SECONDS):
            self._last_let_go = time.monotonic()
            return 0
        return self._max_keepalived

    @max_keepalived.setter
    def max_keepalived(self, value: int) -> None:
        self._max_keepalived = value

    def _our_turn(self) -> bool:
        return self.slot is None or _table is None or may_accept(_table, self.slot)

    def set_accept_enabled(self, enabled: bool) -> None:
        super().set_accept_enabled(enabled and self._our_turn())

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        # Held back (not accepting though it could): look again soon, not after gunicorn's 1 s.
        held_back = not self._accepting and self.nr_conns < self.worker_connections and self.alive
        super().wait_for_and_dispatch_events(min(timeout, RECHECK_SECONDS) if held_back else timeout)
