"""Payment reminders (缴费提醒, seed 000 §4.1.2): one SMS per threshold crossing, never a daily repeat.

Once per Beijing day, within the reminder hours, the tick walks billing's subscriptions in keyset
pages (``BillingGateway.credit_page``: one statement per page, never a read per subscriber) and
texts, through the outbox (``sms.send``):

* a postpaid subscription whose arrears + issued-but-not-due bills + unbilled usage, less its
  deposit (预存款), reached a threshold of its credit limit (``KEFU_REMINDER_THRESHOLDS``, e.g. 80 and 100 percent) — the
  highest threshold reached, when it is above the highest already texted in this billing cycle;
* a prepaid subscription whose balance fell below ``KEFU_PREPAID_FLOOR_FEN``.

``payment_reminder_marks`` remembers, per subscription, the highest threshold texted in the cycle
(prepaid: that the floor was texted). A subscription that falls back (it paid, topped up, was
given a higher limit) has its mark lowered or dropped, so the next crossing texts again; a new
billing cycle starts from nothing. Only subscriptions that stand above a threshold have a mark.
``payment_reminders`` keeps what was texted; ``payment_reminder_runs`` one row per day with the
pass's cursor, so a pass over a million subscriptions is spread over ticks and resumes after a
restart. A page is one transaction, and its cursor moves by compare-and-set: two schedulers never
text the same page twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Date, Index, Integer, String, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from connectors.base import PermanentError, TransientError
from engine import outbox
from engine.clock import LOCAL_TZ
from engine.db import Base

from .outbound_calls import CallingHours

log = logging.getLogger("kefu.reminders")

CREDIT, PREPAID = "credit", "prepaid"
TEMPLATES = {CREDIT: "payment_reminder", PREPAID: "low_balance"}
SMS_PRIORITY = -1  # bulk texts: behind the supervisors' escalation texts and the cases' own


@dataclass(frozen=True)
class ReminderSettings:
    """KEFU_REMINDER_THRESHOLDS, KEFU_PREPAID_FLOOR_FEN, KEFU_REMINDER_HOURS and the page sizes."""

    hours: CallingHours
    thresholds: tuple[int, ...] = (80, 100)  # percent of the credit limit, ascending
    prepaid_floor_fen: int = 1000
    page: int = 5000                         # subscriptions read per statement (and per transaction)
    pages_per_tick: int = 20                 # a tick does at most this much of the day's pass

    @staticmethod
    def parse_thresholds(text: str) -> tuple[int, ...]:
        """``"80,100"`` → (80, 100); ValueError unless 1–4 distinct whole percentages in 1–1000."""
        try:
            values = sorted({int(part) for part in text.replace(" ", "").split(",") if part})
        except ValueError:
            raise ValueError(f"reminder thresholds '{text}' must be whole percentages, e.g. 80,100") from None
        if not 1 <= len(values) <= 4 or values[0] < 1 or values[-1] > 1000:
            raise ValueError(f"reminder thresholds '{text}': 1 to 4 percentages between 1 and 1000")
        return tuple(values)


class ReminderRun(Base):
    """One day's pass over the subscriptions: where it stands (``cursor``) and what it did."""

    __tablename__ = "payment_reminder_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[date] = mapped_column(Date, unique=True)         # Beijing date
    started_at: Mapped[datetime]
    cursor: Mapped[int] = mapped_column(BigInteger, default=0)   # last subscription id read
    checked: Mapped[int] = mapped_column(Integer, default=0)     # subscriptions read
    texted: Mapped[int] = mapped_column(Integer, default=0)      # reminders queued
    finished_at: Mapped[datetime | None]


class ReminderMark(Base):
    """The highest threshold texted to a subscription in a billing cycle (only while it holds)."""

    __tablename__ = "payment_reminder_marks"

    subscription_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(8))     # credit | prepaid
    cycle: Mapped[str] = mapped_column(String(7))    # billing month YYYY-MM (credit); "" (prepaid)
    level: Mapped[int] = mapped_column(Integer)      # credit: threshold percent; prepaid: 1
    updated_at: Mapped[datetime]


