"""The statistics of business acceptance and of callbacks / return visits (业务受理统计, 回叫回访统计):
pages with a chart, CSV, the table the API shares (``web/api/reports.py``) and the drill-down the
case list uses. The figures come from ``processes.case_facts`` (one indexed GROUP BY); this module
names and lays them out in the page's language (CSV and XLSX exports too; see web/reports.py).
"""

from __future__ import annotations

import csv
import io
from typing import Any

from flask import Blueprint, Response, abort, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from engine import definitions
from engine.errors import ValidationFailed
from processes import case_facts
from processes.case_facts import NONE_KEY, Period

from .access import permission_required
from .errors import PERIOD_INVALID, error_response
from .extensions import db
from .reports import XLSX, _default_period, english, rate, workbook
from .views_helpers import engine

bp = Blueprint("service_reports", __name__)

TITLES = {"acceptance": _l("Business acceptance statistics"), "callbacks": _l("Callback and return visit statistics"),
          "dunning": _l("Dunning statistics")}
_DAYS = {"day": _l("Date"), "month": _l("Month")}
DIMENSION_TITLES = {"acceptance": {"kind": _l("Request type"), **_DAYS},
                    "callbacks": {"kind": _l("Outbound call type"), **_DAYS},
                    "dunning": {"kind": _l("Billing month (dunning round)"), **_DAYS}}
_RECEIVED, _FINISHED, _ATTEMPTS = _l("Received (count)"), _l("Finished"), _l("Calls placed")
MEASURE_TITLES = {
    "acceptance": {"received": _RECEIVED, "closed": _FINISHED, "identified": _l("Identity verified"),
                   "identification_failed": _l("Identity verification failed"),
                   "refused_arrears": _l("Refused for arrears"), "refused_blacklist": _l("Refused for the blacklist"),
                   "done": _l("Done successfully"), "rejected": _l("Rejected by billing")},
    "callbacks": {"received": _l("Requests (count)"), "closed": _FINISHED, "reached": _l("Reached (count)"),
                  "unreached": _l("Not reached (count)"), "resolved": _l("Resolved (count)"),
                  "follow_up": _l("Needs follow-up (count)"), "satisfied": _l("Satisfied (count)"),
                  "unsatisfied": _l("Unsatisfied (count)"), "attempts": _ATTEMPTS},
    "dunning": {"received": _l("Subscribers dunned"), "closed": _FINISHED, "reminded": _l("Reminded (answered)"),
                "recalled": _l("Dunned again"), "paid": _l("Paid up"), "paid_after_reminder": _l("Paid after a reminder"),
                "suspended": _l("Service suspended"), "two_way": _l("Two-way suspension"),
                "unrecovered": _l("Not recovered"), "attempts": _ATTEMPTS},
}
NONE_LABELS = {"acceptance": _l("No request taken (identification failed or refused)"),
               "callbacks": _l("Type unknown"), "dunning": _l("Billing month unknown")}
# Rates: (title, numerator, denominator — names joined by "+")
RATES = {"acceptance": ((_l("Success rate"), "done", "received"),
                        (_l("Refusal rate"), "refused_arrears+refused_blacklist", "received")),
         "callbacks": ((_l("Reach rate"), "reached", "reached+unreached"),
                       (_l("Satisfaction rate"), "satisfied", "satisfied+unsatisfied")),
         "dunning": ((_l("Recovery rate"), "paid", "received"),
                     (_l("Paid after a reminder rate"), "paid_after_reminder", "reminded"))}
FORMS = {"acceptance": "acceptance_request.schema.json", "callbacks": "callback_request.schema.json",
         "dunning": ""}  # a billing month names itself


def percent(counts: dict[str, int], numerator: str, denominator: str) -> float | None:
    top = sum(counts[name] for name in numerator.split("+"))
    return rate({"n": top, **counts}, "n", denominator)


def labels(subject: str) -> dict[str, str]:
    """Names of the kinds in the page's language, from the deployed start or request form."""
    spec = case_facts.SUBJECTS[subject]
    if not FORMS[subject]:
        return {}
    definition = definitions.latest_version(db.session, spec.process_key)
    if definition is None:
        return {}
    forms = engine().specs.get(db.session, definition.id)[2]
    options = (((forms.get(FORMS[subject]) or {}).get("properties") or {}).get(spec.kind_var) or {}).get("oneOf")
    in_english = english()
    return {str(o["const"]): str((in_english and o.get("x-title-en")) or o.get("title") or o["const"])
            for o in options or () if isinstance(o, dict) and "const" in o}


def label_of(subject: str, by: str, key: str | None, names: dict[str, str]) -> str:
    if key is None:
        return str(NONE_LABELS[subject]) if by == "kind" else "—"
    return names.get(key, key) if by == "kind" else key


