"""REST API: the managers' statistics (DESIGN.md "Reports (contract)").

``GET /api/v1/reports/complaints?from=YYYY-MM-DD&to=YYYY-MM-DD&by=category|channel|department|city|day``
→ ``{"items": [{key, label, received, closed, first_reply_in_time, handled_in_time, replied,
overdue, escalations, satisfied, unsatisfied}], "totals": {…}}`` (integer counts of the complaints
received in the period, Beijing days, both ends included; what each count means is in
``processes/complaint_facts.py``). ``Accept: text/csv`` or ``?format=csv`` gives the same table as
CSV with Chinese headers (UTF-8 with a byte-order mark). Managers (``read_reports``); a city
leader gets the same report counting only the city's cases.

``GET /reports/acceptance``, ``/reports/callbacks`` and ``/reports/dunning`` (same ``from``/``to``,
``by=kind|day``, JSON or CSV): business acceptance by request type, callbacks / return visits by
kind, dunning by billing month; figures defined in ``processes/case_facts.py`` (``read_reports``).
``GET /reports/roaming`` (``by=partner|direction|day|month``, JSON or CSV): the roaming complaint
transfers, figures defined in ``processes/transfer_report.py`` (``read_reports``).

Threshold alert rules (processes/threshold_alerts.py): ``GET|POST /reports/alert-rules``,
``PATCH /reports/alert-rules/<id>`` (``manage_alert_rules``), and the alerts they raised,
``GET /reports/alerts`` (``read_reports``).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, jsonify, request
from sqlalchemy import select

from engine import access
from engine.clock import utcnow
from engine.errors import NotFound, ValidationFailed
from processes import case_facts, complaint_facts, transfer_report
from processes import threshold_alerts as rules_

from .. import roaming_report as roaming_report_
from .. import service_reports
from ..errors import error_response
from ..extensions import db
from ..report_alerts import describe, scope_values
from ..reports import complaint_table, csv_response
from .guards import api_login_required
from .openapi import BOOLEAN, ID, INSTANT, INTEGER, STRING, documented, items_of, nullable, obj
from .shapes import json_body

DAY = {"type": "string", "format": "date", "x-required": True}
FIGURES = {m: INTEGER for m in complaint_facts.MEASURES}


NUMBER = {"type": "number"}
RULE_FIELDS: dict[str, Any] = {"name": {"type": "string", "maxLength": 80}, "metric": {"type": "string", "enum": list(rules_.METRICS)},
               "scope": {"type": "string", "enum": list(rules_.SCOPES)}, "scope_value": nullable(STRING),
               "comparison": {"type": "string", "enum": list(rules_.COMPARISONS)}, "threshold": NUMBER,
               "period": {"type": "string", "enum": list(rules_.PERIODS)}, "min_cases": INTEGER,
               "notify_user_id": nullable(INTEGER), "active": BOOLEAN}
RULE = obj({"id": ID, **RULE_FIELDS, "description": STRING, "updated_at": INSTANT, "updated_by": STRING})
ALERT = obj({"id": ID, "rule_id": ID, "rule": STRING, "period": STRING, "raised_at": INSTANT, "value": NUMBER,
             "threshold": NUMBER, "cases": INTEGER, "texted": INTEGER, "description": STRING})


def register(bp: Blueprint) -> None:
    bp.get("/reports/complaints")(complaints)
    bp.get("/reports/alert-rules")(list_rules)
    bp.post("/reports/alert-rules")(create_rule)
    bp.patch("/reports/alert-rules/<int:rule_id>")(update_rule)
    bp.get("/reports/alerts")(list_alerts)
    bp.get("/reports/acceptance")(acceptance_report)
    bp.get("/reports/callbacks")(callbacks_report)
    bp.get("/reports/dunning")(dunning_report)
    bp.get("/reports/roaming")(roaming_report)


def _wants_csv() -> bool:
    if request.args.get("format"):
        return request.args["format"] == "csv"
    return request.accept_mimetypes.best_match(["application/json", "text/csv"]) == "text/csv"


@documented("Complaint statistics of a period by a dimension (JSON, or CSV with Accept: text/csv)",
            response=obj({"items": {"type": "array", "items": obj({"key": nullable(STRING), "label": STRING,
                                                                  **FIGURES})},
                          "totals": obj(FIGURES)}),
            response_media=("application/json", "text/csv"),
            query={"from": DAY, "to": DAY, "by": {"type": "string", "enum": list(complaint_facts.DIMENSIONS),
                                                  "x-required": True},
                   "format": {"type": "string", "enum": ["json", "csv"]}})
@api_login_required
def complaints():
    if not access.may_read_reports(db.session, g.api_user):
        return error_response(403, "forbidden", "reports are for managers, administrators and city leaders")
    fmt = request.args.get("format")
    try:
        if fmt not in (None, "json", "csv"):
            raise ValidationFailed("unknown format", {"format": "json or csv"})
        period = complaint_facts.check_period(request.args.get("from"), request.args.get("to"),
                                              request.args.get("by"))
    except ValidationFailed as exc:
        return error_response(422, "validation_failed", exc.message, fields=exc.fields)
    table = complaint_table(period, g.api_user)
    return csv_response(period, table) if _wants_csv() else jsonify(table)


def _rule_item(rule: rules_.AlertRule) -> dict[str, Any]:
    return {"id": rule.id, **{name: getattr(rule, name) for name in RULE_FIELDS}, "description": _describe(rule),
            "updated_at": rule.updated_at.isoformat(), "updated_by": rule.updated_by}


def _describe(rule: rules_.AlertRule) -> str:
    """The rule's sentence, naming its department or category (not its code)."""
    return describe(rule, scope_values() if rule.scope_value else None)


