"""The durable connector outbox: jobs written with the step, run after commit, retried, escalated
to incidents.

A job is written in the same transaction as the workflow step that asks for it (so a step that
rolls back asks for nothing, and a committed step never loses its job). Workers claim due jobs by
compare-and-set on a claim token, run them outside any transaction, then record the outcome:

* done → the result is stored and, when the task waits, delivered into the instance (one step);
* ``NotReady`` → asked again after the operation's delay, not counted as a failed attempt;
* a transient failure → retried with exponential backoff, up to ``max_attempts``;
* a permanent failure, or the last attempt → an **incident** for administrators (retry button).

A worker that dies while running a job leaves it ``running`` with an expired lease. An idempotent
operation (the peer deduplicates by the job's key) is then simply run again; any other one becomes
an incident saying the outcome is unknown, so that a customer never gets a message twice because
of a crash — an administrator checks and retries.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    select,
    update,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, Session, mapped_column

from connectors.base import Call, ConnectorError, NotReady, PermanentError

from .db import Base
from .models import record_event

log = logging.getLogger("kefu.outbox")

QUEUED, RUNNING, DELIVERING, DONE, FAILED = "queued", "running", "delivering", "done", "failed"
# Incident kinds
EXHAUSTED, REFUSED, OUTCOME_UNKNOWN, UNDELIVERED, UNRECORDED = (
    "exhausted", "refused", "outcome_unknown", "undelivered", "unrecorded")
DELIVERY_TRIES = 10  # a result that cannot be handed to its case this often needs a person
# How long a peer's id identifies one call: beyond an SMS's validity period (48-72 h at SMSCs).
REFERENCE_WINDOW = timedelta(days=7)
# What storing one outcome can raise: the database's refusal, or the driver's own refusal of a
# value before it reaches the database (psycopg serialises JSON itself and raises TypeError).
_STORAGE_ERRORS = (SQLAlchemyError, TypeError, ValueError)


class ConnectorJob(Base):
    """One call of a connector operation, asked for by a step (or by the SLA scanner)."""

    __tablename__ = "connector_jobs"
    __table_args__ = (
        Index("ix_connector_jobs_due", "status", "next_run_at"),
        Index("ix_connector_jobs_instance", "instance_id"),
        Index("ix_connector_jobs_claim", "claim"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(80), unique=True)  # idempotency key, same every attempt
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("process_instances.id"))
    task_guid: Mapped[str | None] = mapped_column(String(36))
    element_id: Mapped[str | None] = mapped_column(String(80))
    operation: Mapped[str] = mapped_column(String(80))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result_var: Mapped[str | None] = mapped_column(String(80))
    wait: Mapped[bool] = mapped_column(Boolean, default=False)
    priority: Mapped[int] = mapped_column(Integer, default=0)  # higher runs first among due jobs
    status: Mapped[str] = mapped_column(String(16), default=QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=5)
    next_run_at: Mapped[datetime]
    claim: Mapped[str | None] = mapped_column(String(36))
    locked_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class Incident(Base):
    """A job that needs a person: it failed for good, or a crash left its outcome unknown."""

    __tablename__ = "incidents"
    __table_args__ = (Index("ix_incidents_open", "resolved_at", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("connector_jobs.id"), index=True)
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("process_instances.id"), index=True)
    element_id: Mapped[str | None] = mapped_column(String(80))
    operation: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(20))
    message: Mapped[str] = mapped_column(Text)
    opened_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(40))


class PeerReference(Base):
    """An id a peer gave a job's call (an SMSC message id, a PBX unique id, a billing order key), so
    that later reports from the peer (delivery receipts, call events) find the job and its case.

    A peer's ids are not unique over time: an SMSC that restarts numbers its messages from 1 again.
    So the same (kind, ref) may be stored many times, and a report goes to the newest one given
    within :data:`REFERENCE_WINDOW` (what a restarted peer reports on is what it was given since)."""

    __tablename__ = "connector_refs"
    __table_args__ = (Index("ix_connector_refs_ref", "kind", "ref", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    ref: Mapped[str] = mapped_column(String(80))
    job_id: Mapped[int] = mapped_column(ForeignKey("connector_jobs.id"), index=True)
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("process_instances.id"))
    state: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class InboundEvent(Base):
    """Something a peer sent us (a delivery receipt, a customer's SMS reply, a call event), stored
    before the peer is acknowledged and processed by the next tick: nothing received is lost when
    the product stops, and the receiving thread never waits for a workflow step."""

    __tablename__ = "connector_inbox"
    __table_args__ = (Index("ix_connector_inbox_pending", "processed_at", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    ref: Mapped[str | None] = mapped_column(String(80))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    received_at: Mapped[datetime]
    processed_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(200))
    instance_id: Mapped[int | None] = mapped_column(Integer)


@dataclass(frozen=True)
class JobView:
    """What a worker thread needs of a claimed job (no ORM object crosses threads)."""

    id: int
    key: str
    operation: str
    params: dict[str, Any]
    attempt: int
    instance_id: int | None


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


# -- writing jobs ------------------------------------------------------------------------------
def enqueue(session: Session, operation: str, params: dict[str, Any], *, key: str, now: datetime,
            instance_id: int | None = None, task_guid: str | None = None, element_id: str | None = None,
            result_var: str | None = None, wait: bool = False, max_attempts: int = 5,
            priority: int = 0) -> ConnectorJob:
    """Add a job to the session (it is written with the caller's transaction)."""
    job = ConnectorJob(key=key[:80], instance_id=instance_id, task_guid=task_guid, element_id=element_id,
                       operation=operation, params=params, result_var=result_var, wait=wait, priority=priority,
                       status=QUEUED, attempts=0, max_attempts=max_attempts, next_run_at=now,
                       created_at=now)
    session.add(job)
    return job


def job_key(instance_id: int, task_guid: str) -> str:
    """The idempotency key of a service task's job: one task run asks for exactly one job."""
    return f"kefu-{instance_id}-{task_guid}"


# -- running jobs ------------------------------------------------------------------------------
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
                 backoff: Backoff | None = None) -> None:
        self.operations = operations
        self.deliver = deliver
        self.threads = threads
        self.lease = lease
        self.backoff = backoff or Backoff()
        self._pool: ThreadPoolExecutor | None = None

    def run_due(self, session: Session, now: datetime, *, batch: int = 200,
                max_batches: int | None = None) -> RunReport:
        """Claim and run every job due by ``now`` (in batches); commits per unit of work."""
        report = RunReport()
        self.recover_stale(session, now)
        report.done += self.deliver_pending(session, now)
        batches = 0
        while max_batches is None or batches < max_batches:
            jobs = self.claim(session, now, batch)
            if not jobs:
                break
            batches += 1
            self.record(session, self.execute(jobs, now), now, report)
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
                   ConnectorJob.attempts, ConnectorJob.instance_id)
            .where(ConnectorJob.claim == token).order_by(ConnectorJob.id)).all()
        session.commit()
        return [JobView(*row) for row in rows]

    def execute(self, jobs: list[JobView], now: datetime) -> list[Outcome]:
        """Call the peers, concurrently (the connectors pipeline calls on their own links)."""
        if len(jobs) == 1 or self.threads <= 1:
            return [self._call(job, now) for job in jobs]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="kefu-job")
        return list(self._pool.map(lambda job: self._call(job, now), jobs))

    def _call(self, job: JobView, now: datetime) -> Outcome:
        operation = self.operations.get(job.operation)
        if operation is None:
            return Outcome(job, error=PermanentError(f"no installed connector offers '{job.operation}'"))
        call = Call(job_id=job.id, key=job.key, attempt=job.attempt, now=now, instance_id=job.instance_id)
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
        jobs = {j.id: j for j in session.scalars(
            select(ConnectorJob).where(ConnectorJob.id.in_([o.job.id for o in outcomes] or [-1])))}
        for outcome in outcomes:
            job = jobs.get(outcome.job.id)
            if job is None or job.status != RUNNING or job.attempts != outcome.job.attempt:
                continue  # re-claimed after its lease ran out: the newer run owns it
            if outcome.error is not None:
                self._settle(session, job, outcome, now, report)
                continue
            job.result, job.finished_at = outcome.result or {}, now
            job.claim, job.locked_until, job.last_error = None, None, None
            if job.wait and job.instance_id is not None:
                job.status, job.next_run_at = DELIVERING, now
            else:
                self._done(session, job, now)
                report.done += 1
        session.commit()

    def _record_failed(self, session: Session, outcome: Outcome, exc: Exception, now: datetime,
                       report: RunReport) -> None:
        """The outcome of one call cannot be stored: an incident that says what is known."""
        job = session.get(ConnectorJob, outcome.job.id)
        if job is None or job.status != RUNNING:
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

    def _done(self, session: Session, job: ConnectorJob, now: datetime) -> None:
        job.status = DONE
        refs = (job.result or {}).get("peer_refs")
        if isinstance(refs, dict) and refs.get("ids"):
            add_references(session, job, str(refs.get("kind", "peer")), refs["ids"], "submitted", now)
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
        """Jobs left running by a worker that died: run idempotent ones again, turn the rest into
        'outcome unknown' incidents (never a blind second call to a peer that cannot deduplicate)."""
        stale = list(session.scalars(select(ConnectorJob).where(ConnectorJob.status == RUNNING,
                                                                 ConnectorJob.locked_until < now)))
        for job in stale:
            operation = self.operations.get(job.operation)
            job.claim, job.locked_until = None, None
            if operation is not None and operation.idempotent:
                job.status, job.next_run_at = QUEUED, now
                record_event(session, "job_retry", at=now, instance_id=job.instance_id,
                             message=f"{job.operation}: worker stopped mid-call; running again (idempotent)",
                             data={"job_id": job.id, "attempt": job.attempts})
            else:
                open_incident(session, job, OUTCOME_UNKNOWN,
                              "the worker stopped while calling the peer: the call may or may not have "
                              "happened. Check with the peer before retrying.", now)
        session.commit()
        return len(stale)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def open_incident(session: Session, job: ConnectorJob, kind: str, message: str, now: datetime) -> Incident:
    """Park ``job`` as failed and open an incident for it."""
    job.status, job.finished_at, job.last_error = FAILED, now, message
    job.claim, job.locked_until = None, None
    incident = Incident(job_id=job.id, instance_id=job.instance_id, element_id=job.element_id,
                        operation=job.operation, kind=kind, message=message, opened_at=now)
    session.add(incident)
    record_event(session, "incident", at=now, instance_id=job.instance_id,
                 message=f"{job.operation}: {message}"[:500],
                 data={"job_id": job.id, "element_id": job.element_id, "kind": kind})
    log.warning("incident for job %s (%s): %s", job.id, job.operation, message)
    return incident


