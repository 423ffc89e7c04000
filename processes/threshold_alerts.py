"""Threshold alerts (指标阈值告警): rules the managers set on the complaint statistics, checked by
the tick, raising an alert on the managers' alert page and texting the duty manager — once per
rule and period (a unique row per rule and period key: ``2026-11-23`` for a day, ``2026-11`` for
a month).

A rule names a metric, a scope (every complaint, one department, one category), a comparison and
a threshold, and a period (today or this month so far, Beijing days). The figures are one
set-based aggregate over ``complaint_facts`` (processes/complaint_facts.py) — never a workflow.

Rates are judged on the cases already *decided*, so that a complaint received a minute ago does
not pull today's rate down before its limit has passed:

* first-reply-in-time rate = first replies in time ÷ (complaints with a first reply, or overdue
  without one — the scanner has escalated the open first-reply step);
* handled-in-time rate = final answers in time ÷ (complaints answered, or overdue);
* customer reply rate (客服回复率) = answered ÷ received; satisfaction = satisfied ÷ verdicts.

A rate rule waits for ``min_cases`` decided complaints in its period (a rate of one case says
little). Who is texted: the rule's duty manager when one is named, otherwise every active manager
with a mobile number.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    and_,
    func,
    or_,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from engine import outbox
from engine.clock import LOCAL_TZ
from engine.db import Base
from engine.errors import ValidationFailed
from engine.models import record_event
from engine.people import User, managers

from .complaint_facts import OUTCOME_BITS, ComplaintFact

# metric -> (Chinese name, kind); a rate's figures are (numerator, denominator) below
METRICS: dict[str, tuple[str, str]] = {
    "first_reply_rate": ("首次答复及时率", "rate"),
    "handled_rate": ("处理及时率", "rate"),
    "reply_rate": ("客服回复率", "rate"),
    "satisfaction_rate": ("满意率", "rate"),
    "overdue": ("超时工单数", "count"),
    "unsatisfied": ("不满意工单数", "count"),
    "escalations": ("超时告警次数", "count"),  # the SLA scanner's alerts, not 越级/升级投诉
    "received": ("受理量", "count"),
}
RATE_FIGURES = {"first_reply_rate": ("first_reply_in_time", "first_reply_decided"),
                "handled_rate": ("handled_in_time", "handled_decided"),
                "reply_rate": ("replied", "received"),
                "satisfaction_rate": ("satisfied", "verdicts")}
SCOPES = {"all": "全部投诉", "department": "责任部门", "category": "投诉类别"}
COMPARISONS = {"lt": "低于", "le": "不高于", "gt": "高于", "ge": "不低于"}
PERIODS = {"day": "当日", "month": "当月"}


class AlertRule(Base):
    """One threshold rule (managers add, edit and disable them on /reports/alert-rules)."""

    __tablename__ = "alert_rules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    metric: Mapped[str] = mapped_column(String(32))
    scope: Mapped[str] = mapped_column(String(16), default="all")
    scope_value: Mapped[str | None] = mapped_column(String(32))
    comparison: Mapped[str] = mapped_column(String(2))
    threshold: Mapped[float] = mapped_column(Float)
    period: Mapped[str] = mapped_column(String(8), default="day")
    min_cases: Mapped[int] = mapped_column(Integer, default=1)
    notify_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # the duty manager
    active: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(80))


class ThresholdAlert(Base):
    """A rule that was breached in one period (at most one row per rule and period)."""

    __tablename__ = "threshold_alerts"
    __table_args__ = (UniqueConstraint("rule_id", "period_key", name="uq_threshold_alerts_rule_period"),
                      Index("ix_threshold_alerts_raised_at", "raised_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("alert_rules.id"))
    period_key: Mapped[str] = mapped_column(String(10))
    raised_at: Mapped[datetime]
    value: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    cases: Mapped[int] = mapped_column(Integer)      # the complaints the value was computed on
    texted: Mapped[int] = mapped_column(Integer, default=0)


# -- checking what managers type -------------------------------------------------------------
def check_rule(values: dict[str, Any], known: Mapping[str, Mapping[str, str]] | None = None) -> dict[str, Any]:
    """The rule's fields, normalised; ValidationFailed with Chinese messages per field otherwise.
    ``known``: per scope (department, category) the codes a rule may name, with their names."""
    fields: dict[str, str] = {}
    out: dict[str, Any] = {}
    name = str(values.get("name") or "").strip()
    if not name or len(name) > 80:
        fields["name"] = "请填写规则名称（80字以内）"
    out["name"] = name
    for field, choices in (("metric", METRICS), ("scope", SCOPES), ("comparison", COMPARISONS),
                           ("period", PERIODS)):
        value = str(values.get(field) or ("all" if field == "scope" else "")).strip()
        if value not in choices:
            fields[field] = "可选：" + "、".join(f"{k}（{v if isinstance(v, str) else v[0]}）"
                                               for k, v in choices.items())
        out[field] = value
    scope_value = str(values.get("scope_value") or "").strip() or None
    if out["scope"] != "all" and not scope_value:
        fields["scope_value"] = "请填写部门或类别编码"
    if scope_value and len(scope_value) > 32:
        fields["scope_value"] = "编码最多32个字符"
    elif scope_value and known is not None and out["scope"] in known and scope_value not in known[out["scope"]]:
        fields["scope_value"] = (f"“{scope_value}”不是已知的{SCOPES[out['scope']]}；可选："
                                 + "、".join(f"{name}（{code}）" for code, name in known[out["scope"]].items()))[:500]
    out["scope_value"] = scope_value if out["scope"] != "all" else None
    for field, low, high, default in (("threshold", 0.0, 1e9, None), ("min_cases", 1, 1_000_000, 1)):
        raw = values.get(field, default)
        try:
            number = float(raw) if field == "threshold" else int(raw)  # type: ignore[arg-type]
            if isinstance(raw, bool) or not low <= number <= high:
                raise ValueError
            out[field] = number
        except (TypeError, ValueError):
            fields[field] = f"请填写{low}到{int(high)}之间的数字"
    if out.get("metric") in RATE_FIGURES and isinstance(out.get("threshold"), float) and out["threshold"] > 100:
        fields["threshold"] = "比率的阈值是百分数（0–100）"
    out["active"] = values.get("active", True) not in (False, "0", "false", "", None)
    notify = values.get("notify_user_id")
    out["notify_user_id"] = None
    if notify not in (None, ""):
        try:
            out["notify_user_id"] = int(notify)
            if isinstance(notify, bool) or not 1 <= out["notify_user_id"] < 2**31:
                raise ValueError
        except (TypeError, ValueError):
            fields["notify_user_id"] = "值班经理无效"
    if fields:
        raise ValidationFailed("告警规则填写有误", fields)
    return out


def save_rule(session: Session, rule: AlertRule | None, values: dict[str, Any], actor: str,
              now: datetime, known: Mapping[str, Mapping[str, str]] | None = None) -> AlertRule:
    """Create (``rule`` None) or change a rule from checked values (``known``: see ``check_rule``);
    the duty manager must be an active user with a mobile number."""
    checked = check_rule(values, known)
    if checked["notify_user_id"] is not None:
        user = session.get(User, checked["notify_user_id"])
        if user is None or not user.active or not user.phone:
            raise ValidationFailed("告警规则填写有误", {"notify_user_id": "值班经理须为在用且登记了手机号的用户"})
    if rule is None:
        rule = AlertRule(**checked, updated_at=now, updated_by=actor)
        session.add(rule)
    else:
        for name, value in checked.items():
            setattr(rule, name, value)
        rule.updated_at, rule.updated_by = now, actor
    session.flush()
    record_event(session, "alert_rule_saved", at=now, actor=actor, message=describe(rule, known)[:500],
                 data={"rule_id": rule.id, "active": rule.active})
    return rule


def describe(rule: AlertRule, names: Mapping[str, Mapping[str, str]] | None = None) -> str:
    """The rule in one Chinese sentence, e.g. 当日 全部投诉 首次答复及时率 低于 95%; ``names``: the
    departments' and categories' names by code (else the code is shown)."""
    value = rule.scope_value and ((names or {}).get(rule.scope) or {}).get(rule.scope_value, rule.scope_value)
    scope = SCOPES[rule.scope] + (f"“{value}”" if value else "")
    return (f"{PERIODS[rule.period]} {scope} {METRICS[rule.metric][0]} {COMPARISONS[rule.comparison]} "
            f"{number(rule.metric, rule.threshold)}")


def number(metric: str, value: float) -> str:
    if metric in RATE_FIGURES:
        return f"{value:.1f}%"
    return f"{value:g}"


# -- the figures -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Window:
    key: str          # the period key: YYYY-MM-DD or YYYY-MM
    start: date
    end: date


def window(period: str, now: datetime) -> Window:
    today = now.astimezone(LOCAL_TZ).date()
    if period == "month":
        return Window(f"{today:%Y-%m}", today.replace(day=1), today)
    return Window(today.isoformat(), today, today)


def figures(session: Session, start: date, end: date, scope: str = "all",
            scope_value: str | None = None) -> dict[str, int]:
    """The counts a rule may read, over the complaints received from ``start`` to ``end``: one
    GROUP BY outcome over a covering index of ``complaint_facts`` (as the report reads it), the
    counts then added up per figure from the outcome bits.

    A first reply is *decided* when it was given in time or the case is overdue (a late first
    reply, or the scanner's escalation of the open step, sets ``overdue``); a final answer when it
    was given or the case is overdue."""
    f = ComplaintFact
    query = (select(f.outcome, func.count(), func.sum(f.escalations))
             .where(f.received_day.between(start, end)).group_by(f.outcome))
    if scope == "department":
        query = query.where(f.department == scope_value)
    elif scope == "category":
        query = query.where(f.category == scope_value)
    bit = OUTCOME_BITS
    counts = dict.fromkeys(("received", "first_reply_in_time", "first_reply_decided", "handled_in_time",
                            "handled_decided", "replied", "satisfied", "verdicts", "overdue", "unsatisfied",
                            "escalations"), 0)
    for outcome, n, escalations in session.execute(query):
        has = {name: bool(outcome & value) for name, value in bit.items()}
        counts["received"] += n
        counts["escalations"] += int(escalations or 0)
        for name in ("first_reply_in_time", "handled_in_time", "replied", "satisfied", "unsatisfied", "overdue"):
            counts[name] += n if has[name] else 0
        counts["first_reply_decided"] += n if has["first_reply_in_time"] or has["overdue"] else 0
        counts["handled_decided"] += n if has["replied"] or has["overdue"] else 0
        counts["verdicts"] += n if has["satisfied"] or has["unsatisfied"] else 0
    return counts


def measure(rule: AlertRule, counts: dict[str, int]) -> tuple[float, int] | None:
    """``(value, cases)`` of the rule's metric, or None while a rate has too few cases."""
    if rule.metric in RATE_FIGURES:
        numerator, denominator = RATE_FIGURES[rule.metric]
        if counts[denominator] < max(1, rule.min_cases):
            return None
        return round(100.0 * counts[numerator] / counts[denominator], 1), counts[denominator]
    return float(counts[rule.metric]), counts["received"]


def breached(rule: AlertRule, value: float) -> bool:
    return {"lt": value < rule.threshold, "le": value <= rule.threshold,
            "gt": value > rule.threshold, "ge": value >= rule.threshold}[rule.comparison]


# -- the tick's check ------------------------------------------------------------------------
def evaluate(session: Session, now: datetime, *, text: bool = True) -> list[ThresholdAlert]:
    """Check every active rule for its current period; raise (and text) the breached ones that
    have no alert for this period yet. In the caller's transaction; returns the new alerts."""
    rules = list(session.scalars(select(AlertRule).where(AlertRule.active.is_(True)).order_by(AlertRule.id)))
    if not rules:
        return []
    windows = {rule.id: window(rule.period, now) for rule in rules}
    raised = {(rule_id, key) for rule_id, key in session.execute(
        select(ThresholdAlert.rule_id, ThresholdAlert.period_key).where(
            or_(*(and_(ThresholdAlert.rule_id == r.id, ThresholdAlert.period_key == windows[r.id].key)
                  for r in rules))))}
    cache: dict[tuple[Any, ...], dict[str, int]] = {}
    new: list[ThresholdAlert] = []
    for rule in rules:
        w = windows[rule.id]
        if (rule.id, w.key) in raised:
            continue
        key = (w.start, w.end, rule.scope, rule.scope_value)
        if key not in cache:
            cache[key] = figures(session, w.start, w.end, rule.scope, rule.scope_value)
        measured = measure(rule, cache[key])
        if measured is None or not breached(rule, measured[0]):
            continue
        alert = ThresholdAlert(rule_id=rule.id, period_key=w.key, raised_at=now, value=measured[0],
                               threshold=rule.threshold, cases=measured[1], texted=0)
        try:
            with session.begin_nested():  # another scheduler raised it at the same moment: theirs stands
                session.add(alert)
        except IntegrityError:
            continue
        record_event(session, "threshold_alert", at=now, actor="system", message=alert_text(rule, alert)[:500],
                     data={"rule_id": rule.id, "period": w.key, "value": measured[0]})
        if text:
            alert.texted = _text_duty_managers(session, rule, alert, now)
        new.append(alert)
    return new


def alert_text(rule: AlertRule, alert: ThresholdAlert) -> str:
    return (f"【指标告警】{rule.name}：{alert.period_key} {describe(rule)}，"
            f"实际{number(rule.metric, alert.value)}（{alert.cases}件），请关注。")


def duty_managers(session: Session, rule: AlertRule) -> list[User]:
    """Who a rule texts: its named duty manager, otherwise every active manager with a mobile."""
    if rule.notify_user_id is not None:
        user = session.get(User, rule.notify_user_id)
        users = [user] if user is not None and user.active else []
    else:
        users = managers(session)
    return [u for u in users if u.phone]


def _text_duty_managers(session: Session, rule: AlertRule, alert: ThresholdAlert, now: datetime) -> int:
    users = duty_managers(session, rule)
    for user in users:
        outbox.enqueue(session, "sms.send", {"to": user.phone, "text": alert_text(rule, alert)[:300]},
                       key=f"threshold-{alert.id}-{user.id}", now=now, priority=1)
    return len(users)


def recent_alerts(session: Session, limit: int = 50) -> list[tuple[ThresholdAlert, AlertRule]]:
    """The newest alerts with their rules (the managers' alert page)."""
    rows = session.execute(select(ThresholdAlert, AlertRule).join(AlertRule, AlertRule.id == ThresholdAlert.rule_id)
                           .order_by(ThresholdAlert.raised_at.desc(), ThresholdAlert.id.desc()).limit(limit))
    return [(alert, rule) for alert, rule in rows]
