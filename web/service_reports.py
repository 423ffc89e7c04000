"""The statistics of business acceptance and of callbacks / return visits (业务受理统计, 回叫回访统计):
pages with a chart, CSV, the table the API shares (``web/api/reports.py``) and the drill-down the
case list uses. The figures come from ``processes.case_facts`` (one indexed GROUP BY); this module
names and lays them out, in Chinese whatever the page language (exports go to spreadsheets).
"""

from __future__ import annotations

import csv
import io
from typing import Any

from flask import Blueprint, Response, abort, render_template, request

from engine import definitions
from engine.errors import ValidationFailed
from processes import case_facts
from processes.case_facts import NONE_KEY, Period

from .access import permission_required
from .extensions import db
from .reports import _default_period, rate
from .views_helpers import engine

bp = Blueprint("service_reports", __name__)

TITLES = {"acceptance": "业务受理统计", "callbacks": "回叫与回访统计", "dunning": "欠费催缴统计"}
DIMENSION_TITLES = {"acceptance": {"kind": "业务类型", "day": "日期"},
                    "callbacks": {"kind": "呼出类型", "day": "日期"},
                    "dunning": {"kind": "账期（催缴轮次）", "day": "日期"}}
MEASURE_TITLES = {
    "acceptance": {"received": "受理量", "closed": "已结束", "identified": "身份核验通过",
                   "identification_failed": "身份核验失败", "refused_arrears": "欠费拒绝受理",
                   "refused_blacklist": "黑名单拒绝受理", "done": "办理成功", "rejected": "计费系统拒绝"},
    "callbacks": {"received": "请求量", "closed": "已结束", "reached": "接通", "unreached": "未接通",
                  "resolved": "已解决", "follow_up": "需跟进", "satisfied": "满意", "unsatisfied": "不满意",
                  "attempts": "呼叫次数"},
    "dunning": {"received": "催缴户数", "closed": "已结束", "reminded": "已提醒（接通）", "recalled": "再次催缴",
                "paid": "已缴费", "paid_after_reminder": "提醒后缴费", "suspended": "停机", "two_way": "双向停机",
                "unrecovered": "未收回", "attempts": "呼叫次数"},
}
NONE_LABELS = {"acceptance": "未受理业务（核验失败或不予受理）", "callbacks": "类型未知", "dunning": "账期未知"}
# Rates: (title, numerator, denominator — names joined by "+")
RATES = {"acceptance": (("办理成功率", "done", "received"), ("拒绝受理率", "refused_arrears+refused_blacklist", "received")),
         "callbacks": (("接通率", "reached", "reached+unreached"), ("满意率", "satisfied", "satisfied+unsatisfied")),
         "dunning": (("回收率", "paid", "received"), ("提醒后缴费率", "paid_after_reminder", "reminded"))}
FORMS = {"acceptance": "acceptance_request.schema.json", "callbacks": "callback_request.schema.json",
         "dunning": ""}  # a billing month names itself


def percent(counts: dict[str, int], numerator: str, denominator: str) -> float | None:
    top = sum(counts[name] for name in numerator.split("+"))
    return rate({"n": top, **counts}, "n", denominator)


def labels(subject: str) -> dict[str, str]:
    """Chinese names of the kinds, from the deployed start or request form."""
    spec = case_facts.SUBJECTS[subject]
    if not FORMS[subject]:
        return {}
    definition = definitions.latest_version(db.session, spec.process_key)
    if definition is None:
        return {}
    forms = engine().specs.get(db.session, definition.id)[2]
    options = (((forms.get(FORMS[subject]) or {}).get("properties") or {}).get(spec.kind_var) or {}).get("oneOf")
    return {str(o["const"]): str(o.get("title") or o["const"]) for o in options or () if isinstance(o, dict)
            and "const" in o}


def label_of(subject: str, by: str, key: str | None, names: dict[str, str]) -> str:
    if key is None:
        return NONE_LABELS[subject] if by == "kind" else "—"
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


def csv_response(period: Period, body: dict[str, Any]) -> Response:
    """The table as CSV with Chinese headers, UTF-8 with a byte-order mark (Excel reads it)."""
    subject, measures = period.subject.name, period.subject.measures
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["编码", DIMENSION_TITLES[subject][period.by], *(MEASURE_TITLES[subject][m] for m in measures)])
    for item in body["items"]:
        writer.writerow([item["key"] or "", item["label"], *(item[m] for m in measures)])
    writer.writerow(["", "合计", *(body["totals"][m] for m in measures)])
    name = f"{subject}-{period.by}-{period.start:%Y%m%d}-{period.end:%Y%m%d}.csv"
    return Response("\ufeff" + out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def figure(args: Any) -> dict[str, Any]:
    """The case list narrowed to one figure (``?report=…&measure=…&by=…&key=…&from=…&to=…``)."""
    subject = str(args.get("report"))
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
    return {"ids": ids, "measure": MEASURE_TITLES[subject][str(args.get("measure") or "received")], "where": where,
            "start": period.start, "end": period.end}


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
             "bars": [{"name": MEASURE_TITLES[subject][m], "data": [item[m] for item in body["items"]]} for m in bars],
             "lines": [{"name": title, "data": [percent(item, n, d) for item in body["items"]]}
                       for title, n, d in RATES[subject]]}
    return render_template("service_report.html", errors={}, table=body, chart=chart, period=period, **context)
