"""Facts of the other services for the statistics (业务受理统计, 回叫/回访统计): one denormalised
row per case of business acceptance and of outbound callbacks, written in the step by a listener
from the case's data (never by loading a workflow), and read by one indexed GROUP BY — the same
machinery as the complaint statistics (processes/complaint_facts.py).

Every figure counts the cases *started* in the period (a cohort, Beijing days).

Business acceptance (``business_acceptance``), by request type (业务类型, known once the request
is taken; refused and unidentified callers have none):

* **received** 受理量 — callers whose acceptance case started;
* **identified** 身份核验通过 — the service password was verified; **identification_failed**
  身份核验失败 — the case ended without it (three wrong passwords);
* **refused_arrears** 欠费拒绝受理 / **refused_blacklist** 黑名单拒绝受理 — billing's standing check
  said no for arrears / for the blacklist (at least once: a customer who pays and is rechecked
  still counts as refused once);
* **done** 办理成功 / **rejected** 计费系统拒绝 — billing executed the order / refused it;
* **closed** 已结束 — the case has finished.

Callbacks and return visits (``outbound_callback``), by kind (遇忙回叫, 投诉回复, 客户回访):

* **received** 请求量; **reached** 接通 — a call was answered; **unreached** 未接通 — the case
  closed after its last attempt without an answer; **resolved** 已解决 / **follow_up** 需跟进 —
  the agent's result of a callback; **satisfied** / **unsatisfied** — the customer's verdict on a
  return visit (满意 and 基本满意 are satisfied); **attempts** 呼叫次数 — calls placed (a sum);
  **closed** 已结束.

Dunning (``dunning``, one case per subscriber and billing month), by billing month (the round):

* **received** 催缴户数; **reminded** 已提醒 — an IVR dunning call was answered; **recalled** 再次催缴
  — the second call round was reached; **paid** 已缴费 — the payment reached the case;
  **paid_after_reminder** 提醒后缴费 — paid after an answered reminder; **suspended** 停机 — one-way
  (or further) suspension was ordered; **two_way** 双向停机; **unrecovered** 未收回 — the case
  closed unpaid; **attempts** 呼叫次数 — dunning calls placed (a sum); **closed** 已结束.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, ForeignKey, Index, Integer, Select, String, case, func, select, true
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, Session, mapped_column

from engine.database import READ_ONLY
from engine.db import Base
from engine.errors import ValidationFailed
from engine.models import HumanTask, ProcessInstance

from . import complaint_facts, report_months
from .complaint_facts import NONE_KEY, SATISFIED, UNSATISFIED, beijing_day


@dataclass(frozen=True)
class Subject:
    """One service's statistics: its process, its grouping, the yes/no figures (bits) and sums."""

    name: str                     # the API's and the page's name
    process_key: str
    kind_var: str                 # the case variable the report groups by (besides the day)
    bits: tuple[str, ...]         # figures that count cases, each a bit of ``CaseFact.outcome``
    sums: tuple[str, ...] = ()    # figures that add a column up

    @property
    def measures(self) -> tuple[str, ...]:
        return ("received", *self.bits, *self.sums)

    def bit(self, measure: str) -> int:
        return 1 << self.bits.index(measure)


ACCEPTANCE = Subject("acceptance", "business_acceptance", "request_type",
                     ("closed", "identified", "identification_failed", "refused_arrears", "refused_blacklist",
                      "done", "rejected"))
CALLBACKS = Subject("callbacks", "outbound_callback", "kind",
                    ("closed", "reached", "unreached", "resolved", "follow_up", "satisfied", "unsatisfied"),
                    ("attempts",))
DUNNING = Subject("dunning", "dunning", "bill_month",
                  ("closed", "reminded", "recalled", "paid", "paid_after_reminder", "suspended", "two_way",
                   "unrecovered"), ("attempts",))
SUBJECTS = {s.name: s for s in (ACCEPTANCE, CALLBACKS, DUNNING)}
BY_PROCESS = {s.process_key: s for s in SUBJECTS.values()}
DIMENSIONS = ("kind", "day", "month")


class CaseFact(Base):
    """The facts of one case of a service in SUBJECTS (see the module docstring)."""

    __tablename__ = "case_facts"
    # One covering index: a report reads a day range of one process in (day, kind, outcome) order.
    __table_args__ = (Index("ix_case_facts_report", "process_key", "received_day", "kind", "outcome", "attempts"),)

    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instances.id"), primary_key=True,
                                             autoincrement=False)
    process_key: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime]
    received_day: Mapped[date]
    kind: Mapped[str | None] = mapped_column(String(32))
    outcome: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    closed_at: Mapped[datetime | None]


