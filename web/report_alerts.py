"""Threshold alert rules (指标阈值告警) for managers: the list with the recent alerts, the form to
add or change a rule (disable it by unticking 启用), and the alerts section the managers' alert
page includes (``threshold_alerts_for`` is a template global: only that page pays its query).
The rules and their check live in ``processes/threshold_alerts.py``."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from flask import Blueprint, abort, redirect, render_template, request, url_for
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


def scope_values() -> dict[str, dict[str, str]]:
    """The departments and categories a rule may be scoped to, code → Chinese name (the rules and
    their alerts are worded in Chinese), from the deployed complaint forms and the groups."""
    names = labels(in_english=False)
    return {"department": names["department"], "category": names["category"]}


def choices() -> dict[str, Any]:
    """What the form offers: metrics, scopes and their departments / categories, comparisons,
    periods, the managers with a mobile."""
    return {"metrics": {k: v[0] for k, v in rules_.METRICS.items()}, "scopes": rules_.SCOPES,
            "scope_values": scope_values(), "comparisons": rules_.COMPARISONS, "periods": rules_.PERIODS,
            "duty": [u for u in managers(db.session) if u.phone], "rates": set(rules_.RATE_FIGURES)}


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
            "raised_at": alert.raised_at, "metric": rules_.METRICS[rule.metric][0],
            "value": rules_.number(rule.metric, alert.value), "condition": rules_.describe(rule, names),
            "cases": alert.cases, "texted": alert.texted, "start": start.isoformat(), "end": end.isoformat(),
            "by": rule.scope if rule.scope != "all" else "day", "key": rule.scope_value}


@bp.get("/reports/alert-rules")
@permission_required("manage_alert_rules")
def index() -> Any:
    rows = list(db.session.scalars(select(AlertRule).order_by(AlertRule.active.desc(), AlertRule.id)))
    names = dict(db.session.execute(select(User.id, User.display_name)).all())
    scopes = scope_values()
    return render_template("report_alert_rules.html", rules=rows, names=names,
                           describe=lambda rule: rules_.describe(rule, scopes),
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
            rules_.save_rule(db.session, rule, values, current_user.username, utcnow(), known=scope_values())
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
