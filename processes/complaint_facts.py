"""Complaint facts (投诉统计): one denormalised row per complaint case, written in the step, and
the set-based statistics read from them (REQUIREMENTS.md §4, seed 000 §4.1.2 and §6.7).

The row is kept in step by ``ComplaintFactsListener`` — an engine step listener that also hears
the case's data at the end of each step (``engine.listeners.CaseDataListener``) — and by the SLA
scanner's escalation hook (``count_escalations``, passed to ``slas.scanner.scan`` by the tick).
Nothing here ever loads a workflow: the reports are one indexed GROUP BY over this table.

What each figure means (every figure counts the complaints *received* in the period, a cohort,
so that rates compare like with like):

* **received** (受理量): complaints recorded (the case started), on their Beijing day.
* **closed** (办结量): of those, the cases that have finished (投诉关闭 / 答复关闭).
* **first_reply_in_time** (首次答复及时): the first-reply step (首次答复, ``triage``) was done
  within its time limit: the step's SLA clock (2 hours on the 24×7 calendar as the diagram
  declares it, longer by the time the case was suspended); without a clock, 2 hours after intake.
* **replied** (客服回复, seed 000 §6.7 客服回复率 = replied / received): the customer received the
  *final* answer to the complaint — the agent answered at once (即时答复) or completed 回复客户
  after the department's handling. A first reply that only promises an answer does not count.
* **handled_in_time** (处理及时): that final answer came within the case's time limit (the case
  clock the diagram declares on its start event: 3 working days on the working-day calendar,
  longer by the suspended time; without a clock, 24 hours). The department step's own 24-hour
  limit is a step limit and shows under *overdue*.
* **overdue** (超时): some limit of the case was passed: a step done after its due time, a final
  answer after the case's limit, or an escalation raised by the scanner (a step still open past
  its due time).
* **escalations** (超时告警次数, not 越级/升级投诉): escalations the scanner raised for the case (each level once).
* **urges** (催办次数): the case's steps were urged (催办, processes/urging.py) this many times;
  by department, the urges of the cases with that department.
* **satisfied / unsatisfied** (满意 / 不满意): the customer's first verdict on the answer (at the
  reply, by SMS, or on the return visit): 满意 and 基本满意 are satisfied. A case reworked after
  不满意 stays unsatisfied (一次满意); "no reply" counts as neither until a verdict is heard.

A complaint transferred to the customer's home province (转递归属地省处理) closes here at the
transfer: its first reply counts, its final answer is the home province's and is not counted here.
The city (地市) is the customer's home city (归属地市) that billing gives for the case's number at
intake (``home_city``, wired by ``web.create_app``; asked when the case starts, read at the end
of the intake step, or written on its own once billing answers, never waited for), the case's ``city`` variable when the product sets one, and the city of the city centre a
step is transferred to (``processes.city_transfer``: the case is then that city's).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    ForeignKey,
    Index,
    Select,
    String,
    bindparam,
    case,
    func,
    select,
    text,
    true,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Mapped, Session, mapped_column

from engine.clock import LOCAL_TZ
from engine.database import READ_ONLY
from engine.db import Base
from engine.errors import ValidationFailed
from engine.models import HumanTask, ProcessInstance
from engine.unit_of_work import after_commit
from slas.models import Escalation, SlaClock

from . import report_months

PROCESS_KEY = "complaint"
FIRST_REPLY_STEP = "triage"        # 首次答复
FINAL_REPLY_STEP = "reply"         # 回复客户
ANSWER_NOW = "answer_now"          # the triage's resolution when the agent answers at once
FIRST_REPLY_LIMIT = timedelta(hours=2)   # seed 000 §6.7, when the first-reply step has no clock
HANDLING_LIMIT = timedelta(hours=24)     # seed 000 §6.7, when the case has no clock
SATISFIED = ("satisfied", "basic")
UNSATISFIED = "unsatisfied"
VERDICTS = (*SATISFIED, UNSATISFIED)

DIMENSIONS = ("category", "channel", "department", "city", "day", "month")
MEASURES = ("received", "closed", "first_reply_in_time", "handled_in_time", "replied", "overdue",
            "escalations", "satisfied", "unsatisfied", "urges")
MAX_DAYS = 366                     # a report covers at most a year
NONE_KEY = "_none"                 # the drill-down's name for "no value" (e.g. not dispatched)
_PENDING = "kefu_home_city"        # session.info: instance id → the home-city lookup under way

log = logging.getLogger(__name__)
_lookups = ThreadPoolExecutor(max_workers=2, thread_name_prefix="kefu-home-city")


# The bits of ``ComplaintFact.outcome``: the yes/no facts the report counts, in one small integer
# so that a report groups by it instead of evaluating a condition per fact and figure.
OUTCOME_BITS = {"first_reply_in_time": 1, "handled_in_time": 2, "replied": 4, "overdue": 8, "closed": 16,
                "satisfied": 32, "unsatisfied": 64}


class ComplaintFact(Base):
    """The facts of one complaint case that the statistics count (see the module docstring)."""

    __tablename__ = "complaint_facts"
    # One covering index per dimension, led by the day: a report reads a day range of one index
    # in (day, key, outcome) order and never touches the table (see ``report_query``).
    __table_args__ = tuple(
        Index(f"ix_complaint_facts_{dim}", "received_day", dim, "outcome", "escalations")
        for dim in ("category", "channel", "department", "city")) + (
        # Urged cases are few: their own partial index keeps the urge count off the main report's path.
        Index("ix_complaint_facts_urged", "received_day", "urges", "category", "channel", "department", "city",
              sqlite_where=text("urges > 0"), postgresql_where=text("urges > 0")),)

    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instances.id"), primary_key=True,
                                             autoincrement=False)
    received_at: Mapped[datetime]
    received_day: Mapped[date]                       # Beijing day of received_at
    category: Mapped[str | None] = mapped_column(String(16))
    channel: Mapped[str | None] = mapped_column(String(16))
    department: Mapped[str | None] = mapped_column(String(32))
    city: Mapped[str | None] = mapped_column(String(40))
    first_reply_at: Mapped[datetime | None]
    first_reply_in_time: Mapped[bool] = mapped_column(default=False)
    final_reply_at: Mapped[datetime | None]
    replied: Mapped[bool] = mapped_column(default=False)
    handled_in_time: Mapped[bool] = mapped_column(default=False)
    closed_at: Mapped[datetime | None]
    overdue: Mapped[bool] = mapped_column(default=False)
    escalations: Mapped[int] = mapped_column(default=0)
    satisfaction: Mapped[str | None] = mapped_column(String(16))
    urges: Mapped[int] = mapped_column(default=0, server_default="0")
    outcome: Mapped[int] = mapped_column(default=0)  # OUTCOME_BITS of the columns above

    def settle(self) -> None:
        """Bring ``outcome`` in line with the columns (after every change)."""
        flags = {"first_reply_in_time": self.first_reply_in_time, "handled_in_time": self.handled_in_time,
                 "replied": self.replied, "overdue": self.overdue, "closed": self.closed_at is not None,
                 "satisfied": self.satisfaction in SATISFIED, "unsatisfied": self.satisfaction == UNSATISFIED}
        self.outcome = sum(bit for name, bit in OUTCOME_BITS.items() if flags[name])


def beijing_day(moment: datetime) -> date:
    return moment.astimezone(LOCAL_TZ).date()


# -- keeping the facts in step ----------------------------------------------------------------
class ComplaintFactsListener:
    """The engine step listener (and case-data listener) that writes ``complaint_facts``.

    ``home_city``: the customer's home city of a number (billing's 归属地市), or None."""

    def __init__(self, home_city: Callable[[str], str | None] | None = None) -> None:
        self.home_city = home_city

    def instance_started(self, session: Session, instance: ProcessInstance,
                         start_properties: dict[str, str], group_id: int | None, now: datetime) -> None:
        if instance.process_key == PROCESS_KEY:
            session.add(ComplaintFact(instance_id=instance.id, received_at=now, received_day=beijing_day(now),
                                      first_reply_in_time=False, replied=False, handled_in_time=False,
                                      overdue=False, escalations=0, urges=0, outcome=0))
            if instance.customer_phone and self.home_city is not None:
                # Asked now, read at the step's end: billing answers while the diagram runs.
                session.info.setdefault(_PENDING, {})[instance.id] = _lookups.submit(self.home_city,
                                                                                     instance.customer_phone)

    @staticmethod
    def _home_city(session: Session, instance_id: int) -> str | None:
        """Billing's home city asked for at the case's start, when it has answered by the intake
        step's end. Intake never waits on billing (its transaction holds the write lock): a later
        answer is written on its own once the case is committed."""
        lookup: Future[str | None] | None = session.info.get(_PENDING, {}).pop(instance_id, None)
        if lookup is None:
            return None
        if lookup.done():
            return _answer(lookup)
        bind = session.get_bind()
        if isinstance(bind, Engine):
            after_commit(session, lambda: lookup.add_done_callback(
                lambda done: _write_city_later(bind, instance_id, _answer(done))))
        return None

    def task_opened(self, session: Session, instance: ProcessInstance, task: HumanTask,
                    properties: dict[str, str], data: dict[str, Any], now: datetime) -> None:
        return None

    def task_closed(self, session: Session, instance: ProcessInstance, task: HumanTask,
                    now: datetime) -> None:
        fact = _fact(session, instance)
        if fact is None:
            return
        if task.due_at is not None and now > task.due_at:
            fact.overdue = True
        if task.name == FIRST_REPLY_STEP and fact.first_reply_at is None:
            fact.first_reply_at = now
            fact.first_reply_in_time = now <= (task.due_at or fact.received_at + FIRST_REPLY_LIMIT)
        elif task.name == FINAL_REPLY_STEP:
            _final_reply(session, fact, now)
        fact.settle()

    def step_data(self, session: Session, instance: ProcessInstance, data: Mapping[str, Any],
                  now: datetime) -> None:
        fact = _fact(session, instance)
        if fact is None:
            return
        home = self._home_city(session, instance.id)  # the intake step's end: billing's answer
        if home and fact.city is None:
            fact.city = home
        for name, size in (("category", 16), ("channel", 16), ("department", 32), ("city", 40)):
            value = data.get(name)
            if isinstance(value, str) and value and getattr(fact, name) != value[:size]:
                setattr(fact, name, value[:size])
        if data.get("resolution") == ANSWER_NOW and fact.first_reply_at is not None and not fact.replied:
            _final_reply(session, fact, fact.first_reply_at)
        verdict = data.get("satisfaction")
        if isinstance(verdict, str) and verdict:
            if verdict in VERDICTS and fact.satisfaction not in VERDICTS:
                fact.satisfaction = verdict            # the first real verdict stays
            elif fact.satisfaction is None:
                fact.satisfaction = verdict[:16]       # e.g. no_reply, until a verdict is heard
        fact.settle()

    def instance_finished(self, session: Session, instance: ProcessInstance, now: datetime) -> None:
        fact = _fact(session, instance)
        if fact is not None:
            fact.closed_at = now
            fact.settle()

    def instance_suspended(self, session: Session, instance: ProcessInstance, now: datetime) -> None:
        return None

    def instance_resumed(self, session: Session, instance: ProcessInstance, now: datetime) -> None:
        return None


def _fact(session: Session, instance: ProcessInstance) -> ComplaintFact | None:
    if instance.process_key != PROCESS_KEY:
        return None
    return session.get(ComplaintFact, instance.id)


def _final_reply(session: Session, fact: ComplaintFact, at: datetime) -> None:
    """The customer got the final answer at ``at``: replied, and in time or not on the case clock."""
    due = session.scalar(select(SlaClock.due_at).where(SlaClock.instance_id == fact.instance_id,
                                                       SlaClock.task_id.is_(None))
                         .order_by(SlaClock.id).limit(1))
    fact.final_reply_at, fact.replied = at, True
    fact.handled_in_time = at <= (due or fact.received_at + HANDLING_LIMIT)
    if not fact.handled_in_time:
        fact.overdue = True


_facts = ComplaintFact.metadata.tables[ComplaintFact.__tablename__]
_COUNT = (update(_facts).where(_facts.c.instance_id == bindparam("b_id"))
          .values(escalations=_facts.c.escalations + bindparam("b_n"),
                  overdue=_facts.c.overdue | bindparam("b_late"),
                  outcome=_facts.c.outcome.op("|")(bindparam("b_bit"))))


def count_escalations(session: Session, escalations: Sequence[Escalation], now: datetime) -> None:
    """The scanner's hook (``slas.scanner.scan(on_escalated=…)``): add a batch's escalations to
    their cases' facts, one executemany in the batch's transaction (cases without facts, i.e.
    other processes, match no row)."""
    per_case: dict[int, list[int]] = {}
    for esc in escalations:
        counted = per_case.setdefault(esc.instance_id, [0, 0])
        counted[0] += 1
        counted[1] |= int(esc.due_at <= now)
    if per_case:
        session.connection().execute(_COUNT, [{"b_id": i, "b_n": n, "b_late": bool(late),
                                               "b_bit": OUTCOME_BITS["overdue"] if late else 0}
                                              for i, (n, late) in per_case.items()])


def _answer(lookup: Future[str | None]) -> str | None:
    try:
        city = lookup.result(timeout=0)
    except Exception as exc:  # noqa: BLE001 - the complaint matters more than its city
        log.info("home city lookup failed: %s", exc)
        return None
    return city[:40] if city else None


def _write_city_later(bind: Engine, instance_id: int, city: str | None) -> None:
    """Billing answered after the intake step committed: fill the city unless a step set one."""
    if not city:
        log.info("home city of the complaint's number unknown; counted under 地市未知")
        return
    try:
        with bind.begin() as conn:
            conn.execute(update(_facts).where(_facts.c.instance_id == instance_id, _facts.c.city.is_(None))
                         .values(city=city))
    except Exception:  # `kefu backfill-cities` fills what is left unknown
        log.exception("could not write the home city of case %s", instance_id)


def set_city(session: Session, instance_id: int, city: str) -> None:
    """The case is now ``city``'s (a step transferred to the city's remote seats)."""
    fact = session.get(ComplaintFact, instance_id)
    if fact is not None:  # other processes have no facts
        fact.city = city[:40]


_URGE = (update(_facts).where(_facts.c.instance_id == bindparam("b_id"))
          .values(urges=_facts.c.urges + 1))


def count_urge(session: Session, instance_id: int) -> None:
    """An urge of one of the case's steps (processes/urging.py; other processes match no row)."""
    session.connection().execute(_URGE, {"b_id": instance_id})