# -- keeping the facts in step ----------------------------------------------------------------
def _acceptance_bits(data: Mapping[str, Any]) -> set[str]:
    found: set[str] = set()
    if data.get("identified") is True:
        found.add("identified")
    standing = data.get("standing")
    if isinstance(standing, Mapping) and standing.get("can_accept") is False:
        if _number(standing.get("arrears_fen")) > 0:
            found.add("refused_arrears")
        if standing.get("blacklisted") is True:
            found.add("refused_blacklist")
    result = data.get("billing_result")
    status = result.get("status") if isinstance(result, Mapping) else None
    if status == "DONE":
        found.add("done")
    elif status == "REJECTED":
        found.add("rejected")
    return found


def _callback_bits(data: Mapping[str, Any]) -> set[str]:
    found: set[str] = set()
    if data.get("outcome") == "answered":
        found.add("reached")
    if data.get("call_result") in ("resolved", "follow_up"):
        found.add(str(data["call_result"]))
    verdict = data.get("satisfaction")
    if verdict in SATISFIED:
        found.add("satisfied")
    elif verdict == UNSATISFIED:
        found.add("unsatisfied")
    return found


def _dunning_bits(data: Mapping[str, Any]) -> set[str]:
    found: set[str] = set()
    calls = data.get("calls")
    if isinstance(calls, list) and any(isinstance(c, Mapping) and c.get("outcome") == "answered" for c in calls):
        found.add("reminded")
    if data.get("call_round") == 2:
        found.add("recalled")
    if isinstance(data.get("payment"), Mapping):
        found.add("paid")
        if "reminded" in found:
            found.add("paid_after_reminder")
    if data.get("suspended") in ("one_way", "two_way"):
        found.add("suspended")
    if data.get("suspended") == "two_way":
        found.add("two_way")
    return found


def _attempts(subject: Subject, data: Mapping[str, Any]) -> int | None:
    """Calls placed so far: the callback's ``attempts``, the dunning case's list of ``calls``."""
    value = data.get("calls") if subject is DUNNING else data.get("attempts")
    if subject is DUNNING:
        return len(value) if isinstance(value, list) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


BITS_OF = {ACCEPTANCE.name: _acceptance_bits, CALLBACKS.name: _callback_bits, DUNNING.name: _dunning_bits}


class CaseFactsListener:
    """The engine step listener (and case-data listener) that writes ``case_facts``."""

    def instance_started(self, session: Session, instance: ProcessInstance,
                         start_properties: dict[str, str], group_id: int | None, now: datetime) -> None:
        if instance.process_key in BY_PROCESS:
            session.add(CaseFact(instance_id=instance.id, process_key=instance.process_key, received_at=now,
                                 received_day=beijing_day(now), outcome=0, attempts=0))

    def task_opened(self, session: Session, instance: ProcessInstance, task: HumanTask,
                    properties: dict[str, str], data: dict[str, Any], now: datetime) -> None:
        return None

    def task_closed(self, session: Session, instance: ProcessInstance, task: HumanTask, now: datetime) -> None:
        return None

    def step_data(self, session: Session, instance: ProcessInstance, data: Mapping[str, Any],
                  now: datetime) -> None:
        subject = BY_PROCESS.get(instance.process_key)
        fact = session.get(CaseFact, instance.id) if subject is not None else None
        if subject is None or fact is None:
            return
        kind = data.get(subject.kind_var)
        if isinstance(kind, str) and kind and fact.kind != kind[:32]:
            fact.kind = kind[:32]
        # Bits once set stay set (a refusal stays counted after the customer paid and was rechecked).
        outcome = fact.outcome | sum(subject.bit(name) for name in BITS_OF[subject.name](data))
        if fact.outcome != outcome:
            fact.outcome = outcome
        attempts = _attempts(subject, data) if "attempts" in subject.sums else None
        if attempts is not None and attempts > fact.attempts:
            fact.attempts = attempts

    def instance_finished(self, session: Session, instance: ProcessInstance, now: datetime) -> None:
        subject = BY_PROCESS.get(instance.process_key)
        fact = session.get(CaseFact, instance.id) if subject is not None else None
        if subject is None or fact is None:
            return
        fact.closed_at = now
        fact.outcome |= subject.bit("closed")
        if subject is ACCEPTANCE and not fact.outcome & subject.bit("identified"):
            fact.outcome |= subject.bit("identification_failed")
        if subject is CALLBACKS and not fact.outcome & subject.bit("reached"):
            fact.outcome |= subject.bit("unreached")
        if subject is DUNNING and not fact.outcome & subject.bit("paid"):
            fact.outcome |= subject.bit("unrecovered")

    def instance_suspended(self, session: Session, instance: ProcessInstance, now: datetime) -> None:
        return None

    def instance_resumed(self, session: Session, instance: ProcessInstance, now: datetime) -> None:
        return None


