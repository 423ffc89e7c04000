"""Dunning (欠费催缴, seed 003 ch.4 流程5): monthly rounds over billing's unpaid bills.

**One case per subscriber per round.** A round (``dunning_rounds``, one per billing month) lists
the subscribers whose bill of that month is unpaid (``dunning_entries``) and starts one small
``dunning`` case for each (``bpmn/dunning.bpmn``): IVR dunning calls within the dunning hours, a
second call after N days, one-way suspension and manual dunning (催费组) one month after the due
date, two-way suspension and the malicious-arrears file (恶意欠费档案) after two months. No case
loops over subscribers or months: SpiffWorkflow's task iterator stalls past ~300 passes of a
loop, so 100,000 subscribers are 100,000 small cases, started in batches, each with a handful of
steps; the month clock is timers at instants computed when the round opens (``one_month_at`` …).

Opening a round answers at once: the figures come from one aggregate query on billing, the first
batch of cases starts in the request, and the tick starts the rest (``Dunning.tick``), so a large
round never blocks a request. Payments are read from billing's ``kf_payments`` since a stored
watermark; a subscriber whose payments since the round opened cover the amount due is marked paid
and the ``dunning_paid`` message goes to the case waiting for it, found through the engine's
message correlation index (never a scan of workflows). A case busy at that moment (a call in
progress) gets it at a later tick.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    case,
    func,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from connectors.base import INLINE, Operation, PermanentError, TransientError
from connectors.base import Call as JobCall
from engine.clock import LOCAL_TZ
from engine.db import Base
from engine.errors import Conflict, KefuError, NotFound, ValidationFailed
from engine.models import RUNNING, ProcessInstance, record_event
from engine.runtime import Engine

from . import file_exchange
from .outbound_calls import CallingHours

log = logging.getLogger("kefu.dunning")

PROCESS_KEY = "dunning"
MESSAGE = "dunning_paid"
MONTH = re.compile(r"^([12]\d{3})-(0[1-9]|1[0-2])\Z", re.ASCII)  # years 1000-2999: no date overflows
OPENING, OPEN, CLOSED = "opening", "open", "closed"
ROUND_STATUS_ZH = {OPENING: "正在启动", OPEN: "催缴中", CLOSED: "已结束"}
# Stages of a subscriber in a round, in the order a case goes through them (the diagram sets them).
STAGES = {
    "pending": "待启动",
    "calling": "语音催缴",
    "waiting": "等待缴费",
    "recalled": "再次语音催缴",
    "overdue": "待满一个月",
    "one_way": "单向停机、人工催缴",
    "two_way": "双向停机、已报恶意欠费",
    "paid": "已缴费",
    "unrecovered": "未收回",
}
FINAL_STAGES = ("paid", "unrecovered")
PAYMENT_PAGE = 5000           # payments read per tick and round


class DunningRound(Base):
    """One month's dunning: the subscribers whose bill of ``month`` was unpaid when it opened."""

    __tablename__ = "dunning_rounds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    month: Mapped[str] = mapped_column(String(7), unique=True)  # billing month YYYY-MM
    status: Mapped[str] = mapped_column(String(16))              # opening | open | closed
    opened_at: Mapped[datetime]
    opened_by: Mapped[str | None] = mapped_column(String(40))    # None: the scheduler
    subscribers: Mapped[int] = mapped_column(Integer)
    amount_due: Mapped[int] = mapped_column(BigInteger)          # fen
    amount_recovered: Mapped[int] = mapped_column(BigInteger, default=0)  # fen
    bill_cursor: Mapped[int] = mapped_column(BigInteger, default=0)       # last bill id read (opening)
    payments_checked_at: Mapped[datetime | None]                 # watermark in kf_payments.paid_at
    closed_at: Mapped[datetime | None]


class DunningEntry(Base):
    """One subscriber of a round, with its case and where it stands."""

    __tablename__ = "dunning_entries"
    __table_args__ = (
        UniqueConstraint("round_id", "subscription_id"),
        Index("ix_dunning_entries_stage", "round_id", "stage"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("dunning_rounds.id"))
    bill_id: Mapped[int] = mapped_column(BigInteger)             # billing's kf_bills.id
    subscription_id: Mapped[int] = mapped_column(BigInteger)     # billing's kf_subscriptions.id
    phone: Mapped[str] = mapped_column(String(20))
    amount_due: Mapped[int] = mapped_column(BigInteger)          # fen
    due_date: Mapped[date] = mapped_column(Date)
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("process_instances.id"), index=True)
    stage: Mapped[str] = mapped_column(String(16), default="pending")
    paid_at: Mapped[datetime | None]
    amount_paid: Mapped[int] = mapped_column(BigInteger, default=0)  # fen, since the round opened


