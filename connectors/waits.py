"""Waits on a peer (billing's database, an object store), announced to the process that hosts them.

A web request that asks billing for a customer's 360 view waits on billing's network and database,
not on this machine's CPU. The production server admits only a few ordinary requests of a process
at once (``web/admission.py``); a request that kept its slot through a peer's outage (up to its
timeout) would stall every other agent of that process. So code that blocks on a peer runs inside
:func:`peer_wait`, and the admission limit registers a hook that gives the slot back for the wait
and queues for one again afterwards. Without a hook (the worker, the scheduler, tests) it costs
nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

_hook: Callable[[], AbstractContextManager[object]] | None = None


def set_wait_hook(hook: Callable[[], AbstractContextManager[object]] | None) -> None:
    """Install (or with None remove) what every :func:`peer_wait` enters, one per process."""
    global _hook
    _hook = hook


@contextmanager
def peer_wait() -> Iterator[None]:
    """Around a blocking call to a peer; nested waits announce only once (the hook's concern)."""
    with _hook() if _hook is not None else nullcontext():
        yield
