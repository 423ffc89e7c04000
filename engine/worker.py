"""The outbox worker: claims due connector jobs, calls the peers outside any transaction, records
the outcomes (retry with backoff, wait on ``NotReady``, incident), and hands results to the cases
that wait for them. See ``engine.outbox`` for the life of a job."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from connectors.base import Call, ConnectorError, NotReady, PeerAnswer, PermanentError, TransientError

from .job_marks import ACCEPTED, JobMarks, stop_here
from .models import record_event
from .outbox import (
    DELIVERING,
    DELIVERY_TRIES,
    DONE,
    EXHAUSTED,
    FAILED,
    OUTCOME_UNKNOWN,
    QUEUED,
    REFUSED,
    RUNNING,
    SUBMITTING,
    UNDELIVERED,
    UNRECORDED,
    ConnectorJob,
    Incident,
    open_incident,
)
from .peer_events import PeerReference, add_references

log = logging.getLogger("kefu.outbox")

_HELD = (RUNNING, SUBMITTING)  # a worker's claim is on the job

# What storing one outcome can raise: the database's refusal, or the driver's own refusal of a
# value before it reaches the database (psycopg serialises JSON itself and raises TypeError).
_STORAGE_ERRORS = (SQLAlchemyError, TypeError, ValueError)


@dataclass(frozen=True)
class JobView:
    """What a worker thread needs of a claimed job (no ORM object crosses threads)."""

    id: int
    key: str
    operation: str
    params: dict[str, Any]
    attempt: int
    instance_id: int | None
    claim: str = ""  # the claim token this run holds the job by


@dataclass
class Outcome:
    job: JobView
    result: dict[str, Any] | None = None
    error: Exception | None = None


@dataclass
class RunReport:
    done: int = 0
    retried: int = 0
    waiting: int = 0
    incidents: int = 0

    @property
    def total(self) -> int:
        return self.done + self.retried + self.waiting + self.incidents

    def __str__(self) -> str:
        return (f"{self.done} job(s) done, {self.waiting} waiting on the peer, {self.retried} to retry, "
                f"{self.incidents} incident(s)")


class Backoff:
    """Exponential backoff: ``base`` × 2^(attempt-1), capped."""

    def __init__(self, base: timedelta = timedelta(seconds=10), cap: timedelta = timedelta(hours=1)) -> None:
        self.base, self.cap = base, cap

    def delay(self, attempt: int) -> timedelta:
        return min(self.cap, self.base * (2 ** max(0, attempt - 1)))


class Worker:
    """Runs due connector jobs. ``deliver(session, job, now)`` resumes a waiting instance with the
    job's result (the engine's); ``operations`` maps names to connector operations."""

    def __init__(self, operations: dict[str, Any], deliver: Callable[[Session, ConnectorJob, datetime], None],
                 *, threads: int = 16, lease: timedelta = timedelta(minutes=5),
                 backoff: Backoff | None = None, claim_size: int | None = None) -> None:
        self.operations = operations
        self.deliver = deliver
        self.threads = threads
        # Small claims: a crash strands at most this many jobs until their lease runs out, and only
        # those already handed to their peer (marked ``submitting``) can have an unknown outcome.
        self.claim_size = claim_size or 4 * max(1, threads)
        self.lease = lease
        self.backoff = backoff or Backoff()
        self._pool: ThreadPoolExecutor | None = None

    def run_due(self, session: Session, now: datetime, *, batch: int = 200,
                max_batches: int | None = None) -> RunReport:
        """Claim and run every job due by ``now`` (in batches); commits per unit of work."""
        report = RunReport()
        self.recover_stale(session, now)
        report.done += self.deliver_pending(session, now)
        batches, batch = 0, max(1, min(batch, self.claim_size))
        while max_batches is None or batches < max_batches:
            jobs = self.claim(session, now, batch)
            if not jobs:
                break
            batches += 1
            stop_here("claimed")
            self.record(session, self.execute(jobs, now, bind=session.get_bind()), now, report)
            if len(jobs) < batch:
                break
        return report

    def claim(self, session: Session, now: datetime, limit: int) -> list[JobView]:
        """Mark up to ``limit`` due jobs as running under a fresh claim token (compare-and-set)."""
        ids = list(session.scalars(
            select(ConnectorJob.id).where(ConnectorJob.status == QUEUED, ConnectorJob.next_run_at <= now)
            .order_by(ConnectorJob.priority.desc(), ConnectorJob.next_run_at, ConnectorJob.id).limit(limit)))
        if not ids:
            session.commit()
            return []
        token = uuid.uuid4().hex
        session.execute(update(ConnectorJob)
                        .where(ConnectorJob.id.in_(ids), ConnectorJob.status == QUEUED)
                        .values(status=RUNNING, claim=token, locked_until=now + self.lease,
                                attempts=ConnectorJob.attempts + 1)
                        .execution_options(synchronize_session=False))
        rows = session.execute(
            select(ConnectorJob.id, ConnectorJob.key, ConnectorJob.operation, ConnectorJob.params,
                   ConnectorJob.attempts, ConnectorJob.instance_id, ConnectorJob.claim)
            .where(ConnectorJob.claim == token).order_by(ConnectorJob.id)).all()
        session.commit()
        return [JobView(*row) for row in rows]

    def submitting(self, session: Session, jobs: list[JobView], now: datetime) -> list[JobView]:
        """Mark claimed jobs ``submitting`` at once and commit (``execute`` with ``bind`` marks each
        just before its call). Returns the jobs still held by this claim."""
        if not jobs:
            return jobs
        ids, claims = [job.id for job in jobs], {job.claim for job in jobs}
        session.execute(update(ConnectorJob)
                        .where(ConnectorJob.id.in_(ids), ConnectorJob.claim.in_(claims),
                               ConnectorJob.status == RUNNING)
                        .values(status=SUBMITTING).execution_options(synchronize_session=False))
        held = set(session.scalars(select(ConnectorJob.id).where(
            ConnectorJob.id.in_(ids), ConnectorJob.claim.in_(claims), ConnectorJob.status == SUBMITTING)))
        session.commit()
        return [job for job in jobs if job.id in held]

    def execute(self, jobs: list[JobView], now: datetime, *, bind: Any = None) -> list[Outcome]:
        """Call the peers, concurrently (the connectors pipeline calls on their own links). With
        ``bind`` (the database), each job is marked ``submitting`` (committed) just before its
        call, and the ids a peer gives a call are stored as it gives them (``engine.job_marks``)."""
        marks = None if bind is None else JobMarks(bind)
        if len(jobs) == 1 or self.threads <= 1:
            outcomes = [self._call(job, now, marks) for job in jobs]
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="kefu-job")
            outcomes = list(self._pool.map(lambda job: self._call(job, now, marks), jobs))
        if marks is not None:
            marks.flush()
        stop_here("called")
        return outcomes

    def _call(self, job: JobView, now: datetime, marks: JobMarks | None = None) -> Outcome:
        operation = self.operations.get(job.operation)
        if operation is None:
            return Outcome(job, error=PermanentError(f"no installed connector offers '{job.operation}'"))
        late = marks is not None and operation.marks_handover
        if marks is not None and not late and not marks.submitting(job):
            return Outcome(job, error=TransientError("not called: the job could not be marked as submitting"))
        handing_over = None
        if marks is not None and late:
            def handing_over() -> None:  # the operation's request is about to leave: mark it now
                if not marks.submitting(job):
                    raise TransientError("not called: the job could not be marked as submitting")
        accepted = None if marks is None else (lambda kind, ids: marks.note(job, kind, ids, now))
        call = Call(job_id=job.id, key=job.key, attempt=job.attempt, now=now, instance_id=job.instance_id,
                    accepted=accepted, handing_over=handing_over)
        try:
            result = operation.run(dict(job.params), call)
        except Exception as exc:  # every failure is recorded on the job
            if not _is_connector_signal(exc):
                log.exception("job %s (%s) raised", job.id, job.operation)
            return Outcome(job, error=exc)
        if not isinstance(result, dict):
            return Outcome(job, error=PermanentError(f"'{job.operation}' returned {type(result).__name__}, "
                                                     "not a result object"))
        return Outcome(job, result=result)

    def record(self, session: Session, outcomes: Iterable[Outcome], now: datetime, report: RunReport) -> None:
        """Store the outcomes of one batch in one transaction. A result for a waiting task is kept
        as ``delivering``: handing it to the instance is a separate step (see
        :meth:`deliver_pending`), so a busy case never makes the peer be called twice."""
        outcomes = list(outcomes)
        try:
            self._record_batch(session, outcomes, now, report)
        except _STORAGE_ERRORS:
            # One outcome that cannot be stored must not take the others with it (their peers were
            # called: left running they would become "outcome unknown"). Store them one by one.
            session.rollback()
            log.exception("recording a batch of %d outcomes failed; recording them one by one", len(outcomes))
            for outcome in outcomes:
                try:
                    self._record_batch(session, [outcome], now, report)
                except _STORAGE_ERRORS as exc:
                    session.rollback()
                    self._record_failed(session, outcome, exc, now, report)
        report.done += self.deliver_pending(session, now)

    def _record_batch(self, session: Session, outcomes: list[Outcome], now: datetime,
                      report: RunReport) -> None:
        # One SELECT for the batch (not one per job, each flushing the previous job's changes).
        ids = [o.job.id for o in outcomes] or [-1]
        jobs = {j.id: j for j in session.scalars(select(ConnectorJob).where(ConnectorJob.id.in_(ids)))}
        noted: dict[int, list[PeerReference]] = {}
        for ref in session.scalars(select(PeerReference).where(PeerReference.job_id.in_(ids))):
            noted.setdefault(ref.job_id, []).append(ref)
        for outcome in outcomes:
            job = jobs.get(outcome.job.id)
            if job is not None and outcome.error is None and _late(session, job, outcome, now):
                pass  # the lease ran out mid-call and the job was parked as unknown: now it is known
            elif job is None or job.status not in _HELD or job.attempts != outcome.job.attempt:
                continue  # re-claimed after its lease ran out: the newer run owns it
            if outcome.error is not None:
                self._settle(session, job, outcome, now, report)
                continue
            job.result, job.finished_at = outcome.result or {}, now
            job.claim, job.locked_until, job.last_error = None, None, None
            if job.wait and job.instance_id is not None:
                job.status, job.next_run_at = DELIVERING, now
            else:
                self._done(session, job, now, noted.get(job.id, []))
                report.done += 1
        session.commit()

    def _record_failed(self, session: Session, outcome: Outcome, exc: Exception, now: datetime,
                       report: RunReport) -> None:
        """The outcome of one call cannot be stored: an incident that says what is known."""
        job = session.get(ConnectorJob, outcome.job.id)
        if job is None or job.status not in _HELD:
            return
        called = "the peer answered" if outcome.error is None else f"the peer failed ({_describe(outcome.error)})"
        open_incident(session, job, UNRECORDED,
                      f"{called}, but storing the outcome failed: {_describe(exc)}"[:2000], now)
        session.commit()
        report.incidents += 1

    def deliver_pending(self, session: Session, now: datetime, limit: int = 500) -> int:
        """Hand stored results to their waiting instances, one committed step each. A delivery that
        fails (the case is being changed at that moment, say) is tried again shortly; one that keeps
        failing becomes an incident — the peer is never called again for it."""
        delivered = 0
        ids = list(session.scalars(select(ConnectorJob.id).where(
            ConnectorJob.status == DELIVERING, ConnectorJob.next_run_at <= now)
            .order_by(ConnectorJob.next_run_at, ConnectorJob.id).limit(limit)))
        session.commit()
        for job_id in ids:
            job = session.get(ConnectorJob, job_id)
            if job is None or job.status != DELIVERING:
                session.rollback()
                continue
            try:
                self.deliver(session, job, now)
                self._done(session, job, now)
                session.commit()
                delivered += 1
            except Exception as exc:  # noqa: BLE001 - recorded on the job, retried
                session.rollback()
                job = session.get(ConnectorJob, job_id)
                if job is None:
                    continue
                job.attempts += 1
                job.last_error = f"delivering the result failed: {_describe(exc)}"
                if job.attempts >= job.max_attempts + DELIVERY_TRIES:
                    open_incident(session, job, UNDELIVERED, job.last_error, now)
                else:
                    job.next_run_at = now + timedelta(seconds=5)
                session.commit()
        return delivered

    def _done(self, session: Session, job: ConnectorJob, now: datetime,
              noted: list[PeerReference] | None = None) -> None:
        job.status = DONE
        refs = (job.result or {}).get("peer_refs")
        if isinstance(refs, dict) and refs.get("ids"):
            kind = str(refs.get("kind", "peer"))
            if noted is None:
                noted = list(session.scalars(select(PeerReference).where(PeerReference.job_id == job.id)))
            # Ids noted when the peer gave them keep their row (a receipt may already be on it).
            known = {r.ref: r for r in noted if r.kind == kind}
            for ref in known.values():
                if ref.state == ACCEPTED:
                    ref.state, ref.updated_at = "submitted", now
            add_references(session, job, kind, [i for i in refs["ids"] if str(i)[:80] not in known],
                           "submitted", now)
        record_event(session, "job_done", at=now, instance_id=job.instance_id, message=job.operation,
                     data={"job_id": job.id, "element_id": job.element_id, "attempts": job.attempts,
                           "result": _brief(job.result or {})})

    def _settle(self, session: Session, job: ConnectorJob, outcome: Outcome, now: datetime,
                report: RunReport) -> None:
        error = outcome.error
        job.claim, job.locked_until = None, None
        if isinstance(error, NotReady):
            job.status, job.attempts = QUEUED, job.attempts - 1
            job.next_run_at = now + error.delay
            report.waiting += 1
            return
        assert error is not None  # _settle is only called for failed outcomes
        message = _describe(error)
        job.last_error = message
        retry = error.retry if isinstance(error, ConnectorError) else True
        if retry and job.attempts < job.max_attempts:
            job.status = QUEUED
            job.next_run_at = now + self.backoff.delay(job.attempts)
            record_event(session, "job_retry", at=now, instance_id=job.instance_id,
                         message=f"{job.operation}: {message}"[:500],
                         data={"job_id": job.id, "attempt": job.attempts, "next_run_at": job.next_run_at.isoformat()})
            report.retried += 1
            return
        open_incident(session, job, EXHAUSTED if retry else REFUSED, message, now)
        report.incidents += 1

    def recover_stale(self, session: Session, now: datetime) -> int:
        """Jobs left by a worker that died. Claimed but never handed to the peer (``running``): queued
        again, nothing was sent. Handed to the peer (``submitting``): an idempotent operation runs
        again; any other becomes an 'outcome unknown' incident that says what the peer confirmed
        (never a blind second call to a peer that cannot deduplicate)."""
        stale = list(session.scalars(select(ConnectorJob).where(ConnectorJob.status.in_(_HELD),
                                                                 ConnectorJob.locked_until < now)))
        for job in stale:
            operation = self.operations.get(job.operation)
            job.claim, job.locked_until = None, None
            if job.status == RUNNING:
                job.status, job.next_run_at, job.attempts = QUEUED, now, max(0, job.attempts - 1)
                record_event(session, "job_retry", at=now, instance_id=job.instance_id,
                             message=f"{job.operation}: worker stopped before calling the peer; queued again",
                             data={"job_id": job.id, "attempt": job.attempts})
            elif operation is not None and operation.idempotent:
                job.status, job.next_run_at = QUEUED, now
                record_event(session, "job_retry", at=now, instance_id=job.instance_id,
                             message=f"{job.operation}: worker stopped mid-call; running again (idempotent)",
                             data={"job_id": job.id, "attempt": job.attempts})
            else:
                askable = operation is not None and operation.query is not None
                open_incident(session, job, OUTCOME_UNKNOWN, _unknown_message(session, job, askable), now)
        session.commit()
        return len(stale)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def ask_peer(session: Session, operations: dict[str, Any], incident_id: int, *, actor: str,
             now: datetime) -> PeerAnswer:
    """Ask the peer what became of an 'outcome unknown' incident's call (e.g. SMPP query_sm with the
    ids it accepted) and note the answer on the case's history; the caller commits."""
    from .errors import Conflict, NotFound

    incident = session.get(Incident, incident_id)
    job = None if incident is None else session.get(ConnectorJob, incident.job_id)
    if incident is None or job is None:
        raise NotFound(f"incident {incident_id} not found")
    operation = operations.get(job.operation)
    if incident.kind != OUTCOME_UNKNOWN or operation is None or operation.query is None:
        raise Conflict("the peer of this incident cannot be asked")
    own = list(session.execute(select(PeerReference.id, PeerReference.kind, PeerReference.ref)
                               .where(PeerReference.job_id == job.id).order_by(PeerReference.id)))
    answer: PeerAnswer = operation.query(dict(job.params or {}), [r.ref for r in own],
                                         _reused(session, job.id, own))
    record_event(session, "peer_query", at=now, instance_id=job.instance_id, actor=actor,
                 message=answer.summary_zh[:500],
                 data={"job_id": job.id, "incident_id": incident.id, "has": answer.has})
    return answer