@dataclass(frozen=True)
class DunningSettings:
    """KEFU_DUNNING_HOURS, KEFU_DUNNING_DAY, KEFU_DUNNING_RECALL_DAYS and the batch sizes."""

    hours: CallingHours
    day: int = 5                   # the round of last month opens on this day of the month
    recall_days: int = 7           # no payment this many days after the call → called again
    max_attempts: int = 3          # busy / no answer: attempts per call round
    retry_delay: str = "PT30M"
    request_batch: int = 100       # cases started in the request that opens a round
    tick_batch: int = 500          # cases started per tick while a round is opening


# -- months and the overdue clock -----------------------------------------------------------------
def check_month(month: Any) -> str:
    """``YYYY-MM`` or ValidationFailed (422 with fields)."""
    if not isinstance(month, str) or not MONTH.match(month):
        raise ValidationFailed("month must be a billing month YYYY-MM", {"month": "required: YYYY-MM, e.g. 2026-10"})
    return month


def add_months(day: date, months: int) -> date:
    """``day`` moved by ``months`` calendar months (the 31st becomes the month's last day)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    for candidate in (day.day, 30, 29, 28):
        try:
            return date(year, month + 1, min(day.day, candidate))
        except ValueError:
            continue
    raise ValueError(f"cannot move {day} by {months} months")


def overdue_at(due: date, months: int) -> str:
    """The instant ``months`` months after the due date, 09:00 Beijing time (ISO, for a timer)."""
    return datetime.combine(add_months(due, months), time(9), LOCAL_TZ).isoformat()


def previous_month(now: datetime) -> str:
    local = now.astimezone(LOCAL_TZ).date().replace(day=1) - timedelta(days=1)
    return f"{local.year:04d}-{local.month:02d}"


# -- the service ----------------------------------------------------------------------------------
class Dunning:
    """Rounds over the billing gateway (``connectors.billing.gateway.BillingGateway``)."""

    def __init__(self, gateway: Any, settings: DunningSettings) -> None:
        self.gateway = gateway
        self.settings = settings

    # -- opening ----------------------------------------------------------------------------------
    def open_round(self, session: Session, engine: Engine, month: str, now: datetime, *,
                   opened_by: str | None = None) -> tuple[DunningRound, bool]:
        """The round of ``month``, opened now if it does not exist: ``(round, created)``. Commits.
        The first batch of cases starts here; the tick starts the rest."""
        month = check_month(month)
        existing = session.scalar(select(DunningRound).where(DunningRound.month == month))
        if existing is not None:
            return existing, False
        subscribers, amount = self.gateway.unpaid_bill_totals(month)
        row = DunningRound(month=month, status=OPENING, opened_at=now, opened_by=opened_by,
                           subscribers=subscribers, amount_due=amount, amount_recovered=0, bill_cursor=0,
                           payments_checked_at=now)
        session.add(row)
        try:
            session.flush()
        except IntegrityError:  # the same month opened at the same moment elsewhere
            session.rollback()
            return session.scalars(select(DunningRound).where(DunningRound.month == month)).one(), False
        record_event(session, "dunning_round_opened", at=now, actor=opened_by,
                     message=f"{month} 欠费催缴：{subscribers} 户，¥{amount // 100}.{amount % 100:02d}",
                     data={"round_id": row.id, "month": month, "subscribers": subscribers, "amount_due": amount})
        session.commit()
        self.continue_round(session, engine, row, now, self.settings.request_batch)
        return row, True

    def continue_round(self, session: Session, engine: Engine, row: DunningRound, now: datetime,
                       batch: int) -> int:
        """Start the cases of the next ``batch`` unpaid bills of a round being opened (one
        transaction); the round is open once every bill has its case. Returns the cases started."""
        bills = self.gateway.unpaid_bills(row.month, row.bill_cursor, batch)
        started = 0
        try:
            for bill in bills:
                started += self._start_entry(session, engine, row, bill, now)
                row.bill_cursor = bill["bill_id"]
            if len(bills) < batch:
                row.status = OPEN
            session.commit()
        except KefuError:
            session.rollback()  # e.g. the diagram is being redeployed: the next tick tries again
            log.exception("opening dunning round %s: batch after bill %s failed", row.month, row.bill_cursor)
            return 0
        return started

    def _start_entry(self, session: Session, engine: Engine, row: DunningRound, bill: dict[str, Any],
                     now: datetime) -> int:
        if session.scalar(select(DunningEntry.id).where(DunningEntry.round_id == row.id,
                                                        DunningEntry.subscription_id == bill["subscription_id"])):
            return 0  # a second bill of the same subscriber and month (billing's rule says one)
        due = date.fromisoformat(bill["due_date"])
        entry = DunningEntry(round_id=row.id, bill_id=bill["bill_id"], subscription_id=bill["subscription_id"],
                             phone=bill["phone"], amount_due=bill["amount_due_fen"], due_date=due,
                             stage="pending", amount_paid=0)
        session.add(entry)
        session.flush()
        s = self.settings
        data = {"customer_phone": entry.phone, "title": f"欠费催缴 {entry.phone}（{row.month}）",
                "bill_month": row.month, "amount_due": entry.amount_due, "due_date": due.isoformat(),
                "one_month_at": overdue_at(due, 1), "two_months_at": overdue_at(due, 2),
                "final_at": overdue_at(due, 3), "recall_days": s.recall_days, "max_attempts": s.max_attempts,
                "retry_delay": s.retry_delay, "dunning_entry": entry.id, "dunning_round": row.id}
        instance = engine.start(session, PROCESS_KEY, data, actor=None, now=now)
        entry.instance_id = instance.id
        return 1

    # -- the tick ---------------------------------------------------------------------------------
    def tick(self, session: Session, engine: Engine, now: datetime) -> int:
        """Open last month's round on the dunning day, go on opening rounds, record payments.
        Returns cases started plus payments delivered."""
        done = 0
        local = now.astimezone(LOCAL_TZ)
        if local.day >= self.settings.day:
            month = previous_month(now)
            if session.scalar(select(DunningRound.id).where(DunningRound.month == month)) is None:
                try:
                    self.open_round(session, engine, month, now)
                except (TransientError, PermanentError) as exc:
                    session.rollback()
                    log.warning("opening the dunning round %s: %s", month, exc)
        for row in list(session.scalars(select(DunningRound).where(DunningRound.status == OPENING))):
            try:
                done += self.continue_round(session, engine, row, now, self.settings.tick_batch)
            except (TransientError, PermanentError) as exc:
                session.rollback()
                log.warning("opening the dunning round %s: %s", row.month, exc)
        try:
            done += self.record_payments(session, engine, now)
        except (TransientError, PermanentError) as exc:
            session.rollback()
            log.warning("reading payments for dunning: %s", exc)
        return done

    # -- payments ---------------------------------------------------------------------------------
    def record_payments(self, session: Session, engine: Engine, now: datetime) -> int:
        """Read billing's payments since each active round's watermark; mark the subscribers whose
        payments since the round opened cover the amount due, and deliver ``dunning_paid`` into
        their cases. Commits; returns the messages delivered."""
        rounds = list(session.scalars(select(DunningRound).where(DunningRound.status.in_((OPENING, OPEN)))))
        for row in rounds:
            since = row.payments_checked_at or row.opened_at
            paid = self.gateway.payments_since(since, PAYMENT_PAGE)
            if paid:
                self._apply(session, row, {p["subscription_id"] for p in paid}, now)
                row.payments_checked_at = max(since, max(p["paid_at"] for p in paid))
            session.commit()
        delivered = self._deliver_pending(session, engine, [r.id for r in rounds], now)
        for row in rounds:
            self._settle(session, row, now)
        session.commit()
        return delivered

    def _apply(self, session: Session, row: DunningRound, subscription_ids: set[int], now: datetime) -> None:
        ids = sorted(subscription_ids)
        entries: list[DunningEntry] = []
        for start in range(0, len(ids), 500):
            entries += session.scalars(select(DunningEntry).where(
                DunningEntry.round_id == row.id, DunningEntry.subscription_id.in_(ids[start:start + 500]),
                DunningEntry.paid_at.is_(None)))
        if not entries:
            return
        totals = self.gateway.payment_totals([e.subscription_id for e in entries], row.opened_at)
        for entry in entries:
            entry.amount_paid = totals.get(entry.subscription_id, 0)
            if entry.amount_paid >= entry.amount_due:
                entry.paid_at = now

    def _deliver_pending(self, session: Session, engine: Engine, round_ids: list[int], now: datetime) -> int:
        if not round_ids:
            return 0
        pending = list(session.scalars(select(DunningEntry).where(
            DunningEntry.round_id.in_(round_ids), DunningEntry.stage.not_in(FINAL_STAGES),
            DunningEntry.paid_at.is_not(None)).order_by(DunningEntry.instance_id.desc()).limit(1000)))
        delivered = 0
        for entry in pending:
            instance = session.get(ProcessInstance, entry.instance_id) if entry.instance_id else None
            if instance is None or instance.status not in (RUNNING, "suspended"):
                entry.stage = "paid"  # the case ended (or never started): nothing waits any more
                session.commit()
                continue
            waiting = engine.waiting_for_message(session, MESSAGE, entry.phone)
            if waiting is None or waiting.id != entry.instance_id:
                continue  # busy (a call or an order in flight): delivered at a later tick
            payload = {"amount_fen": entry.amount_paid, "paid_at": (entry.paid_at or now).isoformat()}
            try:
                engine.deliver_message(session, entry.instance_id, MESSAGE, payload, now)
                session.commit()
                delivered += 1
            except (Conflict, NotFound):
                session.rollback()
            except KefuError:
                session.rollback()
                log.exception("delivering the payment of %s to case %s failed", entry.phone, entry.instance_id)
        return delivered

    def _settle(self, session: Session, row: DunningRound, now: datetime) -> None:
        """The round's recovered amount; closed once every subscriber's case has finished."""
        recovered = session.scalar(select(func.coalesce(func.sum(case(
            (DunningEntry.amount_paid > DunningEntry.amount_due, DunningEntry.amount_due),
            else_=DunningEntry.amount_paid)), 0)).where(DunningEntry.round_id == row.id))
        row.amount_recovered = int(recovered or 0)
        if row.status == OPEN and session.scalar(select(DunningEntry.id).where(
                DunningEntry.round_id == row.id, DunningEntry.stage.not_in(FINAL_STAGES)).limit(1)) is None:
            row.status, row.closed_at = CLOSED, now


# -- reading ----------------------------------------------------------------------------------------
def stage_counts(session: Session, row: DunningRound) -> dict[str, int]:
    """Subscribers per stage (every stage, zeros included); bills not yet read count as pending."""
    counts = dict.fromkeys(STAGES, 0)
    listed = 0
    for stage, count in session.execute(select(DunningEntry.stage, func.count()).where(
            DunningEntry.round_id == row.id).group_by(DunningEntry.stage)):
        counts[stage] = counts.get(stage, 0) + count
        listed += count
    counts["pending"] += max(0, row.subscribers - listed) if row.status == OPENING else 0
    return counts


def round_summary(session: Session, row: DunningRound) -> dict[str, Any]:
    """The contract's shape: ``{id, month, status, subscribers, amount_due, amount_recovered,
    stages}`` (amounts in integer fen)."""
    return {"id": row.id, "month": row.month, "status": row.status, "subscribers": row.subscribers,
            "amount_due": row.amount_due, "amount_recovered": row.amount_recovered,
            "stages": stage_counts(session, row)}


def rounds(session: Session, limit: int = 36) -> list[DunningRound]:
    return list(session.scalars(select(DunningRound).order_by(DunningRound.month.desc()).limit(limit)))


# -- the operations the diagram names ------------------------------------------------------------------
def operations(hours: CallingHours) -> list[Operation]:
    """``dunning.window`` (the dunning hours), ``dunning.stage`` (where the subscriber stands),
    ``dunning.arrears_file`` (the malicious-arrears file through the file exchange)."""
    return [
        Operation("dunning.window", "催缴时段检查", lambda params, call: hours.window(call.now), mode=INLINE,
                  description="Whether dunning calls may be made now (KEFU_DUNNING_HOURS, Beijing time): "
                              "{open, opens_at (ISO instant, for a timeDate timer)}."),
        Operation("dunning.stage", "记录催缴阶段", op_stage, required=("stage",), optional=("entry",), mode=INLINE,
                  description=f"Records the subscriber's stage in the round's list: one of {', '.join(STAGES)}."),
        Operation("dunning.arrears_file", "上报恶意欠费档案", op_arrears_file, required=("name", "content"),
                  mode=INLINE,
                  description="Queues the malicious-arrears file for the network management centre through "
                              "the file exchange (an ftp.upload job, sent mark, success mark, re-upload): "
                              "{exchange_id, name, sha256}."),
    ]


def _step_session(call: JobCall) -> Session:
    if call.session is None:
        raise PermanentError("this operation runs inside a step only (mode inline)")
    return call.session


def op_stage(params: dict[str, Any], call: JobCall) -> dict[str, Any]:
    """``dunning.stage``: the case's entry (by ``entry`` id, else by case) moves to ``stage``."""
    stage = str(params.get("stage") or "")
    if stage not in STAGES:
        raise PermanentError(f"unknown dunning stage {stage!r}")
    session = _step_session(call)
    entry_id = params.get("entry")
    where = (DunningEntry.id == int(entry_id)) if entry_id else (DunningEntry.instance_id == call.instance_id)
    updated = session.execute(update(DunningEntry).where(where).values(stage=stage)
                              .execution_options(synchronize_session=False)).rowcount
    return {"stage": stage, "updated": int(updated or 0)}


def op_arrears_file(params: dict[str, Any], call: JobCall) -> dict[str, Any]:
    """``dunning.arrears_file``: the file goes up through the file exchange (processes.file_exchange)."""
    session = _step_session(call)
    row = file_exchange.send_file(session, str(params["name"]), "malicious_arrears", str(params["content"]),
                                  call.now, instance_id=call.instance_id)
    return {"exchange_id": row.id, "name": row.name, "sha256": row.sha256}
