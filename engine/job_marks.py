"""What the worker's calling threads write while they call peers, in shared transactions (group
commit): each job's ``submitting`` mark, committed before its peer is called, and the ids a peer
gives a call the moment it gives them. One commit covers every thread that asked meanwhile, so
the marks cost a few transactions per batch, not one per job.

After a crash these rows say which jobs may have reached their peer (see ``engine.worker``)."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from .outbox import RUNNING, SUBMITTING, ConnectorJob
from .peer_events import PeerReference

log = logging.getLogger("kefu.outbox")
ACCEPTED = "accepted"  # a peer's id noted during the call, before the outcome is stored


class ClaimedJob(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def claim(self) -> str: ...
    @property
    def instance_id(self) -> int | None: ...


@dataclass
class _Mark:
    job: ClaimedJob
    done: threading.Event = field(default_factory=threading.Event)
    held: bool = False


class JobMarks:
    """Group-committed writes of one ``execute`` (thread-safe)."""

    def __init__(self, bind: Any) -> None:
        self.bind = bind
        self._lock = threading.Lock()
        self._marks: list[_Mark] = []
        self._notes: list[PeerReference] = []
        self._leading = False

    def submitting(self, job: ClaimedJob) -> bool:
        """Mark ``job`` submitting and wait for the commit; False when this claim no longer holds
        it (its lease ran out) or the mark could not be written — then the peer must not be called."""
        mark = _Mark(job)
        with self._lock:
            self._marks.append(mark)
        self._lead()
        mark.done.wait()
        return mark.held

    def note(self, job: ClaimedJob, kind: str, ids: Iterable[str], now: datetime) -> None:
        """Store the ids a peer gave ``job``'s call (best effort, not waited for: they go with the
        next group of marks, or with ``flush`` when the batch's calls are over)."""
        given = datetime.now(UTC)  # the host's clock, as the peer's reports are (PeerReference.given_at)
        rows = [PeerReference(kind=kind[:20], ref=str(ref)[:80], job_id=job.id, instance_id=job.instance_id,
                              state=ACCEPTED, created_at=now, updated_at=now, given_at=given) for ref in ids]
        with self._lock:
            self._notes.extend(rows)

    def flush(self) -> None:
        self._lead()

    def _lead(self) -> None:
        """Write what is pending unless another thread is writing (it takes ours in its next round)."""
        with self._lock:
            if self._leading:
                return
            self._leading = True
        while True:
            with self._lock:
                marks, notes = self._marks, self._notes
                self._marks, self._notes = [], []
                if not marks and not notes:
                    self._leading = False
                    return
            held: set[int] = set()
            try:
                held = self._write(marks, notes)
            except (SQLAlchemyError, TypeError, ValueError):
                log.warning("could not write %d submitting mark(s) and %d peer id(s)", len(marks), len(notes),
                            exc_info=True)
            finally:
                for mark in marks:
                    mark.held = mark.job.id in held
                    mark.done.set()
            if marks:
                stop_here("submitted")

    def _write(self, marks: list[_Mark], notes: list[PeerReference]) -> set[int]:
        held: set[int] = set()
        with Session(self.bind) as session:
            if marks:
                ids, claims = [m.job.id for m in marks], {m.job.claim for m in marks}
                session.execute(update(ConnectorJob)
                                .where(ConnectorJob.id.in_(ids), ConnectorJob.claim.in_(claims),
                                       ConnectorJob.status == RUNNING)
                                .values(status=SUBMITTING).execution_options(synchronize_session=False))
                held = set(session.scalars(select(ConnectorJob.id).where(
                    ConnectorJob.id.in_(ids), ConnectorJob.claim.in_(claims), ConnectorJob.status == SUBMITTING)))
            session.add_all(notes)
            session.commit()
        return held


def stop_here(point: str) -> None:
    """Crash tests stop the worker process here (``KEFU_CRASH_AT=<point>``); a no-op otherwise."""
    if os.environ.get("KEFU_CRASH_AT") == point:
        os.kill(os.getpid(), signal.SIGKILL)