# -- the statistics ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Period:
    subject: Subject
    start: date
    end: date          # inclusive
    by: str            # kind | day | month


def check_period(subject: str, start: str | None, end: str | None, by: str | None) -> Period:
    """The report's subject, ``from``/``to`` (YYYY-MM-DD, inclusive) and ``by``; ValidationFailed
    naming the fields otherwise."""
    unknown = {} if subject in SUBJECTS else {"report": f"one of {', '.join(SUBJECTS)}"}
    period = complaint_facts.check_period(start, end, by, DIMENSIONS, unknown)
    return Period(SUBJECTS[subject], period.start, period.end, period.by)


_facts = CaseFact.metadata.tables[CaseFact.__tablename__]


def report_query(period: Period) -> Select[Any]:
    """``(key, *measures)`` rows ordered by key: the inner GROUP BY reads the covering index's day
    range of one process and counts per (day, kind, outcome); the outer adds those up per key."""
    f, subject = _facts.c, period.subject
    daily = (select(f.received_day, f.kind, f.outcome, func.count().label("n"),
                    *(func.sum(f[s]).label(s) for s in subject.sums))
             .where(f.process_key == subject.process_key, f.received_day.between(period.start, period.end))
             .group_by(f.received_day, f.kind, f.outcome).subquery("daily"))
    key = daily.c.received_day if period.by == "day" else daily.c.kind

    def having(measure: str) -> ColumnElement[Any]:
        return func.sum(case((daily.c.outcome.op("&")(subject.bit(measure)) != 0, daily.c.n), else_=0))

    return (select(key.label("key"), func.sum(daily.c.n).label("received"),
                   *(having(m).label(m) for m in subject.bits), *(func.sum(daily.c[s]).label(s) for s in subject.sums))
            .group_by(key).order_by(key.asc().nulls_first()))  # the same order on every database


def report(session: Session, period: Period) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """``(items, totals)`` of integer counts (key: the code, the day as YYYY-MM-DD, or None), read
    on a connection of its own that takes no write lock (as the complaint report)."""
    monthly = period.by == report_months.MONTH
    bind = session.get_bind()
    db = bind.engine if isinstance(bind, Connection) else bind
    with db.connect() as connection:
        rows = connection.execution_options(**{READ_ONLY: True}).execute(
            report_query(replace(period, by="day") if monthly else period)).all()
    measures = period.subject.measures
    items = [{"key": row.key.isoformat() if isinstance(row.key, date) else row.key,
              **{m: int(getattr(row, m) or 0) for m in measures}} for row in rows]
    if monthly:  # by day, then added up per month
        items = report_months.fold(items, measures)
    return items, {m: sum(int(item[m]) for item in items) for m in measures}


def drill_down(period: Period, key: str | None, measure: str) -> Select[Any]:
    """The ids of the cases behind one figure (``key`` None: every key; NONE_KEY: no value)."""
    f, subject = _facts.c, period.subject
    if measure not in subject.measures:
        raise ValidationFailed("unknown figure", {"measure": f"one of {', '.join(subject.measures)}"})
    if key is not None and period.by == report_months.MONTH:
        first, last = report_months.days_of(key, period.start, period.end)
        period, key = replace(period, start=first, end=last), None
    query = select(f.instance_id).where(f.process_key == subject.process_key,
                                        f.received_day.between(period.start, period.end))
    if key is not None:
        if period.by == "day":
            try:
                query = query.where(f.received_day == date.fromisoformat(key))
            except ValueError as exc:
                raise ValidationFailed("unknown day", {"key": "YYYY-MM-DD"}) from exc
        else:
            query = query.where(f.kind.is_(None) if key == NONE_KEY else f.kind == key)
    condition: ColumnElement[bool] = true()
    if measure in subject.bits:
        condition = f.outcome.op("&")(subject.bit(measure)) != 0
    elif measure in subject.sums:
        condition = f[measure] > 0
    return query.where(condition)
