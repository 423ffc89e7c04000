"""Filters and sorting of the inbox and the case list, read from the query string and applied in
SQL: process, step, group, holder, SLA state, priority, VIP, date range; sort by due time (VIP
cases first — the inbox's default), creation or priority. Also the SLA countdown's words, shared
with the browser's live countdown (web/static/inbox.js computes the same words every few seconds)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import Select, and_, case, exists, func, select

from engine.models import INBOX_ORDER, OPEN, SUSPENDED, HumanTask, ProcessInstance
from processes.desk_search import MAX_PRIORITY, CaseIndex

from .request_limits import MAX_ID
from .schema_forms import LOCAL

SLA_STATES = ("ok", "warning", "overdue", "paused", "none")
SORTS = ("due", "created", "priority")
# The case list: VIP cases before the others (a case without an index row counts as not VIP).
VIP_FIRST = case((CaseIndex.vip.is_(True), 0), else_=1)


@dataclass(frozen=True)
class DeskFilters:
    process: str = ""
    step: str = ""
    group: int | None = None
    holder: str = ""                 # "" any, "none" unclaimed, or a user id
    sla: str = ""
    priority: int | None = None      # at least this priority
    vip: bool = False
    start: datetime | None = None    # created on or after (a Beijing day's start)
    end: datetime | None = None      # created before (the day after the 'to' day)
    sort: str = "due"

    @property
    def active(self) -> bool:
        return any((self.process, self.step, self.group, self.holder, self.sla, self.priority, self.vip,
                    self.start, self.end))


def _int(value: str | None, low: int = 1, high: int = MAX_ID) -> int | None:
    try:
        number = int(value or "")
    except ValueError:
        return None
    return number if low <= number <= high else None


def parse_day(value: str | None, end: bool = False) -> datetime | None:
    """A ``YYYY-MM-DD`` Beijing day as the moment it starts (``end``: the next day's start)."""
    try:
        day = datetime.strptime(value or "", "%Y-%m-%d").date()
    except ValueError:
        return None
    return datetime.combine(day, time.min, LOCAL) + (timedelta(days=1) if end else timedelta())


def parse(args: Any, default_sort: str = "due") -> DeskFilters:
    """The filters of a query string; values that make no sense are ignored, never an error."""
    holder = args.get("holder", "")
    sort = args.get("sort", default_sort)
    return DeskFilters(
        process=args.get("process", "")[:80], step=args.get("step", "")[:80], group=_int(args.get("group")),
        holder=holder if holder == "none" or _int(holder) else "",
        sla=args.get("sla") if args.get("sla") in SLA_STATES else "",
        priority=_int(args.get("priority"), 1, MAX_PRIORITY), vip=args.get("vip") in ("1", "on", "true"),
        start=parse_day(args.get("from")), end=parse_day(args.get("to"), end=True),
        sort=sort if sort in SORTS else default_sort)


def sla_condition(state: str, now: datetime):
    """Open steps in an SLA state (as ``slas.status.sla_state`` names it), joined to their case."""
    suspended = ProcessInstance.status == SUSPENDED
    running = ~suspended
    return {
        "none": HumanTask.due_at.is_(None),
        "paused": and_(HumanTask.due_at.is_not(None), suspended),
        "overdue": and_(HumanTask.due_at <= now, running),
        "warning": and_(HumanTask.warn_at <= now, HumanTask.due_at > now, running),
        "ok": and_(HumanTask.due_at > now, (HumanTask.warn_at.is_(None)) | (HumanTask.warn_at > now), running),
    }[state]


def _step_conditions(f: DeskFilters, now: datetime) -> list:
    """Conditions on a step (HumanTask joined to its case) for step, group, holder, SLA state."""
    where = []
    if f.step:
        where.append(HumanTask.name == f.step)
    if f.group:
        where.append(HumanTask.group_id == f.group)
    if f.holder == "none":
        where.append(HumanTask.assignee_id.is_(None))
    elif f.holder:
        where.append(HumanTask.assignee_id == int(f.holder))
    if f.sla:
        where.append(sla_condition(f.sla, now))
    return where


def _case_conditions(f: DeskFilters, created, vip=CaseIndex.vip) -> list:
    where = []
    if f.process:
        where.append(ProcessInstance.process_key == f.process)
    if f.priority:
        where.append(CaseIndex.priority >= f.priority)
    if f.vip:
        where.append(vip.is_(True))
    if f.start is not None:
        where.append(created >= f.start)
    if f.end is not None:
        where.append(created < f.end)
    return where


def filter_tasks(query: Select, f: DeskFilters, now: datetime) -> Select:
    """An inbox select of ``HumanTask`` narrowed and sorted by ``f``. The case and its index row
    are joined only when a filter or the sort needs them; VIP is the step row's own flag, so the
    default order (VIP first, then due) is the inbox index's and needs no join."""
    case_needed = bool(f.process or f.sla or f.start or f.end)
    index_needed = bool(f.priority or f.sort == "priority")
    query = query.order_by(None)
    if case_needed:
        query = query.join(ProcessInstance, ProcessInstance.id == HumanTask.instance_id)
    if index_needed:
        query = query.outerjoin(CaseIndex, CaseIndex.instance_id == HumanTask.instance_id)
    query = query.where(*_step_conditions(f, now), *_case_conditions(f, HumanTask.created_at, HumanTask.vip))
    due_order = (HumanTask.due_at.is_(None), HumanTask.due_at, HumanTask.id)
    if f.sort == "created":
        return query.order_by(HumanTask.created_at.desc(), HumanTask.id.desc())
    if f.sort == "priority":
        return query.order_by(func.coalesce(CaseIndex.priority, 0).desc(), *due_order)
    return query.order_by(*INBOX_ORDER)


def filter_cases(query: Select, f: DeskFilters, now: datetime) -> Select:
    """A case-list select of ``ProcessInstance`` narrowed and sorted by ``f``: the step filters
    ask for an open step of the case that matches them all."""
    query = query.order_by(None).outerjoin(CaseIndex, CaseIndex.instance_id == ProcessInstance.id)
    query = query.where(*_case_conditions(f, ProcessInstance.created_at))
    steps = _step_conditions(f, now)
    if steps:
        query = query.where(exists().where(HumanTask.instance_id == ProcessInstance.id,
                                           HumanTask.status == OPEN, *steps))
    if f.sort == "due":
        next_due = (select(func.min(HumanTask.due_at)).where(HumanTask.instance_id == ProcessInstance.id,
                                                             HumanTask.status == OPEN)
                    .correlate(ProcessInstance).scalar_subquery())
        return query.order_by(VIP_FIRST, next_due.is_(None), next_due, ProcessInstance.id.desc())
    if f.sort == "priority":
        return query.order_by(func.coalesce(CaseIndex.priority, 0).desc(), ProcessInstance.id.desc())
    return query.order_by(ProcessInstance.id.desc())


def countdown(due_at: datetime | None, now: datetime, paused: bool = False) -> str:
    """"还剩 1小时20分" / "已超时 35分" (the browser keeps it live with the same words)."""
    if due_at is None:
        return ""
    if paused:
        return _("Paused")
    seconds = int((due_at - now).total_seconds())
    span = _span(abs(seconds) if seconds < 0 else seconds)
    return _("%(span)s left", span=span) if seconds >= 0 else _("Overdue by %(span)s", span=span)


def _span(seconds: int) -> str:
    minutes = seconds // 60
    days, rest = divmod(minutes, 1440)
    hours, minutes = divmod(rest, 60)
    if days:
        return _("%(d)sd %(h)sh", d=days, h=hours)
    if hours:
        return _("%(h)sh %(m)smin", h=hours, m=minutes)
    return _("%(m)smin", m=minutes)