class PaymentReminder(Base):
    """A reminder texted: to whom, why, with which figures, and the outbox job that sends it."""

    __tablename__ = "payment_reminders"
    __table_args__ = (Index("ix_payment_reminders_subscription", "subscription_id", "texted_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subscription_id: Mapped[int] = mapped_column(BigInteger)  # billing's kf_subscriptions.id
    phone: Mapped[str] = mapped_column(String(20))
    kind: Mapped[str] = mapped_column(String(8))              # credit | prepaid
    cycle: Mapped[str] = mapped_column(String(7))
    level: Mapped[int] = mapped_column(Integer)               # threshold percent; prepaid: 1
    amount_fen: Mapped[int] = mapped_column(BigInteger)       # used (credit) or balance (prepaid)
    limit_fen: Mapped[int] = mapped_column(BigInteger)        # credit limit, or the prepaid floor
    job_key: Mapped[str] = mapped_column(String(80))
    texted_at: Mapped[datetime]


def yuan(fen: int) -> str:
    sign, fen = ("-" if fen < 0 else ""), abs(fen)
    return f"{sign}{fen // 100}.{fen % 100:02d}"


@dataclass(frozen=True)
class Standing:
    """One subscription as a page of ``credit_page`` gives it."""

    subscription_id: int
    phone: str
    prepaid: bool
    credit_limit_fen: int
    balance_fen: int
    used_fen: int

    @property
    def net_used_fen(self) -> int:
        """What a postpaid subscription has used of its credit: arrears, bills not yet due and
        unbilled usage, less its deposit (预存款, ``balance_fen``), which pays them first."""
        return max(0, self.used_fen - max(0, self.balance_fen))


class PaymentReminders:
    """The daily pass over the billing gateway (``connectors.billing.gateway.BillingGateway``)."""

    def __init__(self, gateway: Any, settings: ReminderSettings) -> None:
        self.gateway = gateway
        self.settings = settings

    def level(self, s: Standing) -> int:
        """The highest threshold ``s`` stands at (credit), 1 below the floor (prepaid), else 0."""
        if s.prepaid:
            return 1 if s.balance_fen < self.settings.prepaid_floor_fen else 0
        used = s.net_used_fen
        reached = [t for t in self.settings.thresholds if used * 100 >= t * s.credit_limit_fen]
        return reached[-1] if reached else 0

    # -- the tick ---------------------------------------------------------------------------------
    def tick(self, session: Session, now: datetime) -> int:
        """Go on with today's pass (started at the first tick within the reminder hours), at most
        ``pages_per_tick`` pages. Commits per page; returns the reminders queued."""
        if not self.settings.hours.window(now)["open"]:
            return 0
        run = self._todays_run(session, now)
        if run is None or run.finished_at is not None:
            return 0
        texted = 0
        try:
            for _ in range(self.settings.pages_per_tick):
                queued, finished = self.run_page(session, run, now)
                texted += queued
                if finished:
                    break
        except (TransientError, PermanentError) as exc:  # billing down: the next tick goes on
            session.rollback()
            log.warning("payment reminders: reading billing failed: %s", exc)
        return texted

    def run_day(self, session: Session, now: datetime) -> ReminderRun | None:
        """The whole of today's pass at once (benchmarks, the CLI); None outside the hours."""
        if not self.settings.hours.window(now)["open"]:
            return None
        run = self._todays_run(session, now)
        while run is not None and run.finished_at is None:
            _queued, finished = self.run_page(session, run, now)
            if finished:
                break
        return run

    def _todays_run(self, session: Session, now: datetime) -> ReminderRun | None:
        day = now.astimezone(LOCAL_TZ).date()
        run = session.scalar(select(ReminderRun).where(ReminderRun.day == day))
        if run is not None:
            return run
        session.add(ReminderRun(day=day, started_at=now, cursor=0, checked=0, texted=0))
        try:
            session.commit()
        except IntegrityError:  # another scheduler started it at the same moment
            session.rollback()
        return session.scalar(select(ReminderRun).where(ReminderRun.day == day))

    # -- one page ---------------------------------------------------------------------------------
    def run_page(self, session: Session, run: ReminderRun, now: datetime) -> tuple[int, bool]:
        """Read the next page of subscriptions after the run's cursor, text the crossings, move
        the marks and the cursor: one transaction. Returns (reminders queued, pass finished)."""
        day = run.day
        size = self.settings.page
        page = [Standing(*row) for row in self.gateway.credit_page(run.cursor, size, day)]
        finished = len(page) < size
        after, upto = run.cursor, (page[-1].subscription_id if page else run.cursor)
        span = select(ReminderMark).where(ReminderMark.subscription_id > after)
        if not finished:
            span = span.where(ReminderMark.subscription_id <= upto)
        marks = {m.subscription_id: m for m in session.scalars(span)}
        cycle = f"{day.year:04d}-{day.month:02d}"
        texts: list[tuple[Standing, str, int]] = []
        drop: list[int] = []
        for s in page:
            mark = marks.pop(s.subscription_id, None)
            kind, mark_cycle = (PREPAID, "") if s.prepaid else (CREDIT, cycle)
            held = mark.level if mark is not None and (mark.kind, mark.cycle) == (kind, mark_cycle) else 0
            level = self.level(s)
            if level > held:
                texts.append((s, kind, level))
                if mark is None:
                    session.add(ReminderMark(subscription_id=s.subscription_id, kind=kind, cycle=mark_cycle,
                                             level=level, updated_at=now))
                else:
                    mark.kind, mark.cycle, mark.level, mark.updated_at = kind, mark_cycle, level, now
            elif mark is not None and level == 0:
                drop.append(s.subscription_id)  # fell back below every threshold: the next crossing texts
            elif mark is not None and level < held:
                mark.level, mark.updated_at = level, now
        drop.extend(marks)  # marked but no longer listed: closed, suspended, no longer prepaid/limited
        for start in range(0, len(drop), 500):
            session.execute(delete(ReminderMark).where(ReminderMark.subscription_id.in_(drop[start:start + 500]))
                            .execution_options(synchronize_session=False))
        for s, kind, level in texts:
            self._text(session, s, kind, level, cycle, day, now)
        moved = session.execute(
            update(ReminderRun).where(ReminderRun.id == run.id, ReminderRun.cursor == after)
            .values(cursor=upto, checked=ReminderRun.checked + len(page), texted=ReminderRun.texted + len(texts),
                    finished_at=now if finished else None)
            .execution_options(synchronize_session=False)).rowcount
        if moved != 1:  # another scheduler did this page meanwhile
            session.rollback()
            return 0, True
        session.commit()
        session.refresh(run)
        return len(texts), finished

    def _text(self, session: Session, s: Standing, kind: str, level: int, cycle: str, day: date,
              now: datetime) -> None:
        key = f"payrem-{s.subscription_id}-{day:%Y%m%d}"
        if kind == CREDIT:
            amount, limit = s.net_used_fen, s.credit_limit_fen
            context: dict[str, Any] = {"phone": s.phone, "used": yuan(amount), "credit_limit": yuan(limit),
                                       "percent": level, "as_of": f"{day.month}月{day.day}日"}
        else:
            amount, limit = s.balance_fen, self.settings.prepaid_floor_fen
            context = {"phone": s.phone, "balance": yuan(amount), "floor": yuan(limit),
                       "as_of": f"{day.month}月{day.day}日"}
        outbox.enqueue(session, "sms.send", {"to": s.phone, "template": TEMPLATES[kind], "context": context},
                       key=key, now=now, priority=SMS_PRIORITY)
        session.add(PaymentReminder(subscription_id=s.subscription_id, phone=s.phone, kind=kind, cycle=cycle,
                                    level=level, amount_fen=amount, limit_fen=limit, job_key=key, texted_at=now))


def reminders_of(session: Session, subscription_id: int, limit: int = 20) -> list[PaymentReminder]:
    """The reminders texted to a subscription, newest first."""
    return list(session.scalars(select(PaymentReminder).where(PaymentReminder.subscription_id == subscription_id)
                                .order_by(PaymentReminder.texted_at.desc(), PaymentReminder.id.desc())
                                .limit(limit)))
