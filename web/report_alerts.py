"""Threshold alert rules (指标阈值告警) for managers: the list with the recent alerts, the form to
add or change a rule (disable it by unticking 启用), and the alerts section the managers' alert
page includes (``threshold_alerts_for`` is a template global: only that page pays its query).
The rules and their check live in ``processes/threshold_alerts.py``."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from flask import Blueprint, abort, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select

from engine.access import allowed
from engine.clock import utcnow
from engine.errors import ValidationFailed
from engine.people import User, managers
from processes import threshold_alerts as rules_
from processes.threshold_alerts import AlertRule

from .access import permission_required
from .extensions import db
from .reports import labels

bp = Blueprint("report_alerts", __name__)
FIELDS = ("name", "metric", "scope", "scope_value", "comparison", "threshold", "period", "min_cases",
          "notify_user_id", "active")


# The rules' words in the page's language (processes/threshold_alerts.py words them in Chinese
# for the managers' texts and the audit log).
METRICS = {"first_reply_rate": _l("First-reply-in-time rate"), "handled_rate": _l("Handled-in-time rate"),
           "reply_rate": _l("Customer reply rate"), "satisfaction_rate": _l("Satisfaction rate"),
           "overdue": _l("Number of overdue cases"), "unsatisfied": _l("Number of unsatisfied cases"),
           "escalations": _l("Overdue alerts raised"), "received": _l("Number of cases received")}
SCOPES = {"all": _l("All complaints"), "department": _l("Responsible department"),
          "category": _l("Complaint category")}
COMPARISONS = {"lt": _l("is below"), "le": _l("is at most"), "gt": _l("is above"), "ge": _l("is at least")}
PERIODS = {"day": _l("Today"), "month": _l("This month")}


def scope_values(in_english: bool | None = None) -> dict[str, dict[str, str]]:
    """The departments and categories a rule may be scoped to, code → name (in the page's language
    unless asked), from the deployed complaint forms and the groups."""
    names = labels(in_english=in_english)
    return {"department": names["department"], "category": names["category"]}


def describe(rule: AlertRule, names: dict[str, dict[str, str]] | None = None) -> str:
    """The rule in one sentence of the page's language, e.g. 当日 全部投诉 首次答复及时率 低于 95.0%."""
    value = rule.scope_value and ((names or {}).get(rule.scope) or {}).get(rule.scope_value, rule.scope_value)
    scope = _("%(scope)s “%(value)s”", scope=SCOPES[rule.scope], value=value) if value else str(SCOPES[rule.scope])
    return _("%(period)s, %(scope)s: %(metric)s %(comparison)s %(threshold)s", period=PERIODS[rule.period],
             scope=scope, metric=METRICS[rule.metric], comparison=COMPARISONS[rule.comparison],
             threshold=rules_.number(rule.metric, rule.threshold))


def choices() -> dict[str, Any]:
    """What the form offers: metrics, scopes and their departments / categories, comparisons,
    periods, the managers with a mobile."""
    return {"metrics": METRICS, "scopes": SCOPES, "scope_values": scope_values(), "comparisons": COMPARISONS,
            "periods": PERIODS, "duty": [u for u in managers(db.session) if u.phone],
            "rates": set(rules_.RATE_FIGURES)}


@bp.app_template_global()
def threshold_alerts_for(user: User, limit: int = 20) -> list[dict[str, Any]]:
    """The newest threshold alerts for the alert page (managers only; others get none)."""
    if not allowed(user, "read_reports"):
        return []
    found = rules_.recent_alerts(db.session, limit)
    names = scope_values() if any(rule.scope_value for _alert, rule in found) else None
    return [view(alert, rule, names) for alert, rule in found]


def view(alert: rules_.ThresholdAlert, rule: AlertRule,
         names: dict[str, dict[str, str]] | None = None) -> dict[str, Any]:
    """An alert as pages and the API show it (Chinese words, no internal codes; ``names``: the
    scopes' names, ``scope_values()``)."""
    start = date.fromisoformat(alert.period_key + ("-01" if len(alert.period_key) == 7 else ""))
    end = start if len(alert.period_key) == 10 else (start + timedelta(days=31)).replace(day=1) - timedelta(days=1)
    return {"id": alert.id, "rule_id": rule.id, "rule": rule.name, "period": alert.period_key,
            "raised_at": alert.raised_at, "metric": str(METRICS[rule.metric]),
            "value": rules_.number(rule.metric, alert.value), "condition": describe(rule, names),
            "cases": alert.cases, "texted": alert.texted, "start": start.isoformat(), "end": end.isoformat(),
            "by": rule.scope if rule.scope != "all" else "day", "key": rule.scope_value}


@bp.get("/reports/alert-rules")
@permission_required("manage_alert_rules")
def index() -> Any:
    rows = list(db.session.scalars(select(AlertRule).order_by(AlertRule.active.desc(), AlertRule.id)))
    names = dict(db.session.execute(select(User.id, User.display_name)).all())
    scopes = scope_values()
    return render_template("report_alert_rules.html", rules=rows, names=names,
                           describe=lambda rule: describe(rule, scopes),
                           alerts=threshold_alerts_for(current_user, 50))


@bp.route("/reports/alert-rules/new", methods=["GET", "POST"])
@permission_required("manage_alert_rules")
def new() -> Any:
    return _form(None)


@bp.route("/reports/alert-rules/<int:rule_id>", methods=["GET", "POST"])
@permission_required("manage_alert_rules")
def edit(rule_id: int) -> Any:
    rule = db.session.get(AlertRule, rule_id)
    if rule is None:
        abort(404)
    return _form(rule)


def _form(rule: AlertRule | None) -> Any:
    if request.method == "POST":
        values = {name: request.form.get(name, "") for name in FIELDS}
        values["active"] = "1" if request.form.get("active") else "0"
        try:
            rules_.save_rule(db.session, rule, values, current_user.username, utcnow(), known=scope_values(in_english=False))
        except ValidationFailed as exc:
            db.session.rollback()
            return render_template("report_alert_rule_form.html", rule=rule, values=values, errors=exc.fields,
                                   **choices()), 422
        db.session.commit()
        return redirect(url_for("report_alerts.index"))
    values = ({name: getattr(rule, name) for name in FIELDS} if rule is not None else
              {"metric": "first_reply_rate", "scope": "all", "comparison": "lt", "threshold": 95,
               "period": "day", "min_cases": 10, "active": True})
    return render_template("report_alert_rule_form.html", rule=rule, values=values, errors={}, **choices())