def retry_incident(session: Session, incident_id: int, *, actor: str, now: datetime) -> Incident:
    """Close an open incident and queue its job again from a fresh attempt count."""
    from .errors import Conflict, NotFound

    incident = session.get(Incident, incident_id)
    if incident is None:
        raise NotFound(f"incident {incident_id} not found")
    if incident.resolved_at is not None:
        raise Conflict("this incident is already resolved")
    job = session.get(ConnectorJob, incident.job_id)
    if job is None or job.status != FAILED:
        raise Conflict("the incident's job is not failed any more")
    incident.resolved_at, incident.resolved_by = now, actor
    # A result that could not be handed to its case is handed again; the peer is not called again.
    job.status = DELIVERING if incident.kind == UNDELIVERED else QUEUED
    job.attempts, job.next_run_at = 0, now
    if job.status == QUEUED:
        job.finished_at = None
    record_event(session, "incident_retried", at=now, instance_id=job.instance_id, actor=actor,
                 message=job.operation, data={"job_id": job.id, "incident_id": incident.id})
    return incident


# -- reading -----------------------------------------------------------------------------------
def open_incidents(session: Session, limit: int = 200) -> list[Incident]:
    return list(session.scalars(select(Incident).where(Incident.resolved_at.is_(None))
                                .order_by(Incident.id.desc()).limit(limit)))