# -- the statistics ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Period:
    start: date
    end: date          # inclusive
    by: str


def check_period(start: str | None, end: str | None, by: str | None,
                 dimensions: Sequence[str] = DIMENSIONS, problems: Mapping[str, str] | None = None) -> Period:
    """A report's ``from``/``to`` (YYYY-MM-DD, Beijing days, inclusive) and ``by`` (one of
    ``dimensions``); a ValidationFailed with the fields otherwise, ``problems`` (the caller's own
    findings, e.g. an unknown report) included."""
    fields: dict[str, str] = dict(problems or {})
    days: dict[str, date] = {}
    for name, value in (("from", start), ("to", end)):
        try:
            days[name] = date.fromisoformat(value or "")
            if len(value or "") != 10:
                raise ValueError
        except ValueError:
            fields[name] = "required, as YYYY-MM-DD"
    if (by or "") not in dimensions:
        fields["by"] = f"one of {', '.join(dimensions)}"
    if not fields and days["to"] < days["from"]:
        fields["to"] = "must not be before from"
    if not fields and (days["to"] - days["from"]).days >= MAX_DAYS:
        fields["to"] = f"a report covers at most {MAX_DAYS} days"
    if fields:
        raise ValidationFailed("the report's period or grouping is not valid", fields)
    return Period(days["from"], days["to"], str(by))