def _reused(session: Session, job_id: int, own: list[Any]) -> frozenset[str]:
    """Those of a call's peer ids that the peer has given a later call since (it restarted and
    numbers from 1 again): what it answers about such an id may concern the later message."""
    if not own:
        return frozenset()
    return frozenset(session.scalars(select(PeerReference.ref).where(
        PeerReference.kind == own[0].kind, PeerReference.ref.in_([r.ref for r in own]),
        PeerReference.id > min(r.id for r in own), PeerReference.job_id != job_id)))


def _late(session: Session, job: ConnectorJob, outcome: Outcome, now: datetime) -> bool:
    """A call that outlived its lease answered after another worker parked its job as 'outcome
    unknown' (and nobody retried it since): close that incident — the outcome is known."""
    if job.status != FAILED or job.attempts != outcome.job.attempt:
        return False
    incident = session.scalars(select(Incident).where(
        Incident.job_id == job.id, Incident.kind == OUTCOME_UNKNOWN, Incident.resolved_at.is_(None))).first()
    if incident is None:
        return False
    incident.resolved_at, incident.resolved_by = now, "kefu"
    record_event(session, "incident_confirmed", at=now, instance_id=job.instance_id, message=job.operation,
                 data={"job_id": job.id, "incident_id": incident.id, "late_answer": True})
    return True


def _unknown_message(session: Session, job: ConnectorJob, askable: bool) -> str:
    ids = list(session.scalars(select(PeerReference.ref).where(PeerReference.job_id == job.id)
                               .order_by(PeerReference.id)))
    said = (f"The peer had accepted id(s) {', '.join(ids)[:300]} before the stop." if ids else
            "The peer had confirmed nothing before the stop.")
    advice = ("Ask the peer (incident page) before retrying." if askable else
              "The peer cannot be asked afterwards: find out whether it happened before retrying.")
    return f"the worker stopped while calling the peer: the call may or may not have happened. {said} {advice}"


def _is_connector_signal(exc: Exception) -> bool:
    return isinstance(exc, ConnectorError | NotReady)


def _describe(error: Exception) -> str:
    text = str(error) or error.__class__.__name__
    return text if _is_connector_signal(error) else f"{error.__class__.__name__}: {text}"


def _brief(result: dict[str, Any]) -> dict[str, Any]:
    """The result as the history shows it (long values cut)."""
    return {k: (v if not isinstance(v, str) or len(v) <= 200 else v[:200] + "…")
            for k, v in list(result.items())[:20]}