def incident_elements(session: Session, instance_id: int) -> set[str]:
    """BPMN element ids of a case's open incidents (for highlighting its diagram)."""
    return {e for e in session.scalars(select(Incident.element_id).where(
        Incident.instance_id == instance_id, Incident.resolved_at.is_(None))) if e}


def jobs_of_instance(session: Session, instance_id: int) -> list[ConnectorJob]:
    return list(session.scalars(select(ConnectorJob).where(ConnectorJob.instance_id == instance_id)
                                .order_by(ConnectorJob.id)))


# -- peer references ---------------------------------------------------------------------------
def add_references(session: Session, job: ConnectorJob, kind: str, refs: Iterable[str], state: str,
                   now: datetime) -> None:
    for ref in refs:
        session.add(PeerReference(kind=kind, ref=str(ref)[:80], job_id=job.id, instance_id=job.instance_id,
                                  state=state, created_at=now, updated_at=now))


def update_reference(session: Session, kind: str, ref: str, state: str, now: datetime,
                     detail: dict[str, Any] | None = None, job_key: str | None = None) -> PeerReference | None:
    """A peer reported on one of its ids (e.g. a delivery receipt): store the state and put it on the
    case's history. When the peer's client knows which call was given the id (``job_key``, the
    job's idempotency key) the report goes to that call's reference — None while its outcome is not
    stored yet. Otherwise it belongs to the newest call the peer gave that id within
    :data:`REFERENCE_WINDOW`; unknown ids (another system's, or older) are ignored."""
    query = select(PeerReference).where(PeerReference.kind == kind, PeerReference.ref == ref)
    if job_key:
        query = query.join(ConnectorJob, ConnectorJob.id == PeerReference.job_id).where(ConnectorJob.key == job_key)
    else:
        query = query.where(PeerReference.created_at >= now - REFERENCE_WINDOW)
    row = session.scalars(query.order_by(PeerReference.id.desc()).limit(1)).first()
    if row is None:
        return None
    row.state, row.updated_at = state, now
    record_event(session, f"{kind}_{state}", at=now, instance_id=row.instance_id, message=ref,
                 data={"job_id": row.job_id, **(detail or {})})
    return row