def report_query(period: Period, reach: Select[Any] | None = None) -> Select[Any]:
    """The report as one statement: ``(key, *MEASURES)`` rows ordered by key; ``reach`` (the case
    ids a city leader may count, ``engine.access.report_reach``) narrows it to those cases.

    Two GROUP BYs: the inner one reads the day range of one covering index in its own order
    (day, key, outcome), so SQLite neither sorts nor visits the table, and counts the facts per
    (day, key, outcome); the outer one adds those few thousand rows up per key, a figure being the
    rows whose outcome has its bit. By day, the category index is read and grouped by day."""
    f = _facts.c
    dim = f["category" if period.by == "day" else period.by]
    daily = (select(f.received_day, dim.label("dim"), f.outcome, func.count().label("n"),
                    func.sum(f.escalations).label("escalations"))
             .where(f.received_day.between(period.start, period.end), *_within(reach))
             .group_by(f.received_day, dim, f.outcome).subquery("daily"))
    key = daily.c.received_day if period.by == "day" else daily.c.dim

    def having(measure: str) -> ColumnElement[Any]:
        return func.sum(case((daily.c.outcome.op("&")(OUTCOME_BITS[measure]) != 0, daily.c.n), else_=0))

    figures = [func.sum(daily.c.n).label("received"),
               *(having(m).label(m) for m in MEASURES if m in OUTCOME_BITS),
               func.sum(daily.c.escalations).label("escalations")]
    return select(key.label("key"), *figures).group_by(key).order_by(key.asc().nulls_first())  # as SQLite does


