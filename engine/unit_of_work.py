"""What happens after a unit of work commits: the one mechanism for post-commit effects.

Some effects must follow a commit and never a rollback: publishing a stepped workflow into the
cache, waking the job worker because a step queued a text, waking the screen-pop streams. Code
inside a transaction asks for them with :func:`after_commit`; they run, in order, right after the
session's transaction commits, and are dropped if it rolls back. An effect that fails is logged
and does not affect the others (the commit has happened; effects are wake-ups and caches, never
data).

The listener is installed by the composition root (``web.create_app``, the test and benchmark
fixtures) with :func:`install` — never as a side effect of importing a module.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager

from sqlalchemy import event
from sqlalchemy.orm import Session

log = logging.getLogger("kefu.unit_of_work")
_EFFECTS = "kefu.after_commit"

Effect = Callable[[], None]
# Opens a unit of work of its own (a worker thread's, a PBX event's): ``with sessions() as s: …``.
# The caller commits; leaving the block rolls back what was not committed and closes the session.
Sessions = Callable[[], AbstractContextManager[Session]]


def after_commit(session: Session, effect: Effect, *, key: object | None = None) -> None:
    """Run ``effect`` once the session's current transaction commits. With ``key``, a later
    request with the same key replaces the earlier one (e.g. one cache entry per instance)."""
    effects: dict[object, Effect] = session.info.setdefault(_EFFECTS, {})
    effects[key if key is not None else object()] = effect


def pending(session: Session) -> int:
    """How many effects wait for the session's commit (for tests)."""
    return len(session.info.get(_EFFECTS, {}))


def install() -> None:
    """Run queued effects after every commit and drop them on rollback (idempotent)."""
    if not event.contains(Session, "after_commit", _committed):
        event.listen(Session, "after_commit", _committed)
        event.listen(Session, "after_rollback", _rolled_back)


def _committed(session: Session) -> None:
    for effect in session.info.pop(_EFFECTS, {}).values():
        try:
            effect()
        except Exception:  # the commit stands; a wake-up or cache fill may fail alone
            log.exception("an after-commit effect failed")


def _rolled_back(session: Session) -> None:
    session.info.pop(_EFFECTS, None)