# -- inbound -----------------------------------------------------------------------------------
def receive(session: Session, kind: str, payload: dict[str, Any], *, now: datetime,
            ref: str | None = None) -> InboundEvent:
    """Store what a peer sent (the caller commits before acknowledging the peer)."""
    event = InboundEvent(kind=kind, ref=ref, payload=payload, received_at=now)
    session.add(event)
    return event


def pending_inbound(session: Session, limit: int = 500) -> list[InboundEvent]:
    return list(session.scalars(select(InboundEvent).where(InboundEvent.processed_at.is_(None))
                                .order_by(InboundEvent.id).limit(limit)))


def recent_inbound(session: Session, kind: str, limit: int = 100) -> list[InboundEvent]:
    return list(session.scalars(select(InboundEvent).where(InboundEvent.kind == kind)
                                .order_by(InboundEvent.id.desc()).limit(limit)))


def _is_connector_signal(exc: Exception) -> bool:
    return isinstance(exc, ConnectorError | NotReady)


def _describe(error: Exception) -> str:
    text = str(error) or error.__class__.__name__
    return text if _is_connector_signal(error) else f"{error.__class__.__name__}: {text}"


def _brief(result: dict[str, Any]) -> dict[str, Any]:
    """The result as the history shows it (long values cut)."""
    return {k: (v if not isinstance(v, str) or len(v) <= 200 else v[:200] + "…")
            for k, v in list(result.items())[:20]}