def _within(reach: Select[Any] | None) -> list[ColumnElement[bool]]:
    return [] if reach is None else [_facts.c.instance_id.in_(reach)]


def urges_query(period: Period, reach: Select[Any] | None = None) -> Select[Any]:
    """``(key, urges)`` rows: the urges of the period's urged cases, read through the partial
    index of urged cases (a few rows) rather than summed by the main report over every case."""
    f = _facts.c
    key = f.received_day if period.by == "day" else f[period.by]
    return (select(key.label("key"), func.sum(f.urges).label("urges"))
            .where(f.received_day.between(period.start, period.end), f.urges > 0, *_within(reach))
            .group_by(key))


def report(session: Session, period: Period,
           reach: Select[Any] | None = None) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """``(items, totals)``: per key its integer counts (key: the code, the day as YYYY-MM-DD, or
    None), and the counts over all keys, of the cases in ``reach`` (None: every case). Only the session's bind is used: a caller holding a
    write transaction should end it first (see ``web.reports.complaint_table``)."""
    # Read on a connection of its own that takes no write lock (engine.database.READ_ONLY): a
    # month of a busy centre is a long read, and steps must not wait for it.
    monthly = period.by == report_months.MONTH
    if monthly:  # by day, then added up per month
        period = replace(period, by="day")
    bind = session.get_bind()
    db = bind.engine if isinstance(bind, Connection) else bind
    with db.connect() as connection:
        reading = connection.execution_options(**{READ_ONLY: True})
        rows = reading.execute(report_query(period, reach)).all()
        urges = {row.key: int(row.urges or 0) for row in reading.execute(urges_query(period, reach))}
    items: list[dict[str, Any]] = []
    for row in rows:
        key = row.key.isoformat() if isinstance(row.key, date) else row.key
        items.append({"key": key, **{m: int(getattr(row, m) or 0) for m in MEASURES if m != "urges"},
                      "urges": urges.get(row.key, 0)})
    if monthly:
        items = report_months.fold(items, MEASURES)
    totals = {m: sum(int(item[m]) for item in items) for m in MEASURES}
    return items, totals


