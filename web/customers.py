"""The customer 360 pages (客户资料查询 / 话费查询): look a subscriber up by number, with a reason.

Every view of a customer is a lookup and leaves an audit line (web/customer_lookup.py); managers
and admins read those lines at /customers/audit.
"""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user

from connectors.billing import codes
from engine.clock import utcnow

from . import customer_lookup as cl
from .access import permission_required
from .billing_words import billing_word
from .request_limits import db_int

bp = Blueprint("customers", __name__)
CALLS_PER_PAGE = 100
MONTHS_OFFERED = 6


@bp.app_template_filter("yuan")
def _yuan(fen: int | None) -> str:
    return "¥" + cl.yuan(fen)


bp.add_app_template_global(billing_word)  # the billing codes in the reader's language


@bp.get("/customers")
@permission_required("view_customer_data")
def lookup():
    """The lookup form; a submitted number goes to the customer's page with the reason."""
    phone = cl.normalize_phone(request.args.get("phone"))
    reason = request.args.get("reason", "")
    note = request.args.get("note", "").strip()[:cl.REASON_LIMIT]
    error = None
    if request.args.get("phone") is not None:
        if not cl.PHONE.match(phone):
            error = _("Not a valid phone number (5 to 20 digits).")
        elif reason not in cl.CHOOSABLE:
            error = _("Choose why you look this customer up.")
        elif reason == "other" and not note:
            error = _("Describe the reason in a few words.")
        else:
            return redirect(url_for("customers.view", phone=phone, reason=reason, note=note or None))
    return render_template("customer_lookup.html", phone=request.args.get("phone", ""), reason=reason,
                           note=note, error=error, reasons=_choices()), 400 if error else 200


def _choices() -> list[tuple[str, str]]:
    return [(code, str(cl.REASONS[code])) for code in cl.CHOOSABLE]


def _call_id() -> int | None:
    call = request.args.get("call", type=db_int)
    return call if call is not None and call > 0 else None


def _reason(call: int | None) -> cl.Reason | None:
    code = request.args.get("reason", "").strip()[:cl.REASON_LIMIT]
    note = request.args.get("note", "").strip()[:cl.REASON_LIMIT]
    if not code:
        return cl.Reason("inbound_call", note) if call is not None else None
    # A code the product does not know (a hand-made link) would be shown raw and audited as it is:
    # the agent is asked for the reason instead.
    return cl.Reason(code, note) if code in cl.REASONS else None


@bp.get("/customers/<phone>")
@permission_required("view_customer_data")
def view(phone: str):
    """The customer 360: customer, subscription, account, bills, payments, orders, Kefu cases and
    the call details of one month (``?month=YYYY-MM``, default this month; ``?page=`` pages)."""
    call = _call_id()
    reason = _reason(call)
    now = utcnow()
    try:
        cl.check_phone(phone)
        if reason is None:  # a lookup needs a reason: ask for it first
            return render_template("customer_lookup.html", phone=phone, reason="", note="", reasons=_choices(),
                                   error=_("Choose why you look this customer up."))
        month = cl.check_month(request.args.get("month")) or _this_month(now)
        page = max(1, request.args.get("page", 1, type=db_int) or 1)
        data = cl.lookup(current_user, phone, reason, call, now, channel="web")
        calls = cl.call_details(phone, month, limit=CALLS_PER_PAGE + 1, offset=(page - 1) * CALLS_PER_PAGE)
    except cl.LookupFailed as exc:
        return render_template("customer_error.html", status=exc.status, code=exc.code, message=exc.message,
                               phone=phone), exc.status
    keep = {"reason": reason.code, "note": reason.note or None, "call": call}
    return render_template(
        "customer.html", phone=phone, c=data, cases=cl.cases_of(phone), reason=reason, keep=keep,
        call=call, month=month, months=_months(now, month), page=page,
        calls=calls[:CALLS_PER_PAGE], more=len(calls) > CALLS_PER_PAGE, per_page=CALLS_PER_PAGE,
        warnings=_warnings(data), labels=codes)


@bp.get("/customers/audit")
@permission_required("read_lookup_audit")
def audit():
    """The last 200 customer lookups: who looked whom up, when and why."""
    return render_template("customer_audit.html", events=cl.recent_lookups(200), reasons=cl.REASONS)


def _this_month(now: datetime) -> str:
    return now.astimezone(codes.CHINA_TZ).strftime("%Y-%m")


def _months(now: datetime, chosen: str) -> list[str]:
    """This month and the ones before it (billing keeps call details for a few months)."""
    local = now.astimezone(codes.CHINA_TZ)
    year, month = local.year, local.month
    months = []
    for _i in range(MONTHS_OFFERED):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    if chosen not in months:
        months.append(chosen)
    return months


def _warnings(data: dict) -> list[str]:
    """What stops a service request, shown at the top (arrears, blacklist, closed number)."""
    out = []
    if data["blacklist"]:
        out.append(_("Blacklisted: %(reason)s", reason=data["blacklist"]["reason_label"]))
    if data["account"]["arrears_fen"] > 0:
        out.append(_("In arrears: %(amount)s", amount="¥" + cl.yuan(data["account"]["arrears_fen"])))
    if data["subscription"]["status"] == "closed":
        out.append(_("The number is closed."))
    return out
