"""The managers' statistics (统计报表): the complaint report page with its chart, the CSV and XLSX
exports, and the table the API shares (``web/api/reports.py``). A city leader reads the same
report counting only the city's cases (``engine.access.report_reach``). The figures come from
``processes.complaint_facts`` (one indexed GROUP BY); this module only names and lays them out.

Dimension names, column headers and the product's row labels (categories, channels, departments
from the forms' titles, group names) follow the page's language, in the exports too: Chinese in
Chinese, English in English. ``by=month`` adds the days up per month (processes/report_months.py).
"""

from __future__ import annotations

import csv
import io
from typing import Any

from flask import Blueprint, Response, abort, render_template, request, send_from_directory
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from sqlalchemy import select

from engine import access, definitions
from engine.clock import LOCAL_TZ, utcnow
from engine.errors import ValidationFailed
from engine.people import Group
from processes import complaint_facts
from processes.complaint_facts import MEASURES, NONE_KEY, Period

from . import config
from .errors import PERIOD_INVALID, error_response
from .extensions import db
from .views_helpers import engine, locale

bp = Blueprint("reports", __name__)
ECHARTS = ("echarts/dist", "echarts.min.js")  # served from the checkout's npm packages

DIMENSION_TITLES = {"category": _l("Complaint category"), "channel": _l("Intake channel"),
                    "department": _l("Responsible department"), "city": _l("City (prefecture)"),
                    "day": _l("Date"), "month": _l("Month")}
# escalations: the SLA scanner's overdue alerts (the escalation pages' 超时告警), not 越级/升级投诉
MEASURE_TITLES = {"received": _l("Received (count)"), "closed": _l("Cases closed"),
                  "first_reply_in_time": _l("First reply in time"), "handled_in_time": _l("Handled in time"),
                  "replied": _l("Replied to the customer"), "overdue": _l("Overdue cases"),
                  "escalations": _l("Overdue alerts raised"), "satisfied": _l("Satisfied (count)"),
                  "unsatisfied": _l("Unsatisfied (count)"), "urges": _l("Urges (count)")}
NONE_LABELS = {"category": _l("Uncategorised"), "channel": _l("Unknown channel"),
               "department": _l("Not dispatched (answered at once or awaiting dispatch)"),
               "city": _l("City unknown"), "day": "—", "month": "—"}
# Rates: (title, numerator, denominator)
RATES = ((_l("First reply in time rate"), "first_reply_in_time", "received"),
         (_l("Handled in time rate"), "handled_in_time", "received"),
         (_l("Customer reply rate"), "replied", "received"),
         (_l("Satisfaction rate"), "satisfied", "satisfied+unsatisfied"))


def english() -> bool:
    return locale().startswith("en")


def rate(counts: dict[str, int], numerator: str, denominator: str) -> float | None:
    """A percentage with one decimal, or None when nothing was counted."""
    total = sum(counts[name] for name in denominator.split("+"))
    return round(100.0 * counts[numerator] / total, 1) if total else None


def labels(in_english: bool | None = None) -> dict[str, dict[str, str]]:
    """Names of the codes in the page's language (or in English / Chinese as asked), from the
    deployed complaint forms (group names as a fallback for departments)."""
    found: dict[str, dict[str, str]] = {"category": {}, "channel": {}, "department": {}}
    in_english = english() if in_english is None else in_english
    definition = definitions.latest_version(db.session, complaint_facts.PROCESS_KEY)
    if definition is not None:
        found = complaint_facts.labels_from_forms(engine().specs.get(db.session, definition.id)[2],
                                                  english=in_english)
    for code, name, name_en in db.session.execute(select(Group.code, Group.name, Group.name_en)):
        found["department"].setdefault(code, (name_en or name) if in_english else name)
    return found


def label_of(by: str, key: str | None, names: dict[str, dict[str, str]]) -> str:
    if key is None:
        return str(NONE_LABELS[by])
    return names.get(by, {}).get(key, key)


def complaint_table(period: Period, user: Any) -> dict[str, Any]:
    """``{"items": [{key, label, *MEASURES}], "totals": {*MEASURES}}`` — the API's body, counting
    the cases ``user`` may count (a city leader: the city's)."""
    names = labels()
    reach = access.report_reach(db.session, user)
    db.session.rollback()  # end the request's transaction (and its SQLite write lock): nothing was written
    items, totals = complaint_facts.report(db.session, period, reach)
    return {"items": [{"key": item["key"], "label": label_of(period.by, item["key"], names),
                       **{m: item[m] for m in MEASURES}} for item in items],
            "totals": totals}


def headers(by: str) -> list[str]:
    return [_("Code"), str(DIMENSION_TITLES[by]), *(str(MEASURE_TITLES[m]) for m in MEASURES)]