def _refused(permission: str) -> Any:
    if access.allowed(g.api_user, permission):
        return None
    return error_response(403, "forbidden", "threshold alerts are for managers and administrators")


@documented("Threshold alert rules (managers)", response=items_of(RULE))
@api_login_required
def list_rules():
    if (refused := _refused("manage_alert_rules")) is not None:
        return refused
    rows = db.session.scalars(select(rules_.AlertRule).order_by(rules_.AlertRule.id))
    return jsonify({"items": [_rule_item(rule) for rule in rows]})


@documented("Add a threshold alert rule (managers); rates are percentages; scope_value is a department's or "
            "a category's code (422 naming the choices otherwise)", status=201,
            request=obj(RULE_FIELDS, ["name", "metric", "comparison", "threshold", "period"]), response=RULE)
@api_login_required
def create_rule():
    if (refused := _refused("manage_alert_rules")) is not None:
        return refused
    rule = rules_.save_rule(db.session, None, json_body(), g.api_user.username, utcnow(), known=scope_values(in_english=False))
    db.session.commit()
    return jsonify(_rule_item(rule)), 201


@documented("Change a threshold alert rule (managers); active false disables it",
            request=obj(RULE_FIELDS, []), response=RULE)
@api_login_required
def update_rule(rule_id: int):
    if (refused := _refused("manage_alert_rules")) is not None:
        return refused
    rule = db.session.get(rules_.AlertRule, rule_id)
    if rule is None:
        raise NotFound(f"alert rule {rule_id} not found")
    current = {name: getattr(rule, name) for name in RULE_FIELDS}
    rules_.save_rule(db.session, rule, {**current, **json_body()}, g.api_user.username, utcnow(),
                     known=scope_values(in_english=False))
    db.session.commit()
    return jsonify(_rule_item(rule))


@documented("Threshold alerts raised, newest first (managers)", response=items_of(ALERT),
            query={"limit": {"type": "integer", "minimum": 1, "maximum": 500}})