def table(period: Period) -> dict[str, Any]:
    """``{"items": [{key, label, *measures}], "totals": {…}}`` — the API's body."""
    subject = period.subject.name
    names = labels(subject)
    db.session.rollback()  # end the request's transaction (and its SQLite write lock): nothing was written
    items, totals = case_facts.report(db.session, period)
    return {"items": [{"key": item["key"], "label": label_of(subject, period.by, item["key"], names),
                       **{m: item[m] for m in period.subject.measures}} for item in items],
            "totals": totals}


def headers(period: Period) -> list[str]:
    subject = period.subject.name
    return [_("Code"), str(DIMENSION_TITLES[subject][period.by]),
            *(str(MEASURE_TITLES[subject][m]) for m in period.subject.measures)]


def rows(period: Period, body: dict[str, Any]) -> list[list[Any]]:
    """The table's lines as exported: one per key, then the totals."""
    measures = period.subject.measures
    lines = [[item["key"] or "", item["label"], *(item[m] for m in measures)] for item in body["items"]]
    lines.append(["", _("Total"), *(body["totals"][m] for m in measures)])
    return lines


def filename(period: Period, extension: str) -> str:
    return f"{period.subject.name}-{period.by}-{period.start:%Y%m%d}-{period.end:%Y%m%d}.{extension}"


def csv_response(period: Period, body: dict[str, Any]) -> Response:
    """The table as CSV, headers in the page's language, UTF-8 with a byte-order mark (Excel reads it)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(headers(period))
    writer.writerows(rows(period, body))
    return Response("\ufeff" + out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename(period, "csv")}"'})


def xlsx_response(period: Period, body: dict[str, Any]) -> Response:
    """The table as an Excel workbook (the complaint report's writer), rates beside the counts."""
    subject = period.subject.name
    lines = [[*line, *(percent(item, n, d) for _t, n, d in RATES[subject])]
             for item, line in zip([*body["items"], body["totals"]], rows(period, body), strict=True)]
    content = workbook(str(TITLES[subject]), str(DIMENSION_TITLES[subject][period.by]), period,
                       [*headers(period), *(f"{title}(%)" for title, _n, _d in RATES[subject])], lines)
    return Response(content, mimetype=XLSX,
                    headers={"Content-Disposition": f'attachment; filename="{filename(period, "xlsx")}"'})


def figure(args: Any) -> dict[str, Any]:
    """The case list narrowed to one figure (``?report=…&measure=…&by=…&key=…&from=…&to=…``)."""
    subject = str(args.get("report"))
    if subject == "roaming":  # the roaming transfer statistics (web/roaming_report.py)
        from .roaming_report import figure as roaming_figure

        return roaming_figure(args)
    try:
        period = case_facts.check_period(subject, args.get("from"), args.get("to"), args.get("by") or "day")
        ids = case_facts.drill_down(period, args.get("key") or None, str(args.get("measure") or "received"))
    except (ValidationFailed, ValueError):
        abort(422)
    key = args.get("key")
    where = ""
    if key:
        where = (f"{DIMENSION_TITLES[subject][period.by]}："
                 f"{label_of(subject, period.by, None if key == NONE_KEY else key, labels(subject))}")
    return {"ids": ids, "measure": str(MEASURE_TITLES[subject][str(args.get("measure") or "received")]), "where": where,
            "start": period.start, "end": period.end}


@bp.get("/reports/<any(acceptance, callbacks, dunning):subject>.xlsx")
@permission_required("read_reports")
def xlsx(subject: str) -> Any:
    try:
        period = case_facts.check_period(subject, request.args.get("from"), request.args.get("to"),
                                         request.args.get("by"))
    except ValidationFailed:
        return error_response(422, "invalid_period", PERIOD_INVALID)
    return xlsx_response(period, table(period))


@bp.get("/reports/<any(acceptance, callbacks, dunning):subject>")
@permission_required("read_reports")
def page(subject: str) -> Any:
    start, end = _default_period()
    args = {"from": request.args.get("from") or start, "to": request.args.get("to") or end,
            "by": request.args.get("by") or "kind"}
    context = {"subject": subject, "title": TITLES[subject], "args": args, "dimensions": DIMENSION_TITLES[subject],
               "measures": MEASURE_TITLES[subject], "rates": RATES[subject], "percent": percent, "none_key": NONE_KEY,
               "process_key": case_facts.SUBJECTS[subject].process_key}
    try:
        period = case_facts.check_period(subject, args["from"], args["to"], args["by"])
    except ValidationFailed as exc:
        return render_template("service_report.html", errors=exc.fields, table=None, chart=None, **context), 422
    body = table(period)
    bars = [m for m in MEASURE_TITLES[subject] if m not in ("closed", "attempts")][:4]
    chart = {"labels": [item["label"] for item in body["items"]],
             "bars": [{"name": str(MEASURE_TITLES[subject][m]), "data": [item[m] for item in body["items"]]}
                      for m in bars],
             "lines": [{"name": str(title), "data": [percent(item, n, d) for item in body["items"]]}
                       for title, n, d in RATES[subject]]}
    return render_template("service_report.html", errors={}, table=body, chart=chart, period=period, **context)
