"""The durable connector outbox: jobs written with the step, run after commit, retried, escalated
to incidents.

A job is written in the same transaction as the workflow step that asks for it (so a step that
rolls back asks for nothing, and a committed step never loses its job). Workers claim due jobs by
compare-and-set on a claim token, run them outside any transaction, then record the outcome:

* done → the result is stored and, when the task waits, delivered into the instance (one step);
* ``NotReady`` → asked again after the operation's delay, not counted as a failed attempt;
* a transient failure → retried with exponential backoff, up to ``max_attempts``;
* a permanent failure, or the last attempt → an **incident** for administrators (retry button).

Workers claim small batches (``running``) and mark each job ``submitting`` in a committed write just
before calling its peer. A worker that dies leaves its jobs with an expired lease: those still
``running`` never reached the peer and are simply queued again. Of those ``submitting``, an
idempotent operation (the peer deduplicates by the job's key) is run again; any other one becomes
an incident saying the outcome is unknown, so that a customer never gets a message twice because
of a crash. The ids the peer gave during the call are stored as it gives them, and an operation
with a ``query`` asks the peer what became of them: the administrator then confirms the call
(``confirm_incident``) or retries it.

This module holds the jobs and incidents; ``engine.worker`` runs the jobs, ``engine.peer_events``
keeps what peers report back (their ids for our calls, receipts, replies).
"""

from __future__ import annotations

import logging
from datetime import datetime
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
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from . import appends
from .db import Base
from .models import record_event

log = logging.getLogger("kefu.outbox")

QUEUED, RUNNING, DELIVERING, DONE, FAILED = "queued", "running", "delivering", "done", "failed"
SUBMITTING = "submitting"  # claimed and handed to the peer: after a crash its outcome is unknown
CANCELLED = "cancelled"  # a queued job its owner no longer wants (e.g. a poll past its time limit)
# Incident kinds
EXHAUSTED, REFUSED, OUTCOME_UNKNOWN, UNDELIVERED, UNRECORDED = (
    "exhausted", "refused", "outcome_unknown", "undelivered", "unrecorded")
DELIVERY_TRIES = 10  # a result that cannot be handed to its case this often needs a person


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


# -- writing jobs ------------------------------------------------------------------------------
def enqueue(session: Session, operation: str, params: dict[str, Any], *, key: str, now: datetime,
            instance_id: int | None = None, task_guid: str | None = None, element_id: str | None = None,
            result_var: str | None = None, wait: bool = False, max_attempts: int = 5,
            priority: int = 0, batched: bool = False) -> ConnectorJob:
    """Add a job to the session (it is written with the caller's transaction). ``batched``: an
    engine step's job, written with the step's other new rows (engine/appends.py); the returned
    object is then not in the session."""
    job = ConnectorJob(key=key[:80], instance_id=instance_id, task_guid=task_guid, element_id=element_id,
                       operation=operation, params=params, result_var=result_var, wait=wait, priority=priority,
                       status=QUEUED, attempts=0, max_attempts=max_attempts, next_run_at=now,
                       created_at=now)
    if batched:
        appends.append_object(session, job)
    else:
        session.add(job)
    return job


def job_key(instance_id: int, task_guid: str) -> str:
    """The idempotency key of a service task's job: one task run asks for exactly one job."""
    return f"kefu-{instance_id}-{task_guid}"


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


def confirm_incident(session: Session, incident_id: int, *, actor: str, now: datetime,
                     result: dict[str, Any]) -> Incident:
    """Close an 'outcome unknown' incident the peer confirmed (it has the call): store ``result``
    as the job's and hand it to the case like any result — the peer is not called again."""
    from .errors import Conflict, NotFound

    incident = session.get(Incident, incident_id)
    if incident is None:
        raise NotFound(f"incident {incident_id} not found")
    if incident.resolved_at is not None:
        raise Conflict("this incident is already resolved")
    if incident.kind != OUTCOME_UNKNOWN:
        raise Conflict("only an incident whose outcome is unknown can be confirmed")
    job = session.get(ConnectorJob, incident.job_id)
    if job is None or job.status != FAILED:
        raise Conflict("the incident's job is not failed any more")
    incident.resolved_at, incident.resolved_by = now, actor
    job.result, job.last_error, job.finished_at = result, None, now
    job.status, job.next_run_at = DELIVERING, now  # the worker hands it over and marks it done
    record_event(session, "incident_confirmed", at=now, instance_id=job.instance_id, actor=actor,
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
