"""The roaming complaint transfer statistics (漫游投诉转递统计): the page with its chart, CSV and
XLSX, the table the API shares (``GET /api/v1/reports/roaming``, web/api/reports.py) and the
drill-down of the case list. The figures come from ``processes.transfer_report`` (one indexed
GROUP BY); the existing ``/roaming`` page (web/roaming.py) keeps the exchange's latest transfers.

Titles, headers and row labels follow the page's language, in the exports too (as the other
reports); the partners' names are the partners file's.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from flask import Blueprint, Response, abort, current_app, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from engine.clock import utcnow
from engine.errors import ValidationFailed
from processes import transfer_report
from processes.roaming import IN, OUT
from processes.transfer_report import MEASURES, Period

from .access import permission_required
from .errors import PERIOD_INVALID, error_response
from .extensions import db
from .reports import _default_period, rate

bp = Blueprint("roaming_report", __name__)

TITLE = _l("Roaming complaint transfer statistics")
DIMENSION_TITLES = {"partner": _l("Partner province"), "direction": _l("Transfer direction"), "day": _l("Date"),
                    "month": _l("Month")}
MEASURE_TITLES = {"transferred": _l("Transfers (count)"), "acknowledged": _l("Acknowledged by the other side"),
                  "answered": _l("Answered (count)"), "answered_in_time": _l("Answered in time (count)"),
                  "overdue": _l("Overdue transfers"), "failed": _l("Failed (refused or unconfirmed)"),
                  "national": _l("Escalated to the national centre (count)")}
DIRECTION_LABELS = {OUT: _l("Sent (to the home province or the national centre)"),
                    IN: _l("Received (from a visited province or the national centre)")}
# Rates: (title, numerator, denominator)
RATES = ((_l("Answer rate"), "answered", "transferred"), (_l("Answered in time rate"), "answered_in_time", "transferred"),
         (_l("Overdue rate"), "overdue", "transferred"))
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _partners() -> Any:
    return current_app.extensions["kefu_roaming"].partners


def _national() -> str | None:
    centre = _partners().national_centre()
    return centre.code if centre is not None else None


def label_of(by: str, key: str | None) -> str:
    if key is None:
        return "—"
    if by == "partner":
        return str(_partners().name_of(key))
    return str(DIRECTION_LABELS.get(key, key)) if by == "direction" else key


def table(period: Period) -> dict[str, Any]:
    """``{"items": [{key, label, *MEASURES}], "totals": {…}}`` — the API's body."""
    national = _national()
    db.session.rollback()  # end the request's transaction (and its SQLite write lock): nothing was written
    items, totals = transfer_report.report(db.session, period, utcnow(), national)
    return {"items": [{"key": item["key"], "label": label_of(period.by, item["key"]),
                       **{m: item[m] for m in MEASURES}} for item in items],
            "totals": totals}


def _rows(body: dict[str, Any]) -> list[list[Any]]:
    lines = [[item["key"] or "", item["label"], *(item[m] for m in MEASURES)] for item in body["items"]]
    lines.append(["", _("Total"), *(body["totals"][m] for m in MEASURES)])
    return lines


def _headers(period: Period) -> list[str]:
    return [_("Code"), str(DIMENSION_TITLES[period.by]), *(str(MEASURE_TITLES[m]) for m in MEASURES)]


def _filename(period: Period, extension: str) -> str:
    return f"roaming-{period.by}-{period.start:%Y%m%d}-{period.end:%Y%m%d}.{extension}"


def csv_response(period: Period, body: dict[str, Any]) -> Response:
    """The table as CSV, UTF-8 with a byte-order mark (Excel reads it)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(_headers(period))
    writer.writerows(_rows(body))
    return Response("\ufeff" + out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{_filename(period, "csv")}"'})


def xlsx_bytes(period: Period, body: dict[str, Any]) -> bytes:
    """The table as an Excel workbook, with the rates beside the counts."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = str(TITLE)[:31]  # Excel's limit on a sheet's name
    sheet.append([_("%(title)s by %(dimension)s", title=TITLE, dimension=DIMENSION_TITLES[period.by]),
                  _("%(start)s to %(end)s", start=period.start, end=period.end)])
    sheet.append([*_headers(period), *(f"{title}(%)" for title, _n, _d in RATES)])
    for cell in sheet[2]:
        cell.font = Font(bold=True)
    for item, line in zip([*body["items"], body["totals"]], _rows(body), strict=True):
        sheet.append([*line, *(rate(item, n, d) for _t, n, d in RATES)])
    sheet.column_dimensions["B"].width = 30
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def figure(args: Any) -> dict[str, Any]:
    """The case list narrowed to one figure (``?report=roaming&measure=…&by=…&key=…&from=…&to=…``)."""
    measure = str(args.get("measure") or "transferred")
    try:
        period = transfer_report.check_period(args.get("from"), args.get("to"), args.get("by") or "day")
        ids = transfer_report.drill_down(period, args.get("key") or None, measure, utcnow(), _national())
    except (ValidationFailed, ValueError):
        abort(422)
    key = args.get("key")
    where = f"{DIMENSION_TITLES[period.by]}: {label_of(period.by, key)}" if key else ""
    return {"ids": ids, "measure": f"{TITLE} · {MEASURE_TITLES[measure]}", "where": where,
            "start": period.start, "end": period.end}


def _args() -> dict[str, str]:
    start, end = _default_period()
    return {"from": request.args.get("from") or start, "to": request.args.get("to") or end,
            "by": request.args.get("by") or "partner"}


@bp.get("/reports/roaming")
@permission_required("read_reports")
def page() -> Any:
    args = _args()
    context = {"args": args, "title": TITLE, "dimensions": DIMENSION_TITLES, "measures": MEASURE_TITLES,
               "rates": RATES, "rate": rate}
    try:
        period = transfer_report.check_period(args["from"], args["to"], args["by"])
    except ValidationFailed as exc:
        return render_template("roaming_report.html", errors=exc.fields, table=None, chart=None, **context), 422
    body = table(period)
    chart = {"labels": [item["label"] for item in body["items"]],
             "bars": [{"name": str(MEASURE_TITLES[m]), "data": [item[m] for item in body["items"]]}
                      for m in ("transferred", "answered_in_time", "overdue", "failed")],
             "lines": [{"name": str(title), "data": [rate(item, n, d) for item in body["items"]]}
                       for title, n, d in RATES]}
    return render_template("roaming_report.html", errors={}, table=body, chart=chart, period=period, **context)


@bp.get("/reports/roaming.xlsx")
@permission_required("read_reports")
def xlsx() -> Any:
    try:
        period = transfer_report.check_period(request.args.get("from"), request.args.get("to"),
                                              request.args.get("by"))
    except ValidationFailed:
        return error_response(422, "invalid_period", PERIOD_INVALID)
    return Response(xlsx_bytes(period, table(period)), mimetype=XLSX,
                    headers={"Content-Disposition": f'attachment; filename="{_filename(period, "xlsx")}"'})
