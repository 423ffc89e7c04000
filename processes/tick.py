"""One tick of the clock: fire due BPMN timers, play the demo billing side (demo only), run due
connector jobs, settle what peers sent, scan SLA clocks (and text the supervisors of new
escalations), check the managers' threshold alert rules (texting the duty manager). Safe to run
concurrently (every step is guarded by the instance version, a job's claim or a clock's
compare-and-set; an alert by its unique rule and period)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from connectors.base import PermanentError, TransientError
from connectors.billing.simulator import BillingSimulator
from engine import worker
from engine.runtime import Engine
from slas import calendar_store
from slas.notifications import notify_supervisors
from slas.scanner import ScanResult, scan

from . import complaint_facts, file_exchange, statistics_files, threshold_alerts
from .dunning import Dunning
from .inbound import process_inbound
from .payment_reminders import PaymentReminders
from .roaming import Roaming

log = logging.getLogger("kefu.tick")

@dataclass
class TickReport:
    at: datetime
    timers_fired: int
    scan: ScanResult
    jobs: worker.RunReport = field(default_factory=worker.RunReport)
    inbound: int = 0
    billing_moved: int = 0  # service orders / change requests the demo billing simulator moved
    files: int = 0          # file exchanges moved on (sent, acknowledged, received)
    dunning: int = 0        # dunning cases started and payments delivered
    reminders: int = 0      # payment reminders (缴费提醒) queued
    roaming: int = 0        # roaming transfers moved on (cases started, receipts queued or delivered)
    alerts: int = 0         # threshold alerts raised (processes/threshold_alerts.py)

    @property
    def eventful(self) -> bool:
        return bool(self.timers_fired or self.scan.warnings or self.scan.escalations or self.jobs.total
                    or self.inbound or self.billing_moved or self.files or self.dunning or self.reminders
                    or self.roaming or self.alerts)

    def lines(self) -> list[str]:
        out = [(f"tick at {self.at.isoformat()}: {self.timers_fired} timer(s) fired, {self.jobs}, "
               f"{self.inbound} inbound message(s) settled, {self.scan}"
               + (f", demo billing moved {self.billing_moved} order(s)" if self.billing_moved else "")
               + (f", {self.files} file exchange(s) moved on" if self.files else "")
               + (f", dunning: {self.dunning} case(s) started or paid" if self.dunning else "")
               + (f", {self.reminders} payment reminder(s) queued" if self.reminders else "")
               + (f", {self.roaming} roaming transfer(s) moved on" if self.roaming else "")
               + (f", {self.alerts} threshold alert(s) raised" if self.alerts else ""))]
        for esc in self.scan.escalations:
            out.append(f"  escalation L{esc.level} → {esc.target}: instance {esc.instance_id} "
                       f"task {esc.task_id} '{esc.title}' due {esc.due_at.isoformat()}")
        return out


def tick(session: Session, engine: Engine, now: datetime, batch: int = 500, *,
         billing_simulator: BillingSimulator | None = None, ftp_ack_limit: timedelta = timedelta(hours=1),
         collect_files: bool = False, dunning: Dunning | None = None,
         reminders: PaymentReminders | None = None, roaming: Roaming | None = None) -> TickReport:
    """Run everything due by ``now``; commits per unit of work. ``billing_simulator`` (demo only,
    see web/demo_billing.py) executes billing's side before the jobs that wait on it run;
    ``dunning`` (the scheduler's) opens and continues dunning rounds and records payments;
    ``reminders`` (the scheduler's) goes on with the day's payment-reminder pass; ``roaming`` moves
    the roaming complaint exchange on (before the jobs, so receipts go out now, and after them)."""
    calendar_store.sync(session)  # calendars and hours the administrators changed (throttled)
    fired = 0
    while True:
        count = engine.fire_due_timers(session, now, limit=batch)
        fired += count
        if count < batch:
            break
    moved = _simulate_billing(billing_simulator, now)
    dunned = dunning.tick(session, engine, now) if dunning is not None else 0
    reminded = reminders.tick(session, now) if reminders is not None else 0
    roamed = roaming.advance(session, now) if roaming is not None else 0
    jobs = engine.run_jobs(session, now)
    roamed += roaming.advance(session, now) if roaming is not None else 0
    engine.index_unindexed_waits(session)  # cases from before the correlation index, once each
    inbound = process_inbound(session, engine, now)
    if collect_files:  # an exchange is configured: the national centre gets its statistics files
        statistics_files.file_due_statistics(session, now)
        session.commit()
    exchanged = file_exchange.advance(session, now, ftp_ack_limit, collect=collect_files)
    result = scan(session, now, batch=batch, on_escalated=complaint_facts.count_escalations)
    texts = notify_supervisors(session, result.escalations, now) if "sms.send" in engine.operations else 0
    alerts = threshold_alerts.evaluate(session, now, text="sms.send" in engine.operations)
    texts += sum(alert.texted for alert in alerts)
    session.commit()
    if texts:  # the escalation texts go out now rather than next tick
        more = engine.run_jobs(session, now)
        jobs.done, jobs.retried, jobs.incidents = (jobs.done + more.done, jobs.retried + more.retried,
                                                   jobs.incidents + more.incidents)
    return TickReport(now, fired, result, jobs, inbound, moved, exchanged, dunned, reminded, roamed,
                      alerts=len(alerts))


def _simulate_billing(simulator: BillingSimulator | None, now: datetime) -> int:
    if simulator is None:
        return 0
    try:
        return simulator.run_once(now)
    except (TransientError, PermanentError) as exc:  # the demo billing side must not stop a tick
        log.warning("demo billing simulator: %s", exc)
        return 0