@api_login_required
def list_alerts():
    if (refused := _refused("read_reports")) is not None:
        return refused
    raw = request.args.get("limit", "50")
    if not raw.isdigit() or not 1 <= int(raw) <= 500:
        raise ValidationFailed("limit must be a whole number from 1 to 500", {"limit": "1 to 500"})
    return jsonify({"items": [
        {"id": alert.id, "rule_id": rule.id, "rule": rule.name, "period": alert.period_key,
         "raised_at": alert.raised_at.isoformat(), "value": alert.value, "threshold": alert.threshold,
         "cases": alert.cases, "texted": alert.texted, "description": _describe(rule)}
        for alert, rule in rules_.recent_alerts(db.session, int(raw))]})


def _service_report(subject: str):
    if not access.allowed(g.api_user, "read_reports"):
        return error_response(403, "forbidden", "reports are for managers and administrators")
    fmt = request.args.get("format")
    if fmt not in (None, "json", "csv"):
        raise ValidationFailed("unknown format", {"format": "json or csv"})
    period = case_facts.check_period(subject, request.args.get("from"), request.args.get("to"),
                                     request.args.get("by"))
    body = service_reports.table(period)
    return service_reports.csv_response(period, body) if _wants_csv() else jsonify(body)


def _service_doc(summary: str, subject: case_facts.Subject) -> Any:
    figures: dict[str, Any] = {m: INTEGER for m in subject.measures}
    return documented(summary, response=obj({"items": {"type": "array", "items": obj({
        "key": nullable(STRING), "label": STRING, **figures})}, "totals": obj(figures)}),
        response_media=("application/json", "text/csv"),
        query={"from": DAY, "to": DAY, "by": {"type": "string", "enum": list(case_facts.DIMENSIONS), "x-required": True},
               "format": {"type": "string", "enum": ["json", "csv"]}})


@_service_doc("Business acceptance statistics by request type or day: received, identified, refused for "
              "arrears / blacklist, done, rejected (JSON, or CSV)", case_facts.ACCEPTANCE)
@api_login_required
def acceptance_report():
    return _service_report("acceptance")


@_service_doc("Callback and return-visit statistics by kind or day: reached, unreached, results, "
              "satisfaction, calls placed (JSON, or CSV)", case_facts.CALLBACKS)
@api_login_required
def callbacks_report():
    return _service_report("callbacks")


@_service_doc("Dunning statistics by billing month or day: subscribers dunned, reminded, recalled, paid, paid "
              "after a reminder, suspended, unrecovered, calls placed (JSON, or CSV)", case_facts.DUNNING)
@api_login_required
def dunning_report():
    return _service_report("dunning")


ROAMING_FIGURES: dict[str, Any] = {m: INTEGER for m in transfer_report.MEASURES}


@documented("Roaming complaint transfer statistics by partner province, direction (out | in), day or month: "
            "transferred, acknowledged, answered, answered in time, overdue, failed, national escalations "
            "(JSON, or CSV)",
            response=obj({"items": {"type": "array", "items": obj({"key": nullable(STRING), "label": STRING,
                                                                  **ROAMING_FIGURES})},
                          "totals": obj(ROAMING_FIGURES)}),
            response_media=("application/json", "text/csv"),
            query={"from": DAY, "to": DAY, "by": {"type": "string", "enum": list(transfer_report.DIMENSIONS),
                                                  "x-required": True},
                   "format": {"type": "string", "enum": ["json", "csv"]}})
@api_login_required
def roaming_report():
    if not access.allowed(g.api_user, "read_reports"):
        return error_response(403, "forbidden", "reports are for managers and administrators")
    fmt = request.args.get("format")
    if fmt not in (None, "json", "csv"):
        raise ValidationFailed("unknown format", {"format": "json or csv"})
    period = transfer_report.check_period(request.args.get("from"), request.args.get("to"), request.args.get("by"))
    body = roaming_report_.table(period)
    return roaming_report_.csv_response(period, body) if _wants_csv() else jsonify(body)