def rows(table: dict[str, Any]) -> list[list[Any]]:
    """The table's lines as exported: one per key, then the totals (合计)."""
    lines = [[item["key"] or "", item["label"], *(item[m] for m in MEASURES)] for item in table["items"]]
    lines.append(["", _("Total"), *(table["totals"][m] for m in MEASURES)])
    return lines


def filename(period: Period, extension: str) -> str:
    return f"complaints-{period.by}-{period.start:%Y%m%d}-{period.end:%Y%m%d}.{extension}"


def csv_response(period: Period, table: dict[str, Any]) -> Response:
    """The table as CSV, UTF-8 with a byte-order mark (so that Excel reads the Chinese)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(headers(period.by))
    writer.writerows(rows(table))
    return Response("\ufeff" + out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename(period, "csv")}"'})


def workbook(title: str, by_title: str, period: Any, header: list[str], lines: list[list[Any]]) -> bytes:
    """A report as an Excel workbook: a title line, the bold header, the lines (every report's
    XLSX export writes through this)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = title[:31]  # Excel's limit on a sheet's name
    sheet.append([_("%(title)s by %(dimension)s", title=title, dimension=by_title),
                  _("%(start)s to %(end)s", start=period.start, end=period.end)])
    sheet.append(header)
    for cell in sheet[2]:
        cell.font = Font(bold=True)
    for line in lines:
        sheet.append(line)
    sheet.column_dimensions["B"].width = 24
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def xlsx_bytes(period: Period, table: dict[str, Any]) -> bytes:
    """The table as an Excel workbook, with the rates beside the counts."""
    lines = [[*line, *(rate(item, n, d) for _t, n, d in RATES)]
             for item, line in zip([*table["items"], table["totals"]], rows(table), strict=True)]
    return workbook(_("Complaint statistics"), str(DIMENSION_TITLES[period.by]), period,
                    [*headers(period.by), *(f"{title}(%)" for title, _n, _d in RATES)], lines)


def _default_period() -> tuple[str, str]:
    """This month so far (Beijing days)."""
    today = utcnow().astimezone(LOCAL_TZ).date()
    return today.replace(day=1).isoformat(), today.isoformat()


def _may_read() -> None:
    if not access.may_read_reports(db.session, current_user):
        abort(403)


@bp.app_context_processor
def _reports_link() -> dict[str, Any]:
    """``may_read_reports()`` for the menu: a manager or a city leader (asked only when rendered)."""
    def may_read_reports() -> bool:
        return bool(current_user.is_authenticated) and access.may_read_reports(db.session, current_user)
    return {"may_read_reports": may_read_reports}


@bp.get("/reports/complaints")
@login_required
def complaints() -> Any:
    _may_read()
    start, end = _default_period()
    args = {"from": request.args.get("from") or start, "to": request.args.get("to") or end,
            "by": request.args.get("by") or "category"}
    try:
        period = complaint_facts.check_period(args["from"], args["to"], args["by"])
    except ValidationFailed as exc:
        return render_template("reports.html", args=args, errors=exc.fields, table=None,
                               dimensions=DIMENSION_TITLES, measures=MEASURE_TITLES, rates=RATES,
                               rate=rate, chart=None, none_key=NONE_KEY), 422
    table = complaint_table(period, current_user)
    chart = {"labels": [item["label"] for item in table["items"]],
             "bars": [{"name": str(MEASURE_TITLES[m]), "data": [item[m] for item in table["items"]]}
                      for m in ("received", "closed", "overdue")],
             "lines": [{"name": str(title), "data": [rate(item, n, d) for item in table["items"]]}
                       for title, n, d in RATES[:3]]}
    return render_template("reports.html", args=args, errors={}, table=table, period=period,
                           dimensions=DIMENSION_TITLES, measures=MEASURE_TITLES, rates=RATES, rate=rate,
                           chart=chart, none_key=NONE_KEY)


@bp.get("/reports/complaints.xlsx")
@login_required
def complaints_xlsx() -> Any:
    _may_read()
    try:
        period = complaint_facts.check_period(request.args.get("from"), request.args.get("to"),
                                              request.args.get("by"))
    except ValidationFailed:
        return error_response(422, "invalid_period", PERIOD_INVALID)
    body = xlsx_bytes(period, complaint_table(period, current_user))
    return Response(body, mimetype=XLSX,
                    headers={"Content-Disposition": f'attachment; filename="{filename(period, "xlsx")}"'})


@bp.get("/reports/vendor/echarts.min.js")
def echarts() -> Any:
    """ECharts from the checkout's npm packages (pinned in package.json; nothing from the internet)."""
    folder, name = ECHARTS
    return send_from_directory(config.PROJECT_ROOT / "node_modules" / folder, name, max_age=86400)