def drill_down(period: Period, key: str | None, measure: str) -> Select[Any]:
    """The ids of the cases behind one figure of the report (``key`` None: every key;
    ``NONE_KEY``: the cases without a value; ``measure``: one of MEASURES)."""
    f = _facts.c
    if key is not None and period.by == report_months.MONTH:
        first, last = report_months.days_of(key, period.start, period.end)
        period, key = replace(period, start=first, end=last), None
    query = select(f.instance_id).where(f.received_day.between(period.start, period.end))
    if key is not None:
        column = f.received_day if period.by == "day" else f[period.by]
        if key == NONE_KEY:
            query = query.where(column.is_(None))
        elif period.by == "day":
            query = query.where(column == date.fromisoformat(key))
        else:
            query = query.where(column == key)
    conditions: dict[str, ColumnElement[bool]] = {
        "received": true(), "closed": f.closed_at.is_not(None),
        "first_reply_in_time": f.first_reply_in_time.is_(True), "handled_in_time": f.handled_in_time.is_(True),
        "replied": f.replied.is_(True), "overdue": f.overdue.is_(True), "escalations": f.escalations > 0, "urges": f.urges > 0,
        "satisfied": f.satisfaction.in_(SATISFIED), "unsatisfied": f.satisfaction == UNSATISFIED}
    if measure not in conditions:
        raise ValidationFailed("unknown figure", {"measure": f"one of {', '.join(MEASURES)}"})
    return query.where(conditions[measure])


def labels_from_forms(forms: Mapping[str, Any], english: bool = False) -> dict[str, dict[str, str]]:
    """Names of the codes, from the deployed complaint forms: category and channel from the intake
    form, department from the first-reply (triage) form; Chinese, or English (``x-title-en``)."""
    found: dict[str, dict[str, str]] = {"category": {}, "channel": {}, "department": {}}
    for form_name, fields in (("complaint_intake.schema.json", ("category", "channel")),
                              ("complaint_triage.schema.json", ("department",))):
        properties = (forms.get(form_name) or {}).get("properties") or {}
        for name in fields:
            for option in (properties.get(name) or {}).get("oneOf") or ():
                if isinstance(option, dict) and "const" in option:
                    title = (english and option.get("x-title-en")) or option.get("title") or option["const"]
                    found[name][str(option["const"])] = str(title)
    return found
