"""Looking a customer up (客户资料查询) for the pages and the API: number and month checks, the
billing read with its failures translated, the customer's Kefu cases, and the audit line every
lookup leaves (who, why, which number — masked; never ID numbers or passwords)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from connectors.base import PermanentError, TransientError
from connectors.billing import codes
from connectors.billing.gateway import MONTH, BillingGateway
from engine.models import AuditEvent, ProcessInstance, record_event
from engine.people import User

from .extensions import db

LOOKUP_KIND = "customer_lookup"
CASES_LIMIT = 50
REASON_LIMIT = 200
PHONE = re.compile(r"^\d{5,20}\Z", re.ASCII)  # billing's own rule (codes.NUMBER): digits, area code included
# Why an agent looks a customer up; ``inbound_call`` is the screen pop's (来电弹屏).
REASONS = {
    "enquiry": _l("Enquiry by phone"),
    "complaint": _l("Complaint handling"),
    "acceptance": _l("Service request"),
    "callback": _l("Callback"),
    "other": _l("Other"),
    "inbound_call": _l("Inbound call (screen pop)"),
    "api": _l("API"),
}
CHOOSABLE = ("enquiry", "complaint", "acceptance", "callback", "other")


class LookupFailed(Exception):
    """A lookup that cannot be answered: ``status`` and ``code`` for the response."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class Reason:
    """Why the customer was looked up: a code of ``REASONS`` (or free text) and a note."""

    code: str
    note: str = ""

    @property
    def label(self) -> str:
        known = REASONS.get(self.code)
        return str(known) if known is not None else self.code

    def text(self) -> str:
        return f"{self.label}：{self.note}" if self.note else self.label


def normalize_phone(value: str | None) -> str:
    """Digits only: spaces and dashes dropped, a +86 / 0086 country prefix on mobiles removed."""
    text = re.sub(r"[\s\-()]", "", value or "")
    for prefix in ("+86", "0086"):
        if text.startswith(prefix) and len(text) - len(prefix) == 11:
            text = text[len(prefix):]
    return text


def check_phone(phone: str) -> str:
    if not PHONE.match(phone or ""):
        raise LookupFailed(400, "bad_request", str(_l("Not a valid phone number (5 to 20 digits).")))
    return phone


def check_month(month: str | None) -> str | None:
    if month and not MONTH.match(month):
        raise LookupFailed(400, "bad_request", str(_l("The month must look like 2026-11.")))
    return month or None


def mask_phone(phone: str) -> str:
    """``13800000001`` → ``138****0001`` (what the audit log keeps)."""
    if len(phone) >= 7:
        return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]
    return phone[:1] + "*" * (len(phone) - 1)


def gateway() -> BillingGateway:
    return current_app.extensions["kefu_billing"]


def _billing_call(read: Any, *args: Any, **kwargs: Any) -> Any:
    """One billing read; any failure of the billing database becomes a 503 (never a stack trace)."""
    try:
        return read(*args, **kwargs)
    except (TransientError, PermanentError) as exc:
        current_app.logger.warning("customer lookup: billing unavailable (%s)", str(exc)[:200])
        raise LookupFailed(503, "billing_unavailable",
                           str(_l("The billing system is unavailable at the moment; try again shortly."))) from exc


def customer_360(phone: str) -> dict[str, Any]:
    """Billing's 360 view of ``phone`` (masked by the gateway); 404 for an unknown number."""
    found = _billing_call(gateway().customer_360, phone)
    if found is None:
        raise LookupFailed(404, "not_found", str(_l("No customer has the number %(phone)s.", phone=phone)))
    return found


def call_details(phone: str, month: str, limit: int, offset: int) -> list[dict[str, Any]]:
    return _billing_call(gateway().call_details, phone, month, limit=limit, offset=offset)


def cases_of(phone: str) -> list[ProcessInstance]:
    """This number's Kefu cases (complaints, service requests, callbacks …), newest first."""
    return list(db.session.scalars(select(ProcessInstance).where(ProcessInstance.customer_phone == phone)
                                   .order_by(ProcessInstance.id.desc()).limit(CASES_LIMIT)))


def record_lookup(user: User, phone: str, reason: Reason, call: int | None, outcome: str,
                  now: datetime, channel: str) -> None:
    """The audit line of one lookup, committed at once (it must survive a failed page)."""
    masked = mask_phone(phone)
    record_event(db.session, LOOKUP_KIND, at=now, actor=user.username,
                 message=f"查询客户 {masked}（{reason.text()}）"[:500],
                 data={"phone_masked": masked, "reason": reason.code, "note": reason.note or None,
                       "call": call, "outcome": outcome, "channel": channel})
    db.session.commit()


def recent_lookups(limit: int = 200) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.kind == LOOKUP_KIND)
                                   .order_by(AuditEvent.id.desc()).limit(limit)))


def lookup(user: User, phone: str, reason: Reason, call: int | None, now: datetime,
           channel: str) -> dict[str, Any]:
    """Check the number, read billing and write the audit line whatever the outcome."""
    check_phone(phone)
    try:
        found = customer_360(phone)
    except LookupFailed as exc:
        record_lookup(user, phone, reason, call, exc.code, now, channel)
        raise
    record_lookup(user, phone, reason, call, "found", now, channel)
    return found


def yuan(fen: int | None) -> str:
    return codes.yuan(fen or 0)
